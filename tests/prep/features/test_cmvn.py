"""Per-speaker CMVN: Kaldi stats layout, chunked accumulation, in-place normalisation, Kaldi ark export."""

import numpy as np
import pytest

from data_prep.features.cmvn import (
    SpeakerCmvn,
    StatsAccumulator,
    accumulate_speaker_stats,
    apply_cmvn_inplace,
    stats_to_transform,
    utterance_chunks,
    utterance_stats,
)


def _corpus(seed=0, dim=6):
    """Utterances of three speakers with distinct means/scales, speakers interleaved in store order."""
    rng = np.random.default_rng(seed)
    lengths = np.array([30, 5, 1, 64, 17, 40, 9, 22])
    speakers = ["b", "a", "b", "c", "a", "c", "b", "a"]
    offset = {"a": -3.0, "b": 7.0, "c": 0.5}
    scale = {"a": 0.5, "b": 2.0, "c": 4.0}
    mats = [offset[s] + scale[s] * rng.standard_normal((n, dim)) for n, s in zip(lengths, speakers)]
    feats = np.concatenate(mats).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return feats, starts, lengths, speakers


def _numpy_stats(feats, starts, lengths, speakers, spk):
    rows = np.concatenate([np.arange(s, s + n) for s, n, k in zip(starts, lengths, speakers) if k == spk])
    x = feats[rows].astype(np.float64)
    return x


def test_utterance_stats_kaldi_layout():
    x = np.random.default_rng(0).standard_normal((11, 4))
    st = utterance_stats(x)
    assert st.shape == (2, 5) and st.dtype == np.float64
    np.testing.assert_allclose(st[0, :4], x.sum(0))
    np.testing.assert_allclose(st[1, :4], (x**2).sum(0))
    assert st[0, 4] == 11 and st[1, 4] == 0


@pytest.mark.parametrize("chunk_frames", [1 << 18, 50, 7])  # 7: some utterances are longer than a chunk
def test_accumulate_matches_numpy(chunk_frames):
    feats, starts, lengths, speakers = _corpus()
    cmvn = accumulate_speaker_stats(feats.astype(np.float16), starts, lengths, speakers, chunk_frames)
    assert cmvn.speakers == ["a", "b", "c"] and cmvn.stats.shape == (3, 2, 7)
    f16 = feats.astype(np.float16)
    for i, spk in enumerate(cmvn.speakers):
        x = _numpy_stats(f16, starts, lengths, speakers, spk)
        np.testing.assert_allclose(cmvn.stats[i, 0, :-1], x.sum(0), rtol=1e-10)
        np.testing.assert_allclose(cmvn.stats[i, 1, :-1], (x**2).sum(0), rtol=1e-10)
        assert cmvn.stats[i, 0, -1] == len(x) and cmvn.stats[i, 1, -1] == 0


def test_streaming_accumulator_equals_store_accumulation():
    feats, starts, lengths, speakers = _corpus(1)
    acc = StatsAccumulator(feats.shape[1])
    for s, n, spk in zip(starts, lengths, speakers):
        acc.add(spk, utterance_stats(feats[s : s + n]))
    a = acc.result()
    b = accumulate_speaker_stats(feats, starts, lengths, speakers, chunk_frames=20)
    assert a.speakers == b.speakers
    np.testing.assert_allclose(a.stats, b.stats, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_apply_gives_zero_mean_unit_variance_per_speaker(dtype):
    feats, starts, lengths, speakers = _corpus(2)
    cmvn = accumulate_speaker_stats(feats, starts, lengths, speakers)
    x = feats.astype(dtype)
    apply_cmvn_inplace(x, starts, lengths, speakers, cmvn, norm_vars=True, chunk_frames=13)
    tol = 1e-5 if dtype == np.float32 else 5e-3
    for spk in "abc":
        y = _numpy_stats(x, starts, lengths, speakers, spk)
        np.testing.assert_allclose(y.mean(0), 0.0, atol=tol)
        np.testing.assert_allclose(y.var(0), 1.0, atol=tol * 4)
        # and it is exactly Kaldi's formula applied to the raw frames
        raw = _numpy_stats(feats, starts, lengths, speakers, spk)
        want = (raw - raw.mean(0)) / raw.std(0)
        np.testing.assert_allclose(y, want, atol=tol * 10, rtol=1e-3)


def test_mean_only_keeps_variance():
    feats, starts, lengths, speakers = _corpus(3)
    cmvn = accumulate_speaker_stats(feats, starts, lengths, speakers)
    x = feats.copy()
    apply_cmvn_inplace(x, starts, lengths, speakers, cmvn, norm_vars=False)
    for spk in "abc":
        y = _numpy_stats(x, starts, lengths, speakers, spk)
        raw = _numpy_stats(feats, starts, lengths, speakers, spk)
        np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(y.var(0), raw.var(0), rtol=1e-4)


def test_transform_floors_variance_and_rejects_empty_speakers():
    st = np.zeros((1, 2, 3))
    st[0, 0] = [6.0, 6.0, 3.0]  # mean 2, constant -> zero variance
    st[0, 1, :2] = [12.0, 12.0]
    mean, scale = stats_to_transform(st)
    np.testing.assert_allclose(mean, [[2.0, 2.0]])
    assert np.isfinite(scale).all() and (scale > 1e9).all()
    st[0, 0, -1] = 0
    with pytest.raises(ValueError, match="count"):
        stats_to_transform(st)
    with pytest.raises(ValueError, match="speakers, 2"):
        stats_to_transform(np.zeros((1, 3, 3)))


def test_missing_speaker_stats_is_an_error():
    feats, starts, lengths, speakers = _corpus()
    cmvn = accumulate_speaker_stats(feats, starts, lengths, speakers)
    with pytest.raises(KeyError, match="no CMVN stats"):
        apply_cmvn_inplace(feats.copy(), starts, lengths, ["zz"] + speakers[1:], cmvn)


def test_utterance_chunks_cover_everything_once():
    lengths = np.array([3, 10, 1, 1, 6, 2])
    runs = list(utterance_chunks(lengths, chunk_frames=5))
    assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    for u0, u1 in runs:
        assert u1 - u0 == 1 or lengths[u0:u1].sum() <= 5
    assert list(utterance_chunks(np.array([], dtype=np.int64))) == []


def test_npz_and_kaldi_ark_round_trip(tmp_path):
    from asr_base.kaldi_io import kaldi_io

    feats, starts, lengths, speakers = _corpus(4)
    cmvn = accumulate_speaker_stats(feats, starts, lengths, speakers)
    cmvn.save(tmp_path / "cmvn.npz")
    back = SpeakerCmvn.load(tmp_path / "cmvn.npz")
    assert back.speakers == cmvn.speakers
    np.testing.assert_array_equal(back.stats, cmvn.stats)
    with np.load(tmp_path / "cmvn.npz") as z:
        assert z["stats"].dtype == np.float64 and z["stats"].shape == (3, 2, 7)

    cmvn.write_kaldi(tmp_path / "cmvn.ark", tmp_path / "cmvn.scp")
    read = dict(kaldi_io.read_mat_scp(str(tmp_path / "cmvn.scp")))
    assert sorted(read) == cmvn.speakers
    for i, s in enumerate(cmvn.speakers):
        assert read[s].dtype == np.float64  # Kaldi's compute-cmvn-stats writes double matrices
        np.testing.assert_array_equal(read[s], cmvn.stats[i])
    for path in ("cmvn.scp", "cmvn.ark"):
        again = SpeakerCmvn.read_kaldi(tmp_path / path)
        assert again.speakers == cmvn.speakers
        np.testing.assert_array_equal(again.stats, cmvn.stats)


def test_utterance_centred_storage_with_offsets_equals_raw():
    """compute-fbank stores x - utt_mean in float16 and passes the means as utt_offsets."""
    feats, starts, lengths, speakers = _corpus(6)
    feats += 20.0  # raw log-mel magnitude, where float16 rounding of raw values would hurt
    cmvn = accumulate_speaker_stats(feats, starts, lengths, speakers)
    offsets = np.stack([feats[s : s + n].mean(0) for s, n in zip(starts, lengths)])
    centred = np.concatenate([feats[s : s + n] - o for s, n, o in zip(starts, lengths, offsets)]).astype(np.float16)
    apply_cmvn_inplace(centred, starts, lengths, speakers, cmvn, utt_offsets=offsets, chunk_frames=40)
    exact = feats.copy()
    apply_cmvn_inplace(exact, starts, lengths, speakers, cmvn)
    np.testing.assert_allclose(centred.astype(np.float32), exact, atol=4e-3)
    with pytest.raises(ValueError, match="utt_offsets"):
        apply_cmvn_inplace(centred, starts, lengths, speakers, cmvn, utt_offsets=offsets[:2])
