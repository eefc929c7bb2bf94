"""``data-prep combine-data-dirs``: several Kaldi data dirs -> one (like Kaldi's ``utils/combine_data.sh``).

Used by the LibriSpeech recipe to train on train-clean-100 + train-clean-360 (+ train-other-500).
Utterance ids must be unique across the inputs (LibriSpeech's are); a clash is an error, never a
silent overwrite. ``skipped.tsv`` files are concatenated so no skip is lost.

    data-prep combine-data-dirs --out data/train data/train-clean-100 data/train-clean-360
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import write_text
from data_prep.corpus.data_dir import DataDir
from data_prep.corpus.skipped import SKIPPED_FILE, SKIPPED_HEADER

log = logging.getLogger(__name__)


@dataclass
class CombineConfig:
    out: str = option(help="combined data dir")
    inputs: list[str] = option(cli=False, help="data dirs to combine")  # the positional arguments


def combine(inputs: list[Path], out: Path) -> DataDir:
    combined = DataDir()
    skipped_rows: list[str] = []
    for d in map(Path, inputs):
        part = DataDir.load(d)
        clash = set(part.wav) & set(combined.wav)
        if clash:
            raise ValueError(f"{d}: {len(clash)} utterance ids already seen, e.g. {sorted(clash)[:3]}")
        for attr in ("wav", "text", "utt2spk", "utt2dur", "utt2num_samples"):
            getattr(combined, attr).update(getattr(part, attr))
        skipped = d / SKIPPED_FILE
        if skipped.is_file():
            skipped_rows += skipped.read_text(encoding="utf-8").splitlines()[1:]
    out = Path(out)
    combined.write(out)
    write_text(out / SKIPPED_FILE, "\n".join([SKIPPED_HEADER, *skipped_rows]) + "\n")
    log.info("%s: %d utterances from %d data dirs (%d skipped upstream)", out, len(combined.wav), len(inputs),
             len(skipped_rows))
    return combined


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    add_options(parser, CombineConfig)
    parser.add_argument("inputs", nargs="+", help="data dirs to combine")


def main(args: argparse.Namespace) -> int:
    cfg = from_args(CombineConfig, args)
    try:
        combine(cfg.inputs, Path(cfg.out))
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
