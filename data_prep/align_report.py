"""Alignment report helpers: the tied-state occupancy histogram (PNG) and a text summary of report.json."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr_kd.io_utils import atomic_path, read_json


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


def summarize(report_path: str | os.PathLike) -> str:
    """A few lines summarising ``report.json`` (for logs and closing notes)."""
    r = read_json(report_path)
    lines = [f"tied states: {r.get('num_tied_states')} (used on train: {r.get('states_used')})"]
    for sys_name in ("mono", "tri"):
        it = r.get(sys_name, {}).get("iterations", [])
        if it:
            lls = " ".join(f"{x['avg_loglik']:.2f}" for x in it)
            lines.append(f"{sys_name} avg loglik/frame per iteration: {lls}")
    for name, s in r.get("splits", {}).items():
        lines.append(f"{name}: aligned {s['aligned']}/{s['utterances']} ({100 * s['fraction_aligned']:.1f}%), "
                     f"avg loglik {s['avg_loglik']:.3f}, RTF {s['rtf']:.4f}")
    return "\n".join(lines)


def main_summary(path: str) -> None:  # pragma: no cover (convenience)
    print(summarize(Path(path)))
