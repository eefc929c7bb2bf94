"""Alignment report helpers: the tied-state occupancy histogram (PNG), the OOV rate of a split, CTM sanity
numbers and phone-boundary agreement with reference timings (synthetic corpora) with its offset histogram (PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr_base.io import atomic_path


def write_occupancy_png(path: str | os.PathLike, pdf_counts: np.ndarray) -> None:
    """Histogram of frames per tied state (log-spaced bins) + sorted occupancy curve, matplotlib Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(pdf_counts, dtype=np.int64)
    used = counts[counts > 0]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if used.size:
        bins = np.logspace(0, np.log10(used.max() + 1), 40)
        a1.hist(used, bins=bins)
        a1.set_xscale("log")
    a1.set_xlabel("frames per tied state")
    a1.set_ylabel("tied states")
    a1.set_title(f"{used.size} of {counts.size} states used")
    a2.plot(np.sort(counts)[::-1])
    a2.set_yscale("symlog")
    a2.set_xlabel("tied state (sorted by occupancy)")
    a2.set_ylabel("frames")
    a2.set_title(f"{int(counts.sum())} aligned frames")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def write_boundary_offsets_png(path: str | os.PathLike, splits: dict[str, dict]) -> None:
    """Per split compared with reference timings (``splits``: the alignment report's, each with
    ``sanity.boundaries`` from :func:`boundary_agreement`), the share of reference phone boundaries by offset of the
    nearest aligned one (``offset_histogram``), the tolerance marked; matplotlib Agg. No split compared: no plot,
    and an old one is removed."""
    boundaries = {n: s.get("sanity", {}).get("boundaries") or {} for n, s in splits.items()}
    boundaries = {n: b for n, b in boundaries.items() if "offset_histogram" in b}
    if not boundaries:
        Path(path).unlink(missing_ok=True)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    tol = 0.02
    for split, b in boundaries.items():
        h = b["offset_histogram"]
        n = max(sum(h["counts"]) + h["below"] + h["above"], 1)
        tol = b.get("tolerance_s", tol)
        share = b.get("nearest_within_tol")
        label = split if share is None else f"{split}: {100 * share:.1f}% within {1000 * tol:g} ms"
        ax.plot(1000 * np.asarray(h["bin_centres_s"]), 100 * np.asarray(h["counts"]) / n, marker="o", ms=3,
                label=label)
    for x in (-tol, tol):
        ax.axvline(1000 * x, color="grey", ls="--", lw=1)
    ax.set_xlabel("aligned minus reference boundary (ms, 5 ms bins; outside +-50 ms not drawn)")
    ax.set_ylabel("reference boundaries (%)")
    ax.set_title("Phone-boundary offsets against the reference timings")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def oov_summary(per_utt: list[tuple[int, int, bool]], max_oov_rate: float) -> dict:
    """OOV numbers of a split from ``(words, oov words, left out)`` per utterance with a transcript: the token
    OOV rate, utterances with any OOV, and those left out for an OOV rate above ``max_oov_rate``."""
    tokens = sum(n for n, _, _ in per_utt)
    oov = sum(k for _, k, _ in per_utt)
    return {"words": tokens, "oov_words": oov, "oov_rate": oov / max(tokens, 1),
            "utterances_with_oov": sum(1 for _, k, _ in per_utt if k > 0),
            "max_oov_rate": max_oov_rate, "utterances_left_out": sum(1 for *_, x in per_utt if x)}


# ---------------------------------------------------------------------------------------------- sanity checks

#: flite/festival (cmulex) phone names -> our ARPAbet phones (no stress); ``pau`` is silence
FLITE_TO_ARPABET = {"ax": "AH", "axr": "ER", "pau": "SIL", "h#": "SIL", "brth": "SIL"}


def read_ctm(path: str | os.PathLike) -> dict[str, list[tuple[float, float, str]]]:
    """``utt 1 start dur phone`` lines -> per utterance: (start, end, phone) in file order."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) != 5:
            continue
        st, du = float(f[2]), float(f[3])
        out.setdefault(f[0], []).append((st, st + du, f[4]))
    return out


def ctm_sanity(ctm: dict[str, list[tuple[float, float, str]]], silence: str = "SIL") -> dict:
    """Fraction of utterances starting / ending in silence and mean duration (s) per phone."""
    if not ctm:
        return {"utterances": 0}
    starts = np.mean([segs[0][2] == silence for segs in ctm.values()])
    ends = np.mean([segs[-1][2] == silence for segs in ctm.values()])
    dur: dict[str, list[float]] = {}
    for segs in ctm.values():
        for st, en, ph in segs:
            dur.setdefault(ph, []).append(en - st)
    nonsil = [d for p, ds in dur.items() if p != silence for d in ds]
    return {"utterances": len(ctm), "fraction_start_sil": float(starts), "fraction_end_sil": float(ends),
            "mean_phone_duration": float(np.mean(nonsil)) if nonsil else 0.0,
            "mean_duration_per_phone": {p: round(float(np.mean(ds)), 4) for p, ds in sorted(dur.items())}}


def read_phone_timings(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """Synthesiser ground truth ``start end phone`` (flite names) -> (start, end, ARPAbet phone)."""
    out = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) < 3:
            continue
        ph = FLITE_TO_ARPABET.get(f[2].lower(), f[2].upper())
        out.append((float(f[0]), float(f[1]), ph))
    return out


def boundary_agreement(ctm: dict[str, list[tuple[float, float, str]]], timings_dir: str | os.PathLike,
                       tolerance: float = 0.02, silence: str = "SIL", utt2spk: dict[str, str] | None = None) -> dict:
    """Phone-boundary agreement of an alignment with reference phone timings (``<dir>/<utt>.txt``).

    For every utterance whose non-silence phone sequence equals the reference's, the start and end of each
    non-silence phone are compared one to one (``paired_within_tol``); over all compared utterances every
    reference non-silence boundary is matched to the nearest aligned boundary (``nearest_within_tol``; also at
    10/20/30/50 ms in ``nearest_within``, and the median of aligned minus reference time,
    ``nearest_median_offset_s``: a reference biased against the audio shows there; ``offset_histogram``: their
    counts in 5 ms bins centred on -50 ... +50 ms, ``below`` / ``above`` outside). With ``utt2spk``, the same
    nearest-boundary figures per speaker in ``by_speaker`` (on a synthetic corpus each TTS voice's labels
    are offset by their own few milliseconds). ``by_position`` gives them for reference boundaries between two
    phones (``inner``) and for those next to a pause or an utterance's edge (``next_to_pause``), where the
    acoustic boundary is least defined. Utterances without a reference file are counted, not compared."""
    tdir = Path(timings_dir)
    paired_ok = paired_n = near_ok = near_n = same_seq = compared = missing = 0
    diffs, signed, spk_signed, inner = [], [], {}, []
    for utt, segs in ctm.items():
        f = tdir / f"{utt}.txt"
        if not f.is_file():
            missing += 1
            continue
        ref = [s for s in read_phone_timings(f) if s[2] != silence and s[1] > s[0]]
        hyp = [s for s in segs if s[2] != silence]
        if not ref or not hyp:
            continue
        compared += 1
        hb = np.unique(np.asarray([t for s in hyp for t in s[:2]]))
        rb = np.asarray([t for s in ref for t in s[:2]])
        joined = np.isclose([s[1] for s in ref[:-1]], [s[0] for s in ref[1:]])  # phone i ends where i + 1 starts
        inner.append(np.stack([np.r_[False, joined], np.r_[joined, False]], 1).ravel())  # rb's start, end order
        nearest = hb[np.abs(rb[:, None] - hb[None, :]).argmin(1)]
        signed.append(nearest - rb)
        if utt2spk is not None:
            spk_signed.setdefault(utt2spk.get(utt, "?"), []).append(signed[-1])
        d_near = np.abs(nearest - rb)
        near_ok += int((d_near <= tolerance + 1e-9).sum())
        near_n += rb.size
        if [s[2] for s in ref] == [s[2] for s in hyp]:
            same_seq += 1
            d = np.abs(rb - np.asarray([t for s in hyp for t in s[:2]]))
            diffs.append(d)
            paired_ok += int((d <= tolerance + 1e-9).sum())
            paired_n += d.size
    d_all = np.concatenate(diffs) if diffs else np.zeros(0)
    sg = np.concatenate(signed) if signed else np.zeros(0)
    out = {"tolerance_s": tolerance, "utterances_compared": compared, "without_reference": missing,
           "fraction_same_phone_sequence": same_seq / max(compared, 1),
           "paired_within_tol": paired_ok / max(paired_n, 1), "paired_boundaries": paired_n,
           "paired_median_abs_diff_s": float(np.median(d_all)) if d_all.size else None,
           "nearest_within_tol": near_ok / max(near_n, 1), "reference_boundaries": near_n,
           # the reference's own noise (e.g. a TTS voice's labels) shows as a spread over tolerances and a bias
           "nearest_within": {f"{t:g}": _share_within(sg, t) if sg.size else None for t in (0.01, 0.02, 0.03, 0.05)},
           "nearest_median_offset_s": float(np.median(sg)) if sg.size else None}
    if sg.size:
        out["offset_histogram"] = _offset_histogram(sg)
        is_inner = np.concatenate(inner)
        out["by_position"] = {"inner": _nearest_summary(sg[is_inner], tolerance),
                              "next_to_pause": _nearest_summary(sg[~is_inner], tolerance)}
    if utt2spk is not None:
        out["by_speaker"] = {spk: _nearest_summary(np.concatenate(v), tolerance) for spk, v in sorted(spk_signed.items())}
    return out


def _nearest_summary(signed: np.ndarray, tolerance: float) -> dict:
    """Nearest-boundary figures of a subset of reference boundaries (aligned minus reference times)."""
    return {"nearest_within_tol": _share_within(signed, tolerance) if signed.size else None,
            "reference_boundaries": int(signed.size),
            "nearest_median_offset_s": float(np.median(signed)) if signed.size else None}


def _offset_histogram(signed: np.ndarray, step: float = 0.005, bins_each_side: int = 10) -> dict:
    """Counts of signed offsets in bins centred on multiples of ``step`` (CTM times are multiples of 10 ms, so an
    offset never falls on a bin edge by rounding), and how many lie below / above them."""
    centres = np.arange(-bins_each_side, bins_each_side + 1) * step
    edges = np.r_[centres - step / 2, centres[-1] + step / 2]
    counts, _ = np.histogram(signed, bins=edges)
    return {"bin_centres_s": [round(float(c), 6) for c in centres], "counts": counts.astype(int).tolist(),
            "below": int((signed < edges[0]).sum()), "above": int((signed > edges[-1]).sum())}


def _share_within(diffs: np.ndarray, tolerance: float) -> float:
    """Share of time differences within ``tolerance`` (seconds; CTM times are rounded to 10 ms, hence the 1e-9)."""
    return float((np.abs(diffs) <= tolerance + 1e-9).mean())


def stage_summary(splits: dict[str, dict]) -> dict[str, dict]:
    """Per split: aligned fraction, average log-likelihood and (with reference timings) boundary agreement."""
    out = {}
    for name, s in splits.items():
        b = s.get("sanity", {}).get("boundaries") or {}
        out[name] = {"fraction_aligned": s.get("fraction_aligned"), "avg_loglik": s.get("avg_loglik"),
                     "nearest_within": b.get("nearest_within"),
                     "nearest_median_offset_s": b.get("nearest_median_offset_s")}
    return out
