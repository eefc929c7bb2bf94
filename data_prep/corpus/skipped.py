"""``skipped.tsv``: the utterances a stage could not use, one ``utt_id<TAB>path<TAB>reason`` row each.

Written by ``make-data-dir`` (into the data dir), ``compute-fbank`` and ``import-kaldi-feats`` (into the
feature store): bad input never stops a stage and is never dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from asr_base.io import write_text

SKIPPED_FILE = "skipped.tsv"
SKIPPED_HEADER = "utt_id\tpath\treason"


@dataclass
class Skip:
    utt_id: str
    path: str
    kind: str  # short category for the summary, e.g. "sample-rate"
    reason: str  # human-readable reason written to skipped.tsv


def clean(s: object) -> str:
    """Make a reason/path safe for one TSV field."""
    return " ".join(str(s).split())


def skipped_tsv(rows: Iterable[tuple[str, str, str]]) -> str:
    """The text of a ``skipped.tsv``: header + ``(utt_id, path, reason)`` rows sorted by utterance (bytes)."""
    rows = sorted(rows, key=lambda r: (r[0].encode("utf-8"), r[1]))
    return SKIPPED_HEADER + "\n" + "".join(f"{clean(u)}\t{clean(p)}\t{clean(r)}\n" for u, p, r in rows)


def write_skipped(path: str | os.PathLike, skips: Iterable[Skip]) -> None:
    write_text(path, skipped_tsv((s.utt_id, s.path, s.reason) for s in skips))


def read_skipped(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Rows ``(utt_id, path, reason)`` of a ``skipped.tsv`` (header dropped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != SKIPPED_HEADER:
        raise ValueError(f"{path}: missing header 'utt_id<TAB>path<TAB>reason'")
    return [tuple(line.split("\t", 2)) for line in lines[1:] if line]
