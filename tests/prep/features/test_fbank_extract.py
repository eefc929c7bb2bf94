"""fbank_extract: features equal torchaudio's called directly, Kaldi frame counts, audio reading, batches."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as ta_kaldi

from data_prep.features.fbank_extract import FbankConfig, compute_fbank, make_batches, process_utterance, read_audio

SR = 16000


def _write_audio(path, n, seed, sr=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.02 * rng.standard_normal(n)
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")


def _torchaudio_reference(path):
    """torchaudio called directly, Kaldi options spelled out, on the int16-range waveform."""
    x, sr = sf.read(path, dtype="int16")
    wav = torch.from_numpy(x.astype(np.float32))[None]
    return ta_kaldi.fbank(wav, num_mel_bins=40, frame_length=25.0, frame_shift=10.0, dither=0.0,
                          sample_frequency=sr, window_type="povey", snip_edges=True).numpy()


@pytest.mark.parametrize("n", [0, 399, 400, 401, 559, 560, 16000, 16123])
def test_num_frames_matches_torchaudio(n):
    cfg = FbankConfig()
    x = np.random.default_rng(0).uniform(-0.5, 0.5, n).astype(np.float32)
    got = compute_fbank(x, cfg)
    assert got.shape == (cfg.num_frames(n), 40)
    assert cfg.num_frames(n) == (1 + (n - 400) // 160 if n >= 400 else 0)
    if n >= 400:
        ref = ta_kaldi.fbank(torch.from_numpy(x * 32768)[None], num_mel_bins=40, dither=0.0)
        assert ref.shape[0] == got.shape[0]


def test_features_match_torchaudio_called_directly(tmp_path):
    p = tmp_path / "a.flac"
    _write_audio(p, 12345, 3)
    data, sr = read_audio(str(p))
    assert sr == SR and data.shape == (12345, 1)
    got = compute_fbank(data[:, 0], FbankConfig())
    ref = _torchaudio_reference(p)
    assert got.shape == ref.shape == (1 + (12345 - 400) // 160, 40)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_make_batches_groups_by_audio_seconds():
    items = [(f"u{i}", "p", n) for i, n in enumerate([16000, 8000, 8000, 40000, 100])]
    batches = make_batches(items, SR, batch_seconds=1.0)
    assert [[u for u, _, _ in b] for b in batches] == [["u0"], ["u1", "u2"], ["u3"], ["u4"]]


def test_process_utterance_centres_and_reports_reasons(tmp_path):
    p = tmp_path / "a.flac"
    _write_audio(p, 8000, 1)
    ref = _torchaudio_reference(p)
    r = process_utterance("a", str(p), 8000, FbankConfig(), center=True)
    np.testing.assert_allclose(r.offset, ref.mean(0), rtol=1e-5)
    np.testing.assert_allclose(r.feats.astype(np.float32) + r.offset, ref, atol=0.02)
    assert r.stats[0, -1] == len(ref) and r.reason is None
    assert "utt2num_samples" in process_utterance("a", str(p), 9000, FbankConfig()).reason
    assert "sample rate" in process_utterance("a", str(p), None, FbankConfig(sample_rate=8000)).reason
