"""``data-prep make-data-dir``: one LibriSpeech-layout split -> a Kaldi-style data dir.

Input: ``<split>/<reader>/<chapter>/`` audio + ``trans.txt`` (see :mod:`data_prep.corpus.librispeech_scan`).
Output (``--out``, every table sorted in ``LC_ALL=C`` byte order, written atomically): ``wav.scp``
(absolute paths), ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur``, ``utt2num_samples``, ``spk2gender``
(when SPEAKERS.TXT is there), ``skipped.tsv`` (``utt_id<TAB>path<TAB>reason``, header line) and
``make_data_dir.json`` (configuration + counts; written last, so its presence marks a complete dir).

Speakers. Like Kaldi's ``egs/librispeech/s5/local/data_prep.sh`` the "speaker" of an utterance is the
reader *and chapter*, ``<reader>-<chapter>``: each chapter is its own speaker, so per-speaker CMVN is
computed per chapter (recording session), and every utterance id (``<reader>-<chapter>-<n>``) starts
with its speaker id as Kaldi's sorting rules require. ``spk2gender`` follows the same per-chapter keys.

Bad input is listed in ``skipped.tsv``, never fatal and never silent: unreadable/corrupt/truncated
audio, empty audio (no samples or shorter than one 25 ms frame), a sample rate other than
``--sample-rate`` (**rejected**, not resampled: reason ``sample rate X != 16000``), multi-channel audio,
audio without a transcript line, a transcript line without audio, empty transcripts, duplicate
utterance ids, malformed ``trans.txt`` lines and files placed in the wrong speaker/chapter directory.
A summary (kept N, skipped M by reason) is logged and stored in ``make_data_dir.json``.

Audio is checked in a process pool (``--jobs``, see :mod:`data_prep.corpus.audio_check`).

Up to date (``<out>/.stamp.json``, :class:`asr_base.stamp.Step`): the stage is skipped when the options
that shape the output, the split directory (every file's name, size and time) and SPEAKERS.TXT are
unchanged; otherwise it is redone and the log says why (``--force`` redoes it anyway).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json, write_json
from asr_base.stamp import STAMP_NAME, Step
from data_prep.corpus.audio_check import check_all_audio
from data_prep.corpus.data_dir import DataDir, write_table
from data_prep.corpus.librispeech_scan import find_split_dir, match_transcripts, read_speaker_genders, scan_split
from data_prep.corpus.skipped import SKIPPED_FILE, Skip, write_skipped

log = logging.getLogger(__name__)

REPORT_FILE = "make_data_dir.json"
OUTPUT_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", "utt2num_samples", SKIPPED_FILE)


@dataclass
class MakeDataDirConfig:
    corpus_dir: str = option(help="directory containing LibriSpeech/<split>, or <split>, or the split directory itself")
    split: str = option(help="split name, e.g. train-clean-100, dev-clean, train, dev")
    out: str = option(help="output data dir, e.g. data/train")
    sample_rate: int = option(16000, help="expected sample rate; other rates are rejected")
    min_duration: float = option(0.025, help="reject audio shorter than this many seconds "
                                             "(0.025 = one 25 ms fbank frame)")
    audio_ext: str = option("flac", help="audio file extension")
    decode_check: Literal["full", "ends", "header"] = option(
        "full", help="full: decode every sample; ends: first/last block; header: trust soundfile.info")
    jobs: int = option(2, help="processes checking audio")
    force: bool = option(False, help="redo even if the output is complete and up to date")

    def validate(self) -> None:
        if self.decode_check not in ("full", "ends", "header"):
            raise ValueError(f"--decode-check must be full, ends or header, got {self.decode_check!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"--sample-rate must be positive, got {self.sample_rate}")
        if self.min_duration < 0:
            raise ValueError(f"--min-duration must be >= 0, got {self.min_duration}")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {self.jobs}")

    def fingerprint(self) -> dict:
        """Options that change the output (not --jobs/--force; the split's place is a stamp input)."""
        return {"split": self.split, "sample_rate": self.sample_rate, "min_duration": self.min_duration,
                "audio_ext": self.audio_ext, "decode_check": self.decode_check}


def make_data_dir(cfg: MakeDataDirConfig) -> dict:
    """Run the stage; returns the summary dict also stored in ``<out>/make_data_dir.json``.

    Raises ``FileNotFoundError`` when the split does not exist and ``RuntimeError`` when not a
    single utterance survives (skipped.tsv is written first, so the reasons are on disk).
    """
    cfg.validate()
    t0 = time.time()
    out = Path(cfg.out)
    split_dir = find_split_dir(cfg.corpus_dir, cfg.split)
    speakers_txt = split_dir.parent / "SPEAKERS.TXT"
    step = Step(out / STAMP_NAME, f"make-data-dir {out}", config=dict(cfg.fingerprint(), split_dir=str(split_dir)),
                inputs={"split": split_dir, "SPEAKERS.TXT": speakers_txt})
    complete = (out / REPORT_FILE).is_file() and all((out / f).is_file() for f in OUTPUT_FILES)
    if complete and step.up_to_date(cfg.force):
        return read_json(out / REPORT_FILE)

    scan = scan_split(split_dir, cfg.audio_ext)
    log.info("%s: %d audio files, %d transcript lines", split_dir, len(scan.audio), len(scan.trans))
    if scan.ignored_files:
        log.warning("%s: ignored %d entries that are neither *.%s nor *.trans.txt (or not in <reader>/<chapter>/)",
                    split_dir, scan.ignored_files, cfg.audio_ext)
    pairs, skips = match_transcripts(scan, cfg.audio_ext)
    skips = scan.skipped + skips
    checks = check_all_audio([(u, p) for u, p, _, _ in pairs], cfg.sample_rate, cfg.min_duration, cfg.decode_check,
                             cfg.jobs, desc=f"checking audio ({cfg.split})")

    d = DataDir()
    for (utt, path, spk, text), chk in zip(pairs, checks):
        if chk.kind:
            skips.append(Skip(utt, path, chk.kind, chk.reason))
            continue
        d.wav[utt] = path
        d.text[utt] = text
        d.utt2spk[utt] = spk
        d.utt2num_samples[utt] = chk.num_samples
        d.utt2dur[utt] = chk.num_samples / cfg.sample_rate

    step.invalidate()
    (out / REPORT_FILE).unlink(missing_ok=True)  # the dir is incomplete until the report is rewritten
    out.mkdir(parents=True, exist_ok=True)
    write_skipped(out / SKIPPED_FILE, skips)
    by_kind = dict(sorted(Counter(s.kind for s in skips).items()))
    if not d.wav:
        raise RuntimeError(f"{split_dir}: no usable utterance ({len(skips)} skipped, see {out / SKIPPED_FILE}: "
                           f"{by_kind})")
    d.write(out)
    _write_spk2gender(out, d, speakers_txt)

    hours = sum(d.utt2dur.values()) / 3600
    summary = {
        "split_dir": str(split_dir),
        "config": cfg.fingerprint(),
        "kept": len(d.wav),
        "speakers": len(d.spk2utt),
        "hours": round(hours, 4),
        "skipped": len(skips),
        "skipped_by_reason": by_kind,
        "seconds": round(time.time() - t0, 2),
    }
    write_json(out / REPORT_FILE, summary)
    step.done(kept=summary["kept"])
    reasons = ", ".join(f"{k}: {v}" for k, v in by_kind.items())
    log.info("%s -> %s: kept %d utterances (%d speakers, %.2f h), skipped %d%s in %.1f s", cfg.split, out,
             summary["kept"], summary["speakers"], hours, len(skips), f" ({reasons})" if reasons else "",
             summary["seconds"])
    if skips:
        log.warning("%d utterances skipped; reasons in %s", len(skips), out / SKIPPED_FILE)
    return summary


def _write_spk2gender(out: Path, d: DataDir, speakers_txt: Path) -> None:
    """``spk2gender`` from SPEAKERS.TXT when it covers every speaker (reader of ``<reader>-<chapter>``)."""
    genders = read_speaker_genders(speakers_txt) if speakers_txt.is_file() else {}
    spk2gender = {spk: genders[spk.split("-", 1)[0]] for spk in d.spk2utt if spk.split("-", 1)[0] in genders}
    if spk2gender and len(spk2gender) == len(d.spk2utt):
        write_table(out / "spk2gender", spk2gender)
        return
    if genders:
        log.warning("SPEAKERS.TXT has no gender for %d of %d readers; not writing spk2gender",
                    len(d.spk2utt) - len(spk2gender), len(d.spk2utt))
    (out / "spk2gender").unlink(missing_ok=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, MakeDataDirConfig)


def main(args: argparse.Namespace) -> int:
    try:
        make_data_dir(from_args(MakeDataDirConfig, args))
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
