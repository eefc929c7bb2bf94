"""Kaldi's add-deltas (data_prep.align.front_end.add_deltas) against a per-frame transcription of Kaldi's
DeltaFeatures::Process, and the aligner run on MFCC-like 13-dim features with --deltas 2."""

import numpy as np
import pytest

from data_prep.align.front_end import FrontEnd, add_deltas, delta_kernels
from data_prep.align.split_data import read_frames


def kaldi_deltas_reference(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's feat/feature-functions.cc, frame by frame (one utterance)."""
    scales = [np.ones(1)]
    for i in range(1, order + 1):
        prev = scales[-1]
        prev_off = (prev.size - 1) // 2
        cur_off = prev_off + window
        cur = np.zeros(2 * cur_off + 1)
        norm = sum(j * j for j in range(-window, window + 1))
        for j in range(-window, window + 1):
            for k in range(-prev_off, prev_off + 1):
                cur[j + k + cur_off] += j * prev[k + prev_off] / norm
        scales.append(cur)
    n, d = x.shape
    out = np.zeros((n, d * (order + 1)))
    for i, sc in enumerate(scales):
        off = (sc.size - 1) // 2
        for t in range(n):
            for j in range(-off, off + 1):
                out[t, i * d:(i + 1) * d] += sc[j + off] * x[min(max(t + j, 0), n - 1)]
    return out


def test_kernels_are_kaldis():
    k = delta_kernels(2)
    np.testing.assert_allclose(k[1], [0, 0, -0.2, -0.1, 0, 0.1, 0.2, 0, 0])
    np.testing.assert_allclose(k[2], [0.04, 0.04, 0.01, -0.04, -0.1, -0.04, 0.01, 0.04, 0.04])


def test_add_deltas_matches_kaldi_per_utterance_with_clamped_edges():
    rng = np.random.default_rng(0)
    lengths = np.array([1, 3, 12, 7])  # one-frame and shorter-than-the-window utterances too
    x = rng.standard_normal((lengths.sum(), 5)).astype(np.float32)
    got = add_deltas(x, lengths, 2)
    assert got.shape == (lengths.sum(), 15)
    starts = np.cumsum(lengths) - lengths
    for s, n in zip(starts, lengths):
        np.testing.assert_allclose(got[s:s + n], kaldi_deltas_reference(x[s:s + n]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(add_deltas(x, lengths, 0), x)


def test_read_frames_of_consecutive_and_scattered_rows():
    f = np.arange(40, dtype=np.float16).reshape(20, 2)
    np.testing.assert_array_equal(read_frames(f, [0, 3, 7], [3, 4, 2]), f[0:9].astype(np.float32))  # one slice
    np.testing.assert_array_equal(read_frames(f, [0, 5, 9], [3, 2, 2]),
                                  np.concatenate([f[0:3], f[5:7], f[9:11]]).astype(np.float32))
    np.testing.assert_array_equal(read_frames(f, [5, 9], [2, 2], FrontEnd(deltas=1))[:, :2], np.concatenate([f[5:7], f[9:11]]))


@pytest.mark.e2e
def test_align_with_deltas(make_lexicon, write_align_split, tmp_path):
    from data_prep.align.stage import AlignStageConfig, run_align
    from data_prep.align.hmm import read_final_mdl
    from data_prep.lang.lang_dir import write_lang_dir

    lang = write_lang_dir(make_lexicon(), tmp_path / "lang")
    write_align_split(tmp_path, lang, "train", 0, 40)
    cfg = AlignStageConfig(lang=str(tmp_path / "lang"), fbank_dir=str(tmp_path / "fbank"),
                           data_dir=str(tmp_path / "data"), exp=str(tmp_path / "exp"), splits=["train"], deltas=2,
                           mono_iters=4, mono_realign=[1, 2, 3], mono_gauss=80, num_leaves=40, tree_min_count=20,
                           tri_iters=2, tri_realign=[1], tri_gauss=80, jobs=1)
    report = run_align(cfg)
    assert report["splits"]["train"]["fraction_aligned"] == 1.0
    gmm = read_final_mdl(tmp_path / "exp/tri/final.mdl").gmm
    assert gmm.means.shape[1] == 3 * 13  # the store's 13 dims + deltas + delta-deltas
    stamp = (tmp_path / "exp/tri/.stamp.json").read_text()
    assert '"deltas": 2' in stamp
