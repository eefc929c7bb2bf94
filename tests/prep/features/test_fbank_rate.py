"""compute-fbank at another sample rate: native 8 kHz features when told so, a clear error when not."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as ta_kaldi

from asr_base.io import write_json
from data_prep.corpus.data_dir import DataDir
from data_prep.features.fbank import ComputeFbankConfig, compute_fbank_store
from data_prep.features.fbank_extract import FbankConfig


def _data_dir_8k(tmp_path, lengths=(4000, 2600)):
    d = DataDir()
    for i, n in enumerate(lengths):
        p = tmp_path / f"u{i}.wav"
        x = 0.2 * np.sin(2 * np.pi * (300 + 50 * i) * np.arange(n) / 8000)
        sf.write(p, x, 8000, subtype="PCM_16")
        u = f"spk-{i}"
        d.wav[u], d.utt2spk[u], d.utt2num_samples[u], d.text[u] = str(p), "spk", n, "ONE"
    d.write(tmp_path / "data")
    # what make-data-dir / prepare-fsdd record: the rate the audio was checked against
    write_json(tmp_path / "data" / "make_data_dir.json", {"config": {"sample_rate": 8000}})
    return tmp_path / "data"


def test_native_8khz_features_match_torchaudio_and_rate_is_recorded(tmp_path):
    data = _data_dir_8k(tmp_path)
    fb = FbankConfig(sample_rate=8000, low_freq=40, high_freq=-200)
    store = compute_fbank_store(ComputeFbankConfig(str(data), str(tmp_path / "fb"), fbank=fb, cmvn="none", jobs=1))
    assert store.meta["sample_rate"] == 8000 and store.meta["fbank"]["sample_rate"] == 8000
    np.testing.assert_array_equal(store.lengths, [1 + (4000 - 200) // 80, 1 + (2600 - 200) // 80])  # 25/10 ms at 8 kHz
    x, _ = sf.read(tmp_path / "u0.wav", dtype="int16")
    ref = ta_kaldi.fbank(torch.from_numpy(x.astype(np.float32))[None], num_mel_bins=40, dither=0.0,
                         sample_frequency=8000, low_freq=40, high_freq=-200).numpy()
    np.testing.assert_array_equal(store.utt("spk-0"), ref.astype(np.float16))
    assert store.frame_shift == pytest.approx(0.01)


def test_8khz_data_dir_with_16khz_fbank_is_a_clear_error_before_any_work(tmp_path):
    data = _data_dir_8k(tmp_path)
    with pytest.raises(ValueError, match="holds 8000 Hz audio but fbank expects 16000 Hz.*--sample-frequency 8000"):
        compute_fbank_store(ComputeFbankConfig(str(data), str(tmp_path / "fb"), jobs=1))
    assert not (tmp_path / "fb").exists()
