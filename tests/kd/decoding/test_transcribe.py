"""asr-kd transcribe's parts: inputs, bad audio, CMVN modes, word times. The whole command, from a fresh
process on a recipe's export and graph, is checked in tests/recipes/test_recipes.py."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr_kd.decoding.transcribe_audio import load_features, normalise, resolve_inputs, sliding_cmvn
from asr_kd.decoding.word_times import PdfInfo, phone_segments, word_times
from asr_kd.export.load import DEFAULT_UNSEEN_CMVN, expected_cmvn
from data_prep.features.fbank_extract import FbankConfig


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("norm_vars", [True, False])
def test_sliding_cmvn_matches_torchaudio(center, norm_vars):
    import torch
    import torchaudio.functional as taf

    x = np.random.default_rng(0).normal(3.0, 2.0, (230, 6)).astype(np.float32)
    ours = sliding_cmvn(x, window=50, min_window=20, center=center, norm_vars=norm_vars)
    ref = taf.sliding_window_cmn(torch.from_numpy(x).double(), cmn_window=50, min_cmn_window=20, center=center,
                                 norm_vars=norm_vars).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_resolve_inputs_dirs_scp_files_missing_duplicates(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for p in ("d/a.flac", "d/sub/b.wav", "d/notes.txt", "c.flac"):
        (tmp_path / p).write_bytes(b"")
    (tmp_path / "list.scp").write_text(f"x1 {tmp_path}/c.flac\nx2 sox foo.wav -t wav - |\n")
    items, skipped = resolve_inputs([str(tmp_path / "d"), str(tmp_path / "list.scp"), str(tmp_path / "c.flac"),
                                     str(tmp_path / "nope.wav"), str(tmp_path / "d" / "a.flac")])
    assert [u for u, _ in items] == ["a", "b", "x1", "x2", "c"]
    assert dict(items)["x2"] == "sox foo.wav -t wav - |"
    reasons = {u: r for u, _, r in skipped}
    assert reasons["nope"] == "no such file or directory" and reasons["a"].startswith("duplicate utterance id")


def test_bad_audio_is_a_reason_and_resample_is_opt_in(tmp_path):
    fb = FbankConfig()
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "ok.flac", 0.1 * rng.standard_normal(8000), 16000)
    sf.write(tmp_path / "stereo.wav", 0.1 * rng.standard_normal((8000, 2)), 16000)
    sf.write(tmp_path / "8k.wav", 0.1 * rng.standard_normal(4000), 8000)
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    sf.write(tmp_path / "short.wav", 0.1 * rng.standard_normal(100), 16000)
    (tmp_path / "junk.flac").write_bytes(b"not audio at all")
    ok = load_features("ok", str(tmp_path / "ok.flac"), fb)
    assert ok.reason == "" and ok.feats.shape == (fb.num_frames(8000), 40) and ok.num_samples == 8000
    reasons = {n: load_features(n, str(tmp_path / f), fb).reason
               for n, f in [("stereo", "stereo.wav"), ("8k", "8k.wav"), ("empty", "empty.wav"),
                            ("short", "short.wav"), ("junk", "junk.flac")]}
    assert "multi-channel" in reasons["stereo"]
    assert "8000 Hz" in reasons["8k"] and "--resample" in reasons["8k"]
    assert "empty" in reasons["empty"] and "too short" in reasons["short"] and "cannot decode" in reasons["junk"]
    r = load_features("8k", str(tmp_path / "8k.wav"), fb, resample=True)
    assert r.reason == "" and r.num_samples == 8000 and r.feats.shape[0] == fb.num_frames(8000)


def test_cmvn_modes():
    rng = np.random.default_rng(1)
    feats = {"u1": rng.normal(5.0, 2.0, (300, 4)), "u2": rng.normal(-1.0, 0.5, (200, 4))}
    per_utt = normalise(feats, "utterance")
    for x in per_utt.values():
        np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(x.std(0), 1.0, atol=1e-3)
    pooled = normalise(feats, "speaker")  # no utt2spk: one speaker for all
    both = np.concatenate([pooled["u1"], pooled["u2"]])
    np.testing.assert_allclose(both.mean(0), 0.0, atol=1e-4)
    assert pooled["u1"].mean() > 0.5 > -0.5 > pooled["u2"].mean()
    split = normalise(feats, "speaker", utt2spk={"u1": "a", "u2": "b"})
    np.testing.assert_allclose(split["u2"], per_utt["u2"], atol=1e-5)
    means_only = normalise(feats, "utterance", train_cmvn="speaker_mean")
    np.testing.assert_allclose(means_only["u1"].std(0), feats["u1"].std(0), rtol=1e-4)
    np.testing.assert_array_equal(normalise(feats, "sliding", train_cmvn="none")["u1"], feats["u1"].astype(np.float32))
    with pytest.raises(ValueError, match="unknown CMVN mode"):
        normalise(feats, "global")


def test_export_cmvn_record_and_old_exports():
    assert expected_cmvn({}) == {"train": "speaker_mean_var", "unseen": DEFAULT_UNSEEN_CMVN}
    assert expected_cmvn({"cmvn": "none", "cmvn_unseen": "sliding"}) == {"train": "none", "unseen": "sliding"}
    with pytest.raises(ValueError, match="unknown CMVN"):
        expected_cmvn({"cmvn": "global_magic"})


def _info() -> PdfInfo:
    """pdf 0: SIL; pdfs 1-3: phone A states 0-2; pdfs 4-6: phone B states 0-2."""
    return PdfInfo(np.array([1, 2, 2, 2, 3, 3, 3], np.int32), np.array([0, 0, 1, 2, 0, 1, 2], np.int32),
                   np.array([True] + [False] * 6), {1: "SIL", 2: "A", 3: "B"})


def test_word_times_from_phones_and_lexicon():
    info = _info()
    # SIL | A A(repeated: state goes back) | SIL | B A
    pdfs = np.array([0, 0, 1, 2, 3, 1, 1, 2, 3, 0, 0, 4, 5, 6, 1, 2, 3, 3, 0, 0], np.int32)
    starts, ends, phones = phone_segments(pdfs, info)
    assert starts.tolist() == [0, 2, 5, 9, 11, 14, 18] and phones.tolist() == [1, 2, 2, 1, 3, 2, 1]
    lex = {"AA": [("A", "A")], "BA": [("B", "A"), ("B",)], "X": [("A",)]}
    # label frames as determinization may put them (late in the word): the lexicon gives the real spans
    assert word_times(["AA", "BA"], [6, 16], pdfs, 20, info, lex) == [(2, 9), (11, 18)]
    assert word_times(["X", "X", "BA"], [2, 5, 11], pdfs, 20, info, lex) == [(2, 5), (5, 9), (11, 18)]
    # no lexicon (or phones that do not match it): from the label frames, silence trimmed at both ends
    assert word_times(["AA", "BA"], [6, 16], pdfs, 20, info) == [(2, 16), (16, 18)]
    assert word_times(["X", "BA"], [6, 16], pdfs, 20, info, lex) == [(2, 16), (16, 18)]
    assert word_times(["AA"], [2], np.zeros(4, np.int32), 4, info) == [(0, 4)]  # only silence: the raw span
    assert word_times([], [], pdfs, 20, info, lex) == []
