"""Per-split alignment outputs besides the label arrays: ``phones.ctm`` and ``failed.tsv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_base.io import write_text
from data_prep.align.hmm import HmmModel, phone_segments
from data_prep.align.split_data import SplitData


def write_ctm(path: Path, split: SplitData, tids: np.ndarray, hmm: HmmModel, lang) -> None:
    """``utt 1 start duration phone`` per phone instance of the aligned utterances (seconds, the store's frame
    shift)."""
    ok = tids > 0
    shift = split.frame_shift
    lines = []
    if ok.any():
        frame_rows = np.repeat(np.arange(len(split.utt_ids)), split.lengths)
        idx = np.flatnonzero(ok)
        utt_starts = np.flatnonzero(np.diff(np.concatenate([[-1], frame_rows[idx]])) != 0)
        phone, starts, lengths, _ = phone_segments(tids[idx], hmm, utt_starts)
        g = idx[starts]
        rows = frame_rows[g]
        local = g - split.starts[rows]
        for r, st, ln, p in zip(rows.tolist(), local.tolist(), lengths.tolist(), phone.tolist()):
            lines.append(f"{split.utt_ids[r]} 1 {st * shift:.2f} {ln * shift:.2f} {lang.phone_names[p]}\n")
    write_text(path, "".join(lines))


def write_failed(path: Path, split: SplitData, failed: dict[int, str]) -> None:
    """``utt_id <TAB> reason`` of the utterances that could not be aligned, in store order."""
    write_text(path, "utt_id\treason\n" + "".join(f"{split.utt_ids[r]}\t{failed[r]}\n" for r in sorted(failed)))
