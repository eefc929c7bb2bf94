"""Per-split alignment outputs (``<system>/ali/<split>``): labels, transition ids, ``phones.ctm``, ``failed.tsv`` and
``done.json``, written the same way by the GMM systems and by a DNN's alignment (``asr-kd align``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_base.io import save_npy, write_json, write_text
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


# the files write_split_alignment leaves in a split's dir
SPLIT_OUTPUTS = ("pdf.npy", "tid.npy", "phones.ctm", "failed.tsv", "done.json")


def write_split_alignment(d: Path, split: SplitData, tids: np.ndarray, hmm: HmmModel, lang, failed: dict[int, str],
                          refs: Path | None, seconds: float, loglik: tuple[float, int]) -> dict:
    """Every output of one split's alignment into ``d`` (transition ids ``tids``, 0 = not aligned): ``pdf.npy`` (1:1
    with the feature store, -1 where not aligned), ``tid.npy``, ``phones.ctm``, ``failed.tsv`` (with the split's
    excluded utterances) and ``done.json`` (counts, ``loglik`` = (sum, frames) of the aligned pdfs' log-likelihoods,
    the CTM's sanity figures and, with reference timings ``refs``, the boundary agreement); returns done.json."""
    from data_prep.align.report import boundary_agreement, ctm_sanity, read_ctm

    tids = np.asarray(tids, dtype=np.int32)
    save_npy(d / "pdf.npy", np.where(tids > 0, hmm.tid2pdf[tids], -1).astype(np.int32))
    save_npy(d / "tid.npy", tids)
    write_ctm(d / "phones.ctm", split, tids, hmm, lang)
    write_failed(d / "failed.tsv", split, split.failure_reasons(failed))
    ctm = read_ctm(d / "phones.ctm")
    sanity = ctm_sanity(ctm)
    if refs is not None:
        utt2spk = dict(zip(split.utt_ids, split.speakers)) if len(split.speakers) == len(split.utt_ids) else None
        sanity["boundaries"] = boundary_agreement(ctm, refs, utt2spk=utt2spk)
    aligned = len(split.utt_ids) - len(failed)
    audio_s = split.num_frames * split.frame_shift
    info = {"utterances": len(split.utt_ids), "aligned": aligned, "failed": len(failed),
            "fraction_aligned": aligned / max(len(split.utt_ids), 1),
            "avg_loglik": loglik[0] / max(loglik[1], 1), "frames": split.num_frames, "aligned_frames": loglik[1],
            "seconds": round(seconds, 2), "rtf": seconds / max(audio_s, 1e-9), "oov": split.oov, "sanity": sanity}
    write_json(d / "done.json", info)
    return info
