"""compute-fbank: the store holds torchaudio's features, CMVN applied, bad audio listed, up-to-date check."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as ta_kaldi

from asr_base.io import read_json
from data_prep.features.cmvn import SpeakerCmvn
from data_prep.corpus.data_dir import DataDir
from data_prep.features.fbank import ComputeFbankConfig, compute_fbank_store
from data_prep.features.fbank_extract import FbankConfig
from data_prep.features.store import FeatureStore

SR = 16000


def _write_audio(path, n, seed, sr=SR, channels=1):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.02 * rng.standard_normal(n)
    x = np.stack([x] * channels, axis=1) if channels > 1 else x
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")


def make_data_dir(tmp_path, spec):
    """spec: list of (utt, speaker, num_samples). Writes FLACs + a Kaldi data dir; returns (dir, DataDir)."""
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    d = DataDir()
    for i, (u, spk, n) in enumerate(spec):
        p = audio / f"{u}.flac"
        _write_audio(p, n, i)
        d.wav[u], d.utt2spk[u], d.utt2num_samples[u] = str(p), spk, n
        d.text[u] = "HELLO WORLD"
    d.write(tmp_path / "data")
    return tmp_path / "data", d


def _torchaudio_reference(path):
    """torchaudio called directly, Kaldi options spelled out, on the int16-range waveform."""
    x, sr = sf.read(path, dtype="int16")
    wav = torch.from_numpy(x.astype(np.float32))[None]
    return ta_kaldi.fbank(wav, num_mel_bins=40, frame_length=25.0, frame_shift=10.0, dither=0.0,
                          sample_frequency=sr, window_type="povey", snip_edges=True).numpy()


def test_store_holds_raw_features_without_cmvn(tmp_path):
    data, _ = make_data_dir(tmp_path, [("s1-c-0001", "s1", 8000), ("s2-c-0001", "s2", 5000)])
    store = compute_fbank_store(ComputeFbankConfig(data, tmp_path / "fb", cmvn="none", jobs=1))
    assert store.utt_ids == ["s1-c-0001", "s2-c-0001"]
    np.testing.assert_array_equal(store.lengths, [1 + (8000 - 400) // 160, 1 + (5000 - 400) // 160])
    for u in store.utt_ids:
        ref = _torchaudio_reference(tmp_path / "audio" / f"{u}.flac")
        np.testing.assert_array_equal(store.utt(u), ref.astype(np.float16))
    assert store.meta["cmvn"] == "none" and store.meta["fbank"]["num_mel_bins"] == 40
    assert store.meta["fbank"]["dither"] == 0.0


def test_mfcc_store_holds_kaldi_mfcc_and_fbank_stamps_are_unchanged(tmp_path):
    """--feature-type mfcc: 13-dim Kaldi MFCC (torchaudio's, options spelled out), speaker-mean normalised as
    Kaldi's GMM recipes do; an fbank store's stamp has no MFCC option (stores made before it stay valid)."""
    data, _ = make_data_dir(tmp_path, [("s1-c-0001", "s1", 8000), ("s1-c-0002", "s1", 6000)])
    fb = FbankConfig(feature_type="mfcc", num_mel_bins=23, num_ceps=13)
    store = compute_fbank_store(ComputeFbankConfig(data, tmp_path / "mfcc", fbank=fb, cmvn="speaker_mean", jobs=1))
    assert store.dim == 13 and store.meta["fbank"]["feature_type"] == "mfcc"
    refs = []
    for u in store.utt_ids:
        x, sr = sf.read(tmp_path / "audio" / f"{u}.flac", dtype="int16")
        refs.append(ta_kaldi.mfcc(torch.from_numpy(x.astype(np.float32))[None], num_mel_bins=23, num_ceps=13,
                                  use_energy=False, cepstral_lifter=22.0, dither=0.0, sample_frequency=sr).numpy())
    mean = np.concatenate(refs).astype(np.float64).mean(0)
    for u, ref in zip(store.utt_ids, refs):
        np.testing.assert_allclose(store.utt(u).astype(np.float32), ref - mean, atol=0.02 * np.abs(ref).max())
    assert not set(FbankConfig().stamp_config()) & set(FbankConfig.MFCC_FIELDS)
    assert "num_ceps" in fb.stamp_config() and fb.dim == 13


def test_store_is_speaker_normalised_and_stats_saved(tmp_path):
    spec = [("a-1-01", "a", 9000), ("a-1-02", "a", 6000), ("b-1-01", "b", 11000), ("b-2-01", "b", 4000)]
    data, _ = make_data_dir(tmp_path, spec)
    store = compute_fbank_store(ComputeFbankConfig(data, tmp_path / "fb", jobs=1, batch_seconds=0.5))
    assert store.meta["cmvn"] == "speaker_mean_var"
    cmvn = SpeakerCmvn.load(tmp_path / "fb" / "cmvn.npz")
    assert cmvn.speakers == ["a", "b"] and cmvn.stats.shape == (2, 2, 41)
    for k, spk in enumerate(["a", "b"]):
        utts = [u for u, s, _ in spec if s == spk]
        raw = np.concatenate([_torchaudio_reference(tmp_path / "audio" / f"{u}.flac") for u in utts]).astype(np.float64)
        np.testing.assert_allclose(cmvn.stats[k, 0, :-1], raw.sum(0), rtol=1e-6)
        np.testing.assert_allclose(cmvn.stats[k, 1, :-1], (raw**2).sum(0), rtol=1e-6)
        assert cmvn.stats[k, 0, -1] == len(raw)
        y = np.concatenate([store.utt(u) for u in utts]).astype(np.float64)
        np.testing.assert_allclose(y.mean(0), 0.0, atol=0.01)
        np.testing.assert_allclose(y.std(0), 1.0, atol=0.01)
        # only the final float16 rounding remains (utterance-centred storage before CMVN)
        np.testing.assert_allclose(y, (raw - raw.mean(0)) / raw.std(0), atol=4e-3)


def test_bad_audio_is_listed_and_the_rest_proceeds(tmp_path):
    spec = [("a-1-01", "a", 8000), ("a-1-02", "a", 7000), ("b-1-01", "b", 9000)]
    data, d = make_data_dir(tmp_path, spec)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + os.urandom(200))
    (bad / "empty.flac").write_bytes(b"")
    _write_audio(bad / "stereo.flac", 8000, 1, channels=2)
    _write_audio(bad / "8k.flac", 8000, 2, sr=8000)
    _write_audio(bad / "short.flac", 300, 3)
    _write_audio(bad / "liar.flac", 5000, 4)
    cases = {
        "c-1-01": ("corrupt.flac", 8000, "cannot decode"),
        "c-1-02": ("empty.flac", 8000, "cannot decode"),
        "c-1-03": ("stereo.flac", 8000, "multi-channel"),
        "c-1-04": ("8k.flac", 8000, "sample rate 8000"),
        "c-1-05": ("short.flac", 300, "too short"),
        "c-1-06": ("liar.flac", 6000, "utt2num_samples"),
        "c-1-07": ("missing.flac", 8000, "cannot decode"),
    }
    for u, (name, n, _) in cases.items():
        d.wav[u], d.utt2spk[u], d.utt2num_samples[u] = str(bad / name), "c", n
    d.write(data)
    with open(data / "wav.scp", "a") as f:  # an utterance without utt2spk entry (DataDir cannot write it)
        f.write(f"d-1-01 {tmp_path / 'audio' / 'a-1-01.flac'}\n")
    store = compute_fbank_store(ComputeFbankConfig(data, tmp_path / "fb", jobs=1, batch_seconds=0.3))
    assert store.utt_ids == ["a-1-01", "a-1-02", "b-1-01"]
    lines = (tmp_path / "fb" / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "utt_id\tpath\treason"
    rows = {r.split("\t")[0]: r.split("\t") for r in lines[1:]}
    assert sorted(rows) == sorted(cases) + ["d-1-01"]
    for u, (name, _, why) in cases.items():
        assert rows[u][1] == str(bad / name) and why in rows[u][2], rows[u]
    assert "no speaker" in rows["d-1-01"][2]
    assert store.meta["num_skipped"] == 8


def test_piped_wav_scp_entry(tmp_path):
    data, d = make_data_dir(tmp_path, [("a-1-01", "a", 8000)])
    src = d.wav["a-1-01"]
    d.wav["a-1-01"] = f"cat {src} |"
    d.write(data)
    store = compute_fbank_store(ComputeFbankConfig(data, tmp_path / "fb", cmvn="none", jobs=1))
    np.testing.assert_array_equal(store.utt("a-1-01"), _torchaudio_reference(src).astype(np.float16))


def test_resumable_and_force(tmp_path, caplog):
    data, _ = make_data_dir(tmp_path, [("a-1-01", "a", 8000), ("b-1-01", "b", 6000)])
    out = tmp_path / "fb"
    caplog.set_level("INFO")
    compute_fbank_store(ComputeFbankConfig(data, out, jobs=1))
    assert (out / ".stamp.json").is_file()
    feats = out / "feats.npy"
    os.utime(feats, (1, 1))
    compute_fbank_store(ComputeFbankConfig(data, out, jobs=1))
    assert feats.stat().st_mtime == 1 and "up to date" in caplog.text  # complete + same config: skipped
    compute_fbank_store(ComputeFbankConfig(data, out, jobs=1, force=True))
    assert feats.stat().st_mtime > 1
    os.utime(feats, (1, 1))
    compute_fbank_store(ComputeFbankConfig(data, out, FbankConfig(num_mel_bins=23), jobs=1))
    assert feats.stat().st_mtime > 1 and FeatureStore.open(out).dim == 23  # config changed: recomputed
    assert "option changed: fbank" in caplog.text
    os.utime(out / "feats.npy", (1, 1))
    (out / "meta.json").unlink()  # incomplete store: recomputed
    compute_fbank_store(ComputeFbankConfig(data, out, FbankConfig(num_mel_bins=23), jobs=1))
    assert (out / "feats.npy").stat().st_mtime > 1
    os.utime(out / "feats.npy", (1, 1))
    with open(data / "utt2spk", "w") as f:  # the data dir changed (both utterances one speaker): recomputed
        f.write("a-1-01 a\nb-1-01 a\n")
    store = compute_fbank_store(ComputeFbankConfig(data, out, FbankConfig(num_mel_bins=23), jobs=1))
    assert (out / "feats.npy").stat().st_mtime > 1 and "input changed: utt2spk" in caplog.text
    assert store.speakers == ["a", "a"]


def test_cli_options_reach_the_config(tmp_path):
    import argparse

    from data_prep.features.fbank import add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    data, _ = make_data_dir(tmp_path, [("a-1-01", "a", 8000)])
    args = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "fb"), "--frame-shift", "20",
                              "--num-mel-bins", "23", "--no-snip-edges", "--cmvn", "none", "--jobs", "1"])
    assert main(args) == 0
    store = FeatureStore.open(tmp_path / "fb")
    assert store.frame_shift == 0.02 and store.dim == 23 and store.meta["fbank"]["snip_edges"] is False
    assert store.num_frames == FbankConfig(frame_shift_ms=20, snip_edges=False).num_frames(8000)


def test_all_bad_is_a_clear_error(tmp_path):
    d = DataDir(wav={"a-1": str(tmp_path / "nope.flac")}, utt2spk={"a-1": "a"}, utt2num_samples={"a-1": 8000})
    d.write(tmp_path / "data")
    with pytest.raises(ValueError, match="no utterance could be processed"):
        compute_fbank_store(ComputeFbankConfig(tmp_path / "data", tmp_path / "fb", jobs=1))
    assert not (tmp_path / "fb").exists()


def _tiny_librispeech(root, speakers=("103", "1098"), chapters=("1240",), utts=3):
    """A LibriSpeech-layout tree with sine+noise audio and trans.txt files."""
    for si, spk in enumerate(speakers):
        for chap in chapters:
            cdir = root / "train" / spk / chap
            cdir.mkdir(parents=True)
            lines = []
            for k in range(utts):
                uid = f"{spk}-{chap}-{k:04d}"
                _write_audio(cdir / f"{uid}.flac", SR + 4000 * k + 1000 * si, si * 10 + k)
                lines.append(f"{uid} SOME WORDS {k}")
            (cdir / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root / "train"


@pytest.mark.e2e
def test_end_to_end_cli_with_two_jobs(tmp_path):
    from data_prep.cli import main as data_prep_main

    split = _tiny_librispeech(tmp_path / "LibriSpeech")
    d = DataDir()
    for flac in sorted(split.rglob("*.flac")):
        u = flac.name[: -len(".flac")]
        info = sf.info(flac)
        d.wav[u], d.utt2spk[u] = str(flac), u.split("-")[0]
        d.utt2num_samples[u], d.utt2dur[u] = info.frames, info.frames / SR
    for trans in split.rglob("*.trans.txt"):
        for line in trans.read_text().splitlines():
            u, _, words = line.partition(" ")
            d.text[u] = words
    d.write(tmp_path / "data" / "train")

    rc = data_prep_main(["compute-fbank", "--data", str(tmp_path / "data" / "train"),
                         "--out", str(tmp_path / "fbank" / "train"), "--jobs", "2", "--batch-seconds", "2"])
    assert rc == 0
    store = FeatureStore.open(tmp_path / "fbank" / "train")
    # the same split through two worker processes (forced despite the tiny amount of audio)
    two = compute_fbank_store(ComputeFbankConfig(tmp_path / "data" / "train", tmp_path / "fbank" / "two", jobs=2,
                                                 batch_seconds=2, min_seconds_per_job=0))
    assert two.utt_ids == store.utt_ids
    np.testing.assert_array_equal(np.asarray(two.feats), np.asarray(store.feats))
    assert store.utt_ids == d.utt_ids and len(store.utt_ids) == 6
    assert store.speakers == [d.utt2spk[u] for u in d.utt_ids]
    np.testing.assert_array_equal(store.lengths, [1 + (d.utt2num_samples[u] - 400) // 160 for u in d.utt_ids])
    meta = read_json(tmp_path / "fbank" / "train" / "meta.json")
    assert meta["cmvn"] == "speaker_mean_var" and meta["num_utts"] == 6 and meta["num_skipped"] == 0
    assert (tmp_path / "fbank" / "train" / "skipped.tsv").read_text() == "utt_id\tpath\treason\n"
    # jobs=1 gives the same features (order and values)
    rc = data_prep_main(["compute-fbank", "--data", str(tmp_path / "data" / "train"),
                         "--out", str(tmp_path / "fbank" / "one"), "--jobs", "1"])
    assert rc == 0
    np.testing.assert_array_equal(FeatureStore.open(tmp_path / "fbank" / "one").feats, store.feats)
    for spk in ("103", "1098"):
        rows = np.concatenate([store.utt(u) for u, s in zip(store.utt_ids, store.speakers) if s == spk])
        np.testing.assert_allclose(rows.astype(np.float64).mean(0), 0.0, atol=0.01)


@pytest.mark.e2e
def test_end_to_end_from_librispeech_layout_via_make_data_dir(tmp_path):
    """Corpus in LibriSpeech layout -> data-prep make-data-dir -> compute-fbank -> store."""
    pytest.importorskip("data_prep.corpus.librispeech")
    from data_prep.cli import main as data_prep_main

    _tiny_librispeech(tmp_path / "LibriSpeech", speakers=("19", "26"), utts=2)
    assert data_prep_main(["make-data-dir", "--corpus-dir", str(tmp_path / "LibriSpeech"), "--split", "train",
                           "--out", str(tmp_path / "data" / "train"), "--jobs", "1"]) == 0
    d = DataDir.load(tmp_path / "data" / "train")
    assert len(d.utt_ids) == 4
    assert data_prep_main(["compute-fbank", "--data", str(tmp_path / "data" / "train"),
                           "--out", str(tmp_path / "fbank" / "train"), "--jobs", "1"]) == 0
    store = FeatureStore.open(tmp_path / "fbank" / "train")
    assert store.utt_ids == d.utt_ids and store.speakers == [d.utt2spk[u] for u in d.utt_ids]
    np.testing.assert_array_equal(store.lengths, [1 + (d.utt2num_samples[u] - 400) // 160 for u in d.utt_ids])
    assert np.isfinite(np.asarray(store.feats, dtype=np.float32)).all()
