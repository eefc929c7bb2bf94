"""``data-prep prepare-fsdd``: the Free Spoken Digit Dataset (real 8 kHz speech) -> Kaldi data dirs by speaker.

Input: ``<corpus-dir>/recordings/{digit}_{speaker}_{index}.wav`` (mono, 8 kHz, 16-bit PCM; see the corpus'
README). Output: ``<out>/{train,dev,test}`` Kaldi data dirs (``wav.scp`` with absolute paths into the corpus,
which is read in place and never copied; ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur``, ``utt2num_samples``,
``skipped.tsv``, ``make_data_dir.json`` written last) and ``<out>/prepare_fsdd.json`` (configuration + counts).

- **Speaker-independent split**: whole speakers are held out (``--train-speakers`` / ``--dev-speakers`` /
  ``--test-speakers``; default 3 / 1 / 1: george, lucas, yweweler train, nicolas dev, jackson test). The
  corpus' own convention (takes 0-4 test, 5-49 train, same speakers) would measure speaker-dependent
  recognition; a held-out speaker is the realistic test. A speaker in two splits is an error.
- **Transcripts** are digit words in upper case like LibriSpeech (``0`` -> ``ZERO`` ... ``9`` -> ``NINE``),
  so the lexicon comes from CMUdict as for every other corpus.
- Utterance ids are ``<speaker>-<digit>-<take>`` (take zero-padded), so every id starts with its speaker id as
  Kaldi's sorting rules require.
- ``--utts-per-speaker N`` keeps the first ``N`` recordings of each speaker in (take, digit) order, i.e. the
  same takes of every digit (a balanced subset for quick runs); 0 keeps all 500.
- The audio is **native 8 kHz on purpose**: ``--sample-rate`` (default 8000) is what every file must have;
  any other rate is listed, not resampled (compute the features with ``compute-fbank --sample-frequency
  8000``). Bad audio (unreadable, corrupt, truncated, empty, stereo, wrong rate, shorter than one frame),
  names that do not follow the pattern and speakers assigned to no split are listed in ``skipped.tsv``
  (``<out>/<split>/skipped.tsv``; files that belong to no split in ``<out>/skipped.tsv``), never fatal.
  The audio checks are :mod:`data_prep.corpus.audio_check`, the same as ``make-data-dir``'s.

Up to date (``<out>/.fsdd.stamp.json``, :class:`asr_base.stamp.Step`): skipped when the options and the
recordings directory (names, sizes, times) are unchanged (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json, write_json
from asr_base.stamp import Step
from data_prep.corpus.audio_check import check_all_audio
from data_prep.corpus.data_dir import DataDir
from data_prep.corpus.librispeech import REPORT_FILE
from data_prep.corpus.skipped import SKIPPED_FILE, Skip, write_skipped

log = logging.getLogger(__name__)

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
NAME_RE = re.compile(r"^([0-9])_([A-Za-z0-9]+)_([0-9]+)\.wav$")
SUMMARY_FILE = "prepare_fsdd.json"
STAMP = ".fsdd.stamp.json"
SPLITS = ("train", "dev", "test")
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd"  # <repo>/../shared/data/fsdd


@dataclass
class PrepareFsddConfig:
    corpus_dir: str = option(str(DEFAULT_CORPUS), help="FSDD directory (holds recordings/); read in place "
                                                        "(default: ../shared/data/fsdd next to the repository)")
    out: str = option("data", help="writes <out>/train, <out>/dev, <out>/test")
    train_speakers: list[str] = option(["george", "lucas", "yweweler"], help="speakers of the train split")
    dev_speakers: list[str] = option(["nicolas"], help="speakers of the dev split (held out)")
    test_speakers: list[str] = option(["jackson"], help="speakers of the test split (held out)")
    utts_per_speaker: int = option(0, help="keep the first N recordings per speaker in (take, digit) order "
                                           "(0 = all)")
    sample_rate: int = option(8000, help="the rate every file must have (others are listed, not resampled)")
    min_duration: float = option(0.025, help="reject audio shorter than this many seconds (one 25 ms frame)")
    jobs: int = option(2, help="processes checking audio")
    force: bool = option(False, help="redo even if the output is up to date")

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for split, spks in zip(SPLITS, (self.train_speakers, self.dev_speakers, self.test_speakers)):
            if not spks:
                raise ValueError(f"--{split}-speakers is empty: every split needs at least one speaker")
            for s in spks:
                if s in seen:
                    raise ValueError(f"speaker {s!r} is in both {seen[s]} and {split}: the split must be "
                                     f"speaker-independent")
                seen[s] = split
        if self.utts_per_speaker < 0:
            raise ValueError(f"--utts-per-speaker must be >= 0, got {self.utts_per_speaker}")
        if self.sample_rate <= 0:
            raise ValueError(f"--sample-rate must be positive, got {self.sample_rate}")

    def speaker_split(self) -> dict[str, str]:
        return {s: split for split, spks in zip(SPLITS, (self.train_speakers, self.dev_speakers,
                                                         self.test_speakers)) for s in spks}

    def fingerprint(self) -> dict:
        return {"train_speakers": self.train_speakers, "dev_speakers": self.dev_speakers,
                "test_speakers": self.test_speakers, "utts_per_speaker": self.utts_per_speaker,
                "sample_rate": self.sample_rate, "min_duration": self.min_duration}


@dataclass
class Recording:
    utt_id: str
    path: str
    speaker: str
    digit: int
    take: int


def scan_recordings(rec_dir: Path) -> tuple[list[Recording], list[Skip]]:
    """Every ``*.wav`` of ``rec_dir`` that follows the naming pattern; any other entry is a listed skip."""
    recs, skips = [], []
    for p in sorted(rec_dir.iterdir()):
        m = NAME_RE.match(p.name)
        if not m or not p.is_file():
            skips.append(Skip(p.stem, str(p.absolute()), "bad-name",
                              f"not a recording named <digit>_<speaker>_<take>.wav: {p.name}"))
            continue
        digit, spk, take = int(m.group(1)), m.group(2), int(m.group(3))
        recs.append(Recording(f"{spk}-{digit}-{take:03d}", str(p.absolute()), spk, digit, take))
    return recs, skips


def select(recs: list[Recording], per_speaker: int) -> list[Recording]:
    """The first ``per_speaker`` recordings of each speaker in (take, digit) order (all when 0)."""
    by_spk: dict[str, list[Recording]] = {}
    for r in recs:
        by_spk.setdefault(r.speaker, []).append(r)
    out = []
    for spk in sorted(by_spk):
        rs = sorted(by_spk[spk], key=lambda r: (r.take, r.digit))
        out.extend(rs[:per_speaker] if per_speaker > 0 else rs)
    return out


def prepare_fsdd(cfg: PrepareFsddConfig) -> dict:
    """Run the stage; returns the summary also stored in ``<out>/prepare_fsdd.json``."""
    t0 = time.time()
    out = Path(cfg.out)
    rec_dir = Path(cfg.corpus_dir) / "recordings"
    if not rec_dir.is_dir():
        raise FileNotFoundError(f"{rec_dir}: no such directory (--corpus-dir must hold FSDD's recordings/)")
    step = Step(out / STAMP, f"prepare-fsdd {out}", config=dict(cfg.fingerprint(), corpus=str(rec_dir.absolute())),
                inputs={"recordings": rec_dir})
    complete = (out / SUMMARY_FILE).is_file() and all((out / s / REPORT_FILE).is_file() for s in SPLITS)
    if complete and step.up_to_date(cfg.force):
        return read_json(out / SUMMARY_FILE)
    step.digests()
    recs, outside = scan_recordings(rec_dir)
    spk_split = cfg.speaker_split()
    for spk in sorted({r.speaker for r in recs} - set(spk_split)):
        log.warning("speaker %s is in no split: its recordings are listed in %s", spk, out / SKIPPED_FILE)
    outside += [Skip(r.utt_id, r.path, "no-split", f"speaker {r.speaker} is in no split") for r in recs
                if r.speaker not in spk_split]
    missing = sorted(set(spk_split) - {r.speaker for r in recs})
    if missing:
        raise ValueError(f"{rec_dir}: no recordings of speaker(s) {missing} (check --*-speakers)")
    chosen = select([r for r in recs if r.speaker in spk_split], cfg.utts_per_speaker)
    checks = check_all_audio([(r.utt_id, r.path) for r in chosen], cfg.sample_rate, cfg.min_duration, "full",
                             cfg.jobs, desc="checking audio (fsdd)")
    step.invalidate()
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    write_skipped(out / SKIPPED_FILE, outside)
    summary = {"corpus": str(rec_dir.absolute()), "config": cfg.fingerprint(), "recordings": len(recs),
               "not_in_a_split": len(outside), "splits": {}}
    for split in SPLITS:
        d, skips = DataDir(), []
        for r, chk in zip(chosen, checks):
            if spk_split[r.speaker] != split:
                continue
            if chk.kind:
                skips.append(Skip(r.utt_id, r.path, chk.kind, chk.reason))
                continue
            d.wav[r.utt_id] = r.path
            d.text[r.utt_id] = DIGIT_WORDS[r.digit]
            d.utt2spk[r.utt_id] = r.speaker
            d.utt2num_samples[r.utt_id] = chk.num_samples
            d.utt2dur[r.utt_id] = chk.num_samples / cfg.sample_rate
        sdir = out / split
        (sdir / REPORT_FILE).unlink(missing_ok=True)
        sdir.mkdir(parents=True, exist_ok=True)
        write_skipped(sdir / SKIPPED_FILE, skips)
        by_kind = dict(sorted(Counter(s.kind for s in skips).items()))
        if not d.wav:
            raise RuntimeError(f"{split}: no usable recording ({len(skips)} skipped, see {sdir / SKIPPED_FILE}: "
                               f"{by_kind})")
        d.write(sdir)
        info = {"kept": len(d.wav), "speakers": sorted(d.spk2utt), "hours": round(sum(d.utt2dur.values()) / 3600, 4),
                "skipped": len(skips), "skipped_by_reason": by_kind}
        write_json(sdir / REPORT_FILE, dict(info, config=dict(cfg.fingerprint(), split=split),
                                            split_dir=str(rec_dir.absolute())))
        summary["splits"][split] = info
        log.info("%s: %d recordings of %s (%.1f min), skipped %d%s", split, len(d.wav), ",".join(sorted(d.spk2utt)),
                 info["hours"] * 60, len(skips), f" {by_kind}" if skips else "")
        if skips:
            log.warning("%s: %d recordings skipped; reasons in %s", split, len(skips), sdir / SKIPPED_FILE)
    summary["seconds"] = round(time.time() - t0, 2)
    write_json(out / SUMMARY_FILE, summary)
    step.done(**{s: v["kept"] for s, v in summary["splits"].items()})
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Free Spoken Digit Dataset (8 kHz) -> Kaldi data dirs <out>/{train,dev,test}, split by "
                          "speaker; bad audio and unexpected files are listed in skipped.tsv with the reason.")
    add_options(parser, PrepareFsddConfig)


def main(args: argparse.Namespace) -> int:
    try:
        prepare_fsdd(from_args(PrepareFsddConfig, args))
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
