"""Combine several Kaldi data dirs into one (like Kaldi's ``utils/combine_data.sh``).

Used by the LibriSpeech recipe to train on train-clean-100 + train-clean-360 (+ train-other-500).
Utterance ids must be unique across the inputs (LibriSpeech's are); a clash is an error, never a
silent overwrite. ``skipped.tsv`` files are concatenated so no skip is lost.

    python -m data_prep.corpus.combine_data_dirs --out data/train data/train-clean-100 data/train-clean-360
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr_base.cli import setup_logging
from asr_base.io import write_text
from data_prep.corpus.data_dir import DataDir

log = logging.getLogger(__name__)


def combine(inputs: list[Path], out: Path) -> DataDir:
    combined = DataDir()
    skipped_rows: list[str] = []
    for d in inputs:
        part = DataDir.load(d)
        clash = set(part.wav) & set(combined.wav)
        if clash:
            raise ValueError(f"{d}: {len(clash)} utterance ids already seen, e.g. {sorted(clash)[:3]}")
        for attr in ("wav", "text", "utt2spk", "utt2dur", "utt2num_samples"):
            getattr(combined, attr).update(getattr(part, attr))
        skipped = d / "skipped.tsv"
        if skipped.is_file():
            skipped_rows += skipped.read_text(encoding="utf-8").splitlines()[1:]
    combined.write(out)
    write_text(out / "skipped.tsv", "\n".join(["utt_id\tpath\treason", *skipped_rows]) + "\n")
    log.info("%s: %d utterances from %d data dirs (%d skipped upstream)", out, len(combined.wav), len(inputs),
             len(skipped_rows))
    return combined


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="combined data dir")
    p.add_argument("inputs", type=Path, nargs="+", help="data dirs to combine")
    args = p.parse_args(argv)
    setup_logging()
    combine(args.inputs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
