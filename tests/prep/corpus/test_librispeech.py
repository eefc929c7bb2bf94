"""make-data-dir: LibriSpeech-layout split -> Kaldi data dir, with every kind of bad input listed."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpus import librispeech as ls
from data_prep.corpus.data_dir import DataDir, c_sorted, read_table
from data_prep.corpus.skipped import read_skipped
from data_prep.corpus.validate_data_dir import validate_data_dir

SR = 16000


def write_flac(path: Path, num_samples: int, sr: int = SR, channels: int = 1, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(num_samples)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (x * 32767 * 0.8).astype(np.int16), sr, subtype="PCM_16", format="FLAC")


def zero_sample_flac(path: Path, sr: int = SR) -> None:
    """A valid FLAC stream header (STREAMINFO) that declares 0 samples and has no audio frames."""
    bits = (sr << 44) | (0 << 41) | (15 << 36) | 0  # rate, channels-1, bits-1, total samples
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + bits.to_bytes(8, "big") + bytes(16)
    path.write_bytes(b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info)


def write_trans(chapter_dir: Path, reader: str, chapter: str, lines: list[str]) -> None:
    chapter_dir.mkdir(parents=True, exist_ok=True)
    (chapter_dir / f"{reader}-{chapter}.trans.txt").write_text("".join(f"{ln}\n" for ln in lines))


def build_good_corpus(root: Path, split: str = "dev-clean", n_utts: int = 3) -> dict[str, str]:
    """<root>/LibriSpeech/<split>: readers 19 and 201, two chapters each; returns {utt: transcript}."""
    good = {}
    split_dir = root / "LibriSpeech" / split
    seed = 0
    for reader, chapters in (("19", ("198", "227")), ("201", ("122255",))):
        for chapter in chapters:
            cdir = split_dir / reader / chapter
            lines = []
            for i in range(n_utts):
                utt = f"{reader}-{chapter}-{i:04d}"
                seed += 1
                write_flac(cdir / f"{utt}.flac", 2400 + 800 * i, seed=seed)
                text = f"HELLO WORLD NUMBER {i} OF {reader}"
                lines.append(f"{utt} {text}")
                good[utt] = text
            write_trans(cdir, reader, chapter, lines)
    (root / "LibriSpeech" / "SPEAKERS.TXT").write_text(
        "; ID |SEX| SUBSET | MINUTES | NAME\n19 | F | dev-clean | 25.19 | Kara Shallenberg\n"
        "201 | M | dev-clean | 25.03 | Bill\n")
    return good


def add_broken(split_dir: Path) -> dict[str, str]:
    """Adds one chapter of deliberately broken inputs; returns {utt: expected reason prefix}."""
    reader, chapter = "3000", "15664"
    cdir = split_dir / reader / chapter
    cdir.mkdir(parents=True)
    p = f"{reader}-{chapter}"
    expect = {}
    (cdir / f"{p}-0001.flac").write_bytes(np.random.default_rng(1).bytes(3000))
    expect[f"{p}-0001"] = "unreadable audio: not a FLAC file"
    (cdir / f"{p}-0002.flac").write_bytes(b"")
    expect[f"{p}-0002"] = "empty audio file (0 bytes)"
    zero_sample_flac(cdir / f"{p}-0003.flac")
    expect[f"{p}-0003"] = "empty audio"
    write_flac(cdir / f"{p}-0004.flac", 8000, sr=8000)
    expect[f"{p}-0004"] = "sample rate 8000 != 16000"
    write_flac(cdir / f"{p}-0005.flac", 4000, channels=2)
    expect[f"{p}-0005"] = "multi-channel audio (2 channels)"
    write_flac(cdir / f"{p}-0006.flac", 4000)  # no transcript line
    expect[f"{p}-0006"] = "missing transcript"
    expect[f"{p}-0007"] = "transcript without audio"  # transcript line, no file
    write_flac(cdir / f"{p}-0008.flac", 4000)
    expect[f"{p}-0008"] = "empty transcript"
    write_flac(cdir / f"{p}-0009.flac", 4000)
    expect[f"{p}-0009"] = "duplicate utterance id"
    write_flac(cdir / f"{p}-0010.flac", 200)  # 12.5 ms < one 25 ms frame
    expect[f"{p}-0010"] = "audio shorter than one frame"
    write_flac(cdir / f"{p}-0011.flac", 16000, seed=5)
    data = (cdir / f"{p}-0011.flac").read_bytes()
    (cdir / f"{p}-0011.flac").write_bytes(data[: len(data) // 2])  # header OK, frames cut off
    expect[f"{p}-0011"] = "corrupt audio"
    (cdir / f"{p}-0012.flac").write_bytes(b"fLaC" + np.random.default_rng(2).bytes(3000))  # corrupt header
    expect[f"{p}-0012"] = "unreadable audio"
    expect["9999-1-0001"] = "malformed trans.txt line"  # utterance id of another chapter
    lines = [f"{p}-{i:04d} SOME WORDS" for i in (1, 2, 3, 4, 5, 7, 9, 10, 11, 12)]
    lines += [f"{p}-0008", f"{p}-0009 OTHER WORDS", "9999-1-0001 WRONG CHAPTER"]
    write_trans(cdir, reader, chapter, lines)
    return expect


def run(root: Path, out: Path, split: str = "dev-clean", **kw) -> dict:
    cfg = ls.MakeDataDirConfig(corpus_dir=str(root), split=split, out=str(out), jobs=kw.pop("jobs", 1), **kw)
    return ls.make_data_dir(cfg)


def skipped_reasons(out: Path) -> dict[str, str]:
    return {u: r for u, _, r in read_skipped(out / "skipped.tsv")}


def test_good_corpus_all_kept_sorted_and_valid(tmp_path):
    good = build_good_corpus(tmp_path / "corpus")
    out = tmp_path / "data" / "dev"
    summary = run(tmp_path / "corpus", out)
    d = DataDir.load(out)
    assert set(d.wav) == set(good) and summary["kept"] == len(good) and summary["skipped"] == 0
    assert d.text == good
    # speaker = reader-chapter (Kaldi LibriSpeech recipe): 3 speaker-chapters
    assert d.utt2spk["19-198-0001"] == "19-198" and len(d.spk2utt) == 3
    for utt, path in d.wav.items():
        assert os.path.isabs(path) and Path(path).is_file() and Path(path).stem == utt
    assert d.utt2num_samples["19-198-0002"] == 2400 + 1600
    assert d.utt2dur["19-198-0002"] == pytest.approx(4000 / SR, abs=1e-3)
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", "utt2num_samples", "spk2gender"):
        keys = [ln.split(" ", 1)[0] for ln in (out / name).read_text().splitlines()]
        assert keys == c_sorted(keys) and len(keys) == len(set(keys)), name
    assert read_table(out / "spk2gender") == {"19-198": "f", "19-227": "f", "201-122255": "m"}
    assert (out / "skipped.tsv").read_text() == "utt_id\tpath\treason\n"
    assert validate_data_dir(out, sample_rate=SR) == []


def test_broken_inputs_listed_with_reasons_good_ones_kept(tmp_path):
    root = tmp_path / "corpus"
    good = build_good_corpus(root)
    expect = add_broken(root / "LibriSpeech" / "dev-clean")
    out = tmp_path / "data" / "dev"
    summary = run(root, out)
    reasons = skipped_reasons(out)
    assert set(reasons) == set(expect), (reasons, expect)
    for utt, prefix in expect.items():
        assert reasons[utt].startswith(prefix), (utt, reasons[utt])
    d = DataDir.load(out)
    assert set(d.wav) == set(good)  # every good utterance survives, nothing broken slips in
    assert summary["kept"] == len(good) and summary["skipped"] == len(expect)
    assert summary["skipped_by_reason"]["sample-rate"] == 1
    assert validate_data_dir(out, sample_rate=SR) == []


def test_corrupt_chapter_without_trans_file(tmp_path):
    root = tmp_path / "corpus"
    good = build_good_corpus(root)
    write_flac(root / "LibriSpeech" / "dev-clean" / "42" / "7" / "42-7-0000.flac", 3000)
    out = tmp_path / "out"
    run(root, out)
    reasons = skipped_reasons(out)
    assert reasons == {"42-7-0000": "missing transcript (no 42-7.trans.txt in its chapter directory)"}
    assert set(DataDir.load(out).wav) == set(good)


def test_non_utf8_transcript_file(tmp_path):
    root = tmp_path / "corpus"
    good = build_good_corpus(root)
    cdir = root / "LibriSpeech" / "dev-clean" / "5" / "6"
    write_flac(cdir / "5-6-0000.flac", 3000)
    (cdir / "5-6.trans.txt").write_bytes(b"5-6-0000 CAF\xe9\n")
    out = tmp_path / "out"
    run(root, out)
    rows = read_skipped(out / "skipped.tsv")
    assert [(u, r.split(":")[0]) for u, _, r in rows] == [
        ("-", "transcript file is not UTF-8"), ("5-6-0000", "missing transcript (5-6.trans.txt is not UTF-8)")]
    assert set(DataDir.load(out).wav) == set(good)


def test_misplaced_file_and_duplicate_audio(tmp_path):
    root = tmp_path / "corpus"
    build_good_corpus(root)
    split = root / "LibriSpeech" / "dev-clean"
    # the same utterance id in two chapter dirs, and a file whose id belongs to another chapter
    write_flac(split / "19" / "227" / "19-198-0000.flac", 3000)
    write_flac(split / "201" / "122255" / "201-9-0005.flac", 3000)
    with open(split / "201" / "122255" / "201-122255.trans.txt", "a") as f:
        f.write("201-9-0005 MISPLACED\n")
    out = tmp_path / "out"
    run(root, out)
    rows = read_skipped(out / "skipped.tsv")
    reasons = {(u, r.split(" (")[0].split(":")[0]) for u, _, r in rows}
    assert len(rows) == 3 and reasons == {
        ("19-198-0000", "duplicate utterance id"), ("201-9-0005", "malformed trans.txt line"),
        ("201-9-0005", "audio file name does not start with its directory's <reader>-<chapter>-")}
    assert "19-198-0000" not in DataDir.load(out).wav
    assert validate_data_dir(out) == []


@pytest.mark.parametrize("which", ["parent", "librispeech", "split"])
def test_corpus_dir_forms(tmp_path, which):
    root = tmp_path / "corpus"
    good = build_good_corpus(root, split="train")
    corpus_dir = {"parent": root, "librispeech": root / "LibriSpeech", "split": root / "LibriSpeech" / "train"}[which]
    out = tmp_path / "out"
    run(corpus_dir, out, split="train")
    assert set(DataDir.load(out).wav) == set(good)


def test_missing_split_is_a_clear_error(tmp_path):
    build_good_corpus(tmp_path / "corpus")
    with pytest.raises(FileNotFoundError, match="no split 'test-other'"):
        run(tmp_path / "corpus", tmp_path / "out", split="test-other")


def test_nothing_usable_fails_but_lists_reasons(tmp_path):
    cdir = tmp_path / "c" / "LibriSpeech" / "dev" / "1" / "2"
    write_flac(cdir / "1-2-0000.flac", 4000, sr=8000)
    write_trans(cdir, "1", "2", ["1-2-0000 HI"])
    with pytest.raises(RuntimeError, match="no usable utterance"):
        run(tmp_path / "c", tmp_path / "out", split="dev")
    assert skipped_reasons(tmp_path / "out") == {"1-2-0000": "sample rate 8000 != 16000"}
    assert not (tmp_path / "out" / ls.REPORT_FILE).exists()


def test_sample_rate_option(tmp_path):
    cdir = tmp_path / "c" / "dev" / "1" / "2"
    write_flac(cdir / "1-2-0000.flac", 4000, sr=8000)
    write_flac(cdir / "1-2-0001.flac", 4000, sr=16000)
    write_trans(cdir, "1", "2", ["1-2-0000 HI", "1-2-0001 THERE"])
    run(tmp_path / "c", tmp_path / "out", split="dev", sample_rate=8000)
    d = DataDir.load(tmp_path / "out")
    assert list(d.wav) == ["1-2-0000"] and d.utt2dur["1-2-0000"] == pytest.approx(0.5)
    assert skipped_reasons(tmp_path / "out") == {"1-2-0001": "sample rate 16000 != 8000"}


@pytest.mark.parametrize("mode", ["ends", "header"])
def test_cheaper_decode_checks(tmp_path, mode):
    root = tmp_path / "corpus"
    good = build_good_corpus(root)
    add_broken(root / "LibriSpeech" / "dev-clean")
    run(root, tmp_path / "out", decode_check=mode)
    reasons = skipped_reasons(tmp_path / "out")
    assert reasons["3000-15664-0001"].startswith("unreadable audio")
    assert reasons["3000-15664-0003"].startswith("empty audio")
    kept = set(DataDir.load(tmp_path / "out").wav)
    assert good.keys() <= kept
    if mode == "ends":  # the truncated file fails when its last block is decoded
        assert reasons["3000-15664-0011"].startswith("corrupt audio")


def test_resume_skips_then_redoes_when_inputs_change(tmp_path, caplog):
    root = tmp_path / "corpus"
    build_good_corpus(root)
    out = tmp_path / "out"
    run(root, out)
    report = out / ls.REPORT_FILE
    first = report.stat().st_mtime_ns
    caplog.set_level("INFO")
    run(root, out)
    assert report.stat().st_mtime_ns == first and "skipping" in caplog.text
    # a new utterance in the corpus makes the output stale
    time.sleep(0.01)
    cdir = root / "LibriSpeech" / "dev-clean" / "19" / "198"
    write_flac(cdir / "19-198-0100.flac", 4000)
    with open(cdir / "19-198.trans.txt", "a") as f:
        f.write("19-198-0100 A NEW ONE\n")
    future = time.time() + 5
    os.utime(cdir / "19-198.trans.txt", (future, future))
    run(root, out)
    assert "19-198-0100" in DataDir.load(out).wav
    # different options redo it: 0.2 s minimum drops the 0.15 s utterances
    summary = run(root, out, min_duration=0.2)
    assert summary["skipped_by_reason"] == {"too-short": 3}
    # --force redoes it even when nothing changed
    before = report.stat().st_mtime_ns
    time.sleep(0.01)
    run(root, out, min_duration=0.2, force=True)
    assert report.stat().st_mtime_ns != before


@pytest.mark.e2e
def test_cli_end_to_end_with_pool(tmp_path):
    """The registered subcommands, with a 2-process pool, then validation."""
    from data_prep import cli

    root = tmp_path / "corpus"
    good = build_good_corpus(root, n_utts=25)  # 75 files: enough to use the process pool
    expect = add_broken(root / "LibriSpeech" / "dev-clean")
    out = tmp_path / "data" / "dev"
    rc = cli.main(["make-data-dir", "--corpus-dir", str(root), "--split", "dev-clean", "--out", str(out),
                   "--jobs", "2"])
    assert rc == 0
    assert set(DataDir.load(out).wav) == set(good)
    assert set(skipped_reasons(out)) == set(expect)
    assert cli.main(["validate-data-dir", str(out), "--sample-rate", "16000"]) == 0
    assert cli.main(["make-data-dir", "--corpus-dir", str(root), "--split", "nope", "--out", str(out)]) == 1


@pytest.mark.e2e
def test_synthesised_tiny_corpus_end_to_end(tmp_path):
    """The offline mini corpus (synth-corpus --tiny) becomes valid data dirs with nothing skipped."""
    import shutil

    if shutil.which("flite") is None or shutil.which("sox") is None:
        pytest.skip("flite/sox not installed (synth-corpus needs them)")
    from data_prep import cli

    corpus = tmp_path / "corpus"
    assert cli.main(["synth-corpus", "--out-dir", str(corpus), "--tiny", "--jobs", "1", "--no-progress"]) == 0
    for split in ("train", "dev", "test"):
        n_flac = len(list((corpus / "LibriSpeech" / split).rglob("*.flac")))
        out = tmp_path / "data" / split
        summary = run(corpus / "LibriSpeech", out, split=split)
        assert summary["kept"] == n_flac > 0 and summary["skipped"] == 0
        assert validate_data_dir(out, sample_rate=SR) == []
        d = DataDir.load(out)
        assert all(u.startswith(d.utt2spk[u] + "-") for u in d.wav)
        assert set((out / "spk2gender").read_text().split()[1::2]) <= {"m", "f"}
