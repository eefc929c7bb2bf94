"""synth-corpus end to end with the tiny preset: layout, audio format, disjointness, determinism,
resume, option changes, and the command line (preset + overrides)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpus.synth import text as T
from data_prep.corpus.synth import voices as V
from data_prep.corpus.synth.plan import harvest_pool, plan_corpus
from data_prep.corpus.synth.synth_config import SPLITS, SynthConfig
from data_prep.corpus.synth.synth_corpus import synthesize_corpus

needs_sox_flite = pytest.mark.skipif(bool(V.missing_tools(["flite:slt"])), reason="sox/flite not installed")


def _read_corpus(root: Path) -> dict:
    """{split: {utt: transcript}} from the trans.txt files, checking the LibriSpeech layout on the way."""
    out = {}
    for split in SPLITS:
        out[split] = {}
        for trans in sorted((root / "LibriSpeech" / split).glob("*/*/*.trans.txt")):
            spk, chap = trans.parent.parent.name, trans.parent.name
            assert re.fullmatch(r"\d{4}", spk) and re.fullmatch(rf"{spk}\d", chap)
            assert trans.name == f"{spk}-{chap}.trans.txt"
            for line in trans.read_text().splitlines():
                utt, text = line.split(" ", 1)
                assert re.fullmatch(rf"{spk}-{chap}-\d{{4}}", utt)
                assert (trans.parent / f"{utt}.flac").is_file()
                out[split][utt] = text
            flacs = {p.stem for p in trans.parent.glob("*.flac")}
            assert flacs == {line.split()[0] for line in trans.read_text().splitlines()}
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if V.missing_tools(["flite:slt"]):
        pytest.skip("sox/flite not installed")
    root = tmp_path_factory.mktemp("tiny")
    manifest = synthesize_corpus(SynthConfig.tiny(), root, jobs=2, progress=False)
    return root, manifest


@pytest.mark.e2e
def test_tiny_layout_audio_and_transcripts(tiny):
    root, manifest = tiny
    corpus = _read_corpus(root)
    assert all(corpus[s] for s in SPLITS)
    vocab = T.load_cmudict_words()
    for split in SPLITS:
        assert manifest["splits"][split]["utterances"] == len(corpus[split])
        for utt, text in corpus[split].items():
            assert text == text.upper() and all(w.lower() in vocab for w in text.split())
            spk, chap, _ = utt.split("-")
            info = sf.info(str(root / "LibriSpeech" / split / spk / chap / f"{utt}.flac"))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert 1.0 < info.duration < 20
    assert manifest["failed_utterances"] == 0
    assert (root / "synth_failures.tsv").read_text().splitlines() == ["split\tutt_id\treason"]


@pytest.mark.e2e
def test_tiny_speakers_txt_and_disjointness(tiny):
    root, _ = tiny
    corpus = _read_corpus(root)
    rows = [line for line in (root / "LibriSpeech" / "SPEAKERS.TXT").read_text().splitlines()
            if not line.startswith(";")]
    table = {}
    for row in rows:
        sid, sex, subset, minutes, name = [f.strip() for f in row.split("|")]
        assert sex in ("M", "F") and float(minutes) > 0 and name
        table[sid] = subset
    spk = {s: {u.split("-")[0] for u in corpus[s]} for s in SPLITS}
    assert not spk["train"] & spk["dev"] and not spk["train"] & spk["test"]
    assert all(table[x] == s for s in SPLITS for x in spk[s])
    import json

    speakers = json.loads((root / "speakers.json").read_text())
    voice = {str(x["speaker_id"]): x["voice"] for x in speakers}
    assert {voice[x] for x in spk["test"]} & set(SynthConfig.tiny().test_only_voices)
    assert not {voice[x] for x in spk["train"] | spk["dev"]} & set(SynthConfig.tiny().test_only_voices)
    # no dev/test sentence in train utterances or in the LM text
    lm = set((root / "lm_text.txt").read_text().splitlines())
    assert lm and all(line == line.upper() for line in lm)
    cfg = SynthConfig.tiny()
    plan = plan_corpus(cfg, root, list(harvest_pool(cfg.min_words, cfg.max_words)[0]))
    heldout = {x.transcript for s in ("dev", "test") for x in plan.pools[s]}
    assert not lm & heldout
    train_text = " | ".join(corpus["train"].values())
    for sent in plan.used["dev"] + plan.used["test"]:
        assert sent.transcript not in train_text
        assert any(sent.transcript in t for s in ("dev", "test") for t in corpus[s].values())


@pytest.mark.e2e
def test_tiny_phone_timings_match_audio(tiny):
    root, _ = tiny
    files = sorted((root / "phone_timings").glob("*/*.txt"))
    assert files
    for f in files:
        rows = [line.split() for line in f.read_text().splitlines()]
        start = np.array([float(r[0]) for r in rows])
        end = np.array([float(r[1]) for r in rows])
        assert np.all(end > start - 1e-9) and np.allclose(start[1:], end[:-1])
        utt = f.stem
        spk, chap, _ = utt.split("-")
        dur = sf.info(str(root / "LibriSpeech" / f.parent.name / spk / chap / f"{utt}.flac")).duration
        tail = dur - end[-1]
        assert start[0] == 0 or 0.099 <= start[0] <= 0.401  # the leading pad (0.1-0.4 s)
        assert 0.04 <= tail <= 0.5  # trailing pad (0.1-0.4 s) +- sox tempo rounding


@pytest.mark.e2e
def test_tiny_is_deterministic_and_resumable(tiny, tmp_path):
    root, manifest = tiny
    other = tmp_path / "again"
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)  # different job count
    a, b = _read_corpus(root), _read_corpus(other)
    assert a == b
    for flac in (root / "LibriSpeech").glob("*/*/*/*.flac"):
        assert flac.read_bytes() == (other / flac.relative_to(root)).read_bytes()
    assert (root / "lm_text.txt").read_bytes() == (other / "lm_text.txt").read_bytes()

    # complete + same config: skipped, nothing rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)
    assert mtimes == {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}

    # a lost chapter is redone (and only that one)
    chap_dir = next((other / "LibriSpeech" / "train").glob("*/*"))
    shutil.rmtree(chap_dir)
    keep = next((other / "LibriSpeech" / "dev").glob("*/*/*.flac"))
    keep_mtime = keep.stat().st_mtime_ns
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, progress=False)
    assert _read_corpus(other) == a and keep.stat().st_mtime_ns == keep_mtime

    # --force regenerates an up-to-date corpus
    keep_mtime = keep.stat().st_mtime_ns
    synthesize_corpus(SynthConfig.tiny(), other, jobs=1, force=True, progress=False)
    assert _read_corpus(other) == a and keep.stat().st_mtime_ns != keep_mtime


@pytest.mark.e2e
@needs_sox_flite
def test_changed_option_replaces_the_corpus(tmp_path, caplog):
    small = dataclasses.replace(SynthConfig.tiny(), train_hours=8.0 / 3600, num_train_speakers=1, dev_minutes=4.0 / 60,
                                test_minutes=4.0 / 60)
    synthesize_corpus(small, tmp_path, jobs=1, progress=False)
    first = _read_corpus(tmp_path)
    caplog.set_level("INFO")
    synthesize_corpus(dataclasses.replace(small, seed=1), tmp_path, jobs=1, progress=False)
    assert "option changed: seed 0 -> 1" in caplog.text and "replacing it" in caplog.text
    assert _read_corpus(tmp_path)["train"] != first["train"]
    assert json.loads((tmp_path / "synth_manifest.json").read_text())["config"]["seed"] == 1


def test_cli_help_and_list_voices(capsys):
    from data_prep.cli import main

    with pytest.raises(SystemExit) as e:
        main(["synth-corpus", "--help"])
    assert e.value.code == 0
    assert "--tiny" in capsys.readouterr().out
    assert main(["synth-corpus", "--list-voices"]) == 0
    assert "festival:ked_diphone" in capsys.readouterr().out


def test_cli_options_override_the_preset():
    import argparse

    from data_prep.corpus.synth.synth_corpus import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--tiny", "--seed", "5", "--num-train-speakers", "3"]))
    assert cfg == dataclasses.replace(SynthConfig.tiny(), seed=5, num_train_speakers=3)
    cfg = config_from_args(parser.parse_args(["--voices", "flite:slt,flite:rms", "--no-phone-timings"]))
    assert cfg.voices == ("flite:slt", "flite:rms") and not cfg.phone_timings and cfg.train_hours == 2.0
