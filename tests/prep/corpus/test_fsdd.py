"""prepare-fsdd: FSDD-layout recordings -> speaker-independent Kaldi data dirs, bad audio listed with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_base.io import read_json
from data_prep.corpus.data_dir import DataDir
from data_prep.corpus.fsdd import PrepareFsddConfig, prepare_fsdd
from data_prep.corpus.skipped import read_skipped
from data_prep.corpus.validate_data_dir import validate_data_dir

SPEAKERS = ("anna", "bert", "carl", "dora")


def _wav(path: Path, n: int, sr: int = 8000, channels: int = 1, seed: int = 0) -> None:
    x = 0.3 * np.sin(2 * np.pi * (200 + 10 * seed) * np.arange(n) / sr)
    sf.write(path, np.stack([x] * channels, 1) if channels > 1 else x, sr, subtype="PCM_16")


def _corpus(root: Path, takes: int = 3) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for k, spk in enumerate(SPEAKERS):
        for digit in range(10):
            for take in range(takes):
                _wav(rec / f"{digit}_{spk}_{take}.wav", 2400 + 100 * take, seed=k + digit)
    return root


def _cfg(root: Path, **kw) -> PrepareFsddConfig:
    base = dict(corpus_dir=str(root), out=str(root / "data"), train_speakers=["anna", "bert"],
                dev_speakers=["carl"], test_speakers=["dora"], jobs=1)
    return PrepareFsddConfig(**dict(base, **kw))


def test_speaker_independent_split_digit_words_and_subset(tmp_path):
    root = _corpus(tmp_path)
    summary = prepare_fsdd(_cfg(root, utts_per_speaker=12))
    spk = {}
    for split in ("train", "dev", "test"):
        validate_data_dir(root / "data" / split)
        d = DataDir.load(root / "data" / split)
        spk[split] = set(d.utt2spk.values())
        assert len(d.wav) == 12 * len(spk[split]) == summary["splits"][split]["kept"]
        for u, t in d.text.items():  # <speaker>-<digit>-<take>, transcript = the digit's word
            s, digit, take = u.split("-")
            assert t == ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"][int(digit)]
            assert s == d.utt2spk[u] and Path(d.wav[u]).name == f"{digit}_{s}_{int(take)}.wav"
        # the first 12 in (take, digit) order: every digit once, then digits 0 and 1 of take 1
        assert sorted(u.split("-", 1)[1] for u in d.wav if u.startswith(sorted(spk[split])[0])) == sorted(
            [f"{i}-000" for i in range(10)] + ["0-001", "1-001"])
        assert read_json(root / "data" / split / "make_data_dir.json")["config"]["sample_rate"] == 8000
    assert spk == {"train": {"anna", "bert"}, "dev": {"carl"}, "test": {"dora"}}


def test_bad_audio_and_unexpected_files_are_listed_not_fatal(tmp_path):
    root = _corpus(tmp_path, takes=1)
    rec = root / "recordings"
    _wav(rec / "3_anna_7.wav", 2400, sr=16000)  # wrong rate
    _wav(rec / "4_anna_7.wav", 2400, channels=2)  # stereo
    (rec / "5_bert_7.wav").write_bytes(b"")  # empty file
    (rec / "6_bert_7.wav").write_bytes(b"RIFF\x00\x01\x00\x00WAVEjunkjunk")  # corrupt
    _wav(rec / "7_carl_7.wav", 100)  # shorter than one 25 ms frame
    _wav(rec / "notes.wav", 2400)  # bad name
    _wav(rec / "1_eve_0.wav", 2400)  # a speaker in no split
    summary = prepare_fsdd(_cfg(root))
    reasons = {u: r for split in ("train", "dev", "test") for u, _, r in read_skipped(root / "data" / split / "skipped.tsv")}
    assert "sample rate 16000 != 8000" in reasons["anna-3-007"]
    assert "multi-channel" in reasons["anna-4-007"]
    assert "empty" in reasons["bert-5-007"]
    assert "unreadable" in reasons["bert-6-007"] or "corrupt" in reasons["bert-6-007"]
    assert "shorter than one frame" in reasons["carl-7-007"]
    outside = {u: r for u, _, r in read_skipped(root / "data" / "skipped.tsv")}
    assert "not a recording named" in outside["notes"] and "in no split" in outside["eve-1-000"]
    assert [summary["splits"][s]["kept"] for s in ("train", "dev", "test")] == [20, 10, 10]  # the good ones all kept
    assert summary["splits"]["train"]["skipped"] == 4 and summary["splits"]["dev"]["skipped_by_reason"] == {
        "too-short": 1}


def test_rerun_is_up_to_date_and_a_changed_option_rebuilds(tmp_path, caplog):
    root = _corpus(tmp_path, takes=2)
    prepare_fsdd(_cfg(root))
    text = root / "data" / "dev" / "text"
    mtime = text.stat().st_mtime_ns
    prepare_fsdd(_cfg(root))
    assert text.stat().st_mtime_ns == mtime
    prepare_fsdd(_cfg(root, utts_per_speaker=5))
    assert len(DataDir.load(root / "data" / "dev").wav) == 5


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="both train and test"):
        _cfg(tmp_path, test_speakers=["anna"])
    with pytest.raises(FileNotFoundError, match="recordings"):
        prepare_fsdd(_cfg(tmp_path))
    root = _corpus(tmp_path / "c", takes=1)
    with pytest.raises(ValueError, match="no recordings of speaker"):
        prepare_fsdd(_cfg(root, test_speakers=["zoe"]))
