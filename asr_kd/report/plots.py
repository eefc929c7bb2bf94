"""The report's PNG plots: training curves, frame accuracy vs temperature, WER per model.

:func:`make_plots` writes those that have data and says why each other one is left out; a failing plot
is logged and left out, never fatal to the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from asr_base.io import atomic_path
from asr_kd.report.markdown import fmt
from asr_kd.report.summary import RunSummary, split_sort_key

log = logging.getLogger(__name__)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _scalar(v: Any) -> Any:
    return v[0] if isinstance(v, list) and v else v


def plot_training_curves(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    models = ([("baseline", run.baseline)] if run.baseline else []) + [("teacher", m) for m in run.members] + \
             [("student", s) for s in run.students]
    models = [(role, m) for role, m in models if m.history]
    if not models:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    cmap = plt.get_cmap("viridis")
    seen_teacher = False
    for role, m in models:
        train = [r for r in m.history if r.get("type") == "train"]
        epochs = [r for r in m.history if r.get("type") == "epoch"]
        if role == "baseline":
            style = dict(color="black", linewidth=2, label="baseline")
        elif role == "teacher":
            style = dict(color="tab:blue", alpha=0.5, linewidth=1, label=None if seen_teacher else "teachers")
            seen_teacher = True
        else:
            i = run.students.index(m)
            style = dict(color=cmap(0.15 + 0.7 * i / max(len(run.students) - 1, 1)), linewidth=1.5,
                         label=f"student {m.name}")
        if train:
            steps = [r["global_step"] for r in train]
            axes[0].plot(steps, [_scalar(r.get("frame_acc")) for r in train], **style)
            axes[1].plot(steps, [_scalar(r.get("loss")) for r in train], **style)
        if epochs:
            axes[2].plot([r["epoch"] + 1 for r in epochs], [_scalar(r.get("dev_acc")) for r in epochs], marker="o",
                         **style)
    axes[0].set(xlabel="step", ylabel="frame accuracy (%)", title="training frame accuracy (running)")
    axes[1].set(xlabel="step", ylabel="loss", title="training loss (students: distillation objective)",
                yscale="log")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(xlabel="epoch", ylabel="frame accuracy (%)", title="held-out frame accuracy per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_acc_vs_t(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt

    studs = [s for s in run.students if s.temperature]
    if not studs:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, split in enumerate(run.splits):
        pts = [(s.temperature, run.acc(split, s.key)) for s in studs]
        pts = [(t, a) for t, a in pts if a is not None]
        if not pts:
            continue
        c = colors[i % len(colors)]
        ax.plot([t for t, _ in pts], [a for _, a in pts], marker="o", color=c, label=f"students, {split}")
        drawn = True
        for key, ls, name in ((run.baseline_key, ":", "baseline"), (run.ensemble_key(), "--", "ensemble")):
            a = run.acc(split, key)
            if a is not None:
                ax.axhline(a, color=c, linestyle=ls, linewidth=1, label=f"{name}, {split}")
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ts = sorted({s.temperature for s in studs})
    ax.set_xticks(ts, [f"{t:g}" for t in ts])
    ax.minorticks_off()
    ax.set(xlabel="temperature T", ylabel="frame accuracy (%)", title="distilled students: frame accuracy vs T")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_wer(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt
    import numpy as np

    names = run.decode_order()
    splits = sorted({s for n in names for s in run.wer[n]}, key=split_sort_key)
    if not names or not any(run.wer_of(n, s) is not None for n in names for s in splits):
        return False
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.5))
    width = 0.8 / len(splits)
    x = np.arange(len(names))
    for i, split in enumerate(splits):
        vals = [run.wer_of(n, split) for n in names]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, [v if v is not None else 0.0 for v in vals], width,
                      label=split)
        for b, v in zip(bars, vals):
            ax.annotate(fmt(v, 1) if v is not None else "n/a", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set(ylabel="WER (%)", title="word error rate per model")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_decode_speed(run: RunSummary, path: Path) -> bool:
    """WER against decoder CPU time / audio time, one point per beam (asr-kd decode-speed)."""
    import matplotlib.pyplot as plt

    if not run.decode_speed:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in run.decode_speed:
        rows = r["rows"]
        ax.plot([x["cpu_rtf"] for x in rows], [x["wer"] for x in rows], "o-",
                label=f"{Path(r['export']).name} on {r['split']} (scale {r['acoustic_scale']:g})")
        for x in rows:
            ax.annotate(f"beam {x['beam']:g}", (x["cpu_rtf"], x["wer"]), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small")
    ax.set(xlabel="decoder CPU time / audio time (RTF, one core)", ylabel="WER (%)",
           title="WER vs decoding speed (one-pass search)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def make_plots(run: RunSummary, plots_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Write the PNGs that have data; returns ``({key: path}, {key: why left out})``."""
    import matplotlib

    matplotlib.use("Agg")
    made, notes = {}, {}
    jobs = [("training_curves", plot_training_curves, "no train_log.jsonl in any model directory"),
            ("frame_acc_vs_T", plot_acc_vs_t, "no student with a temperature and a frame accuracy"),
            ("wer_per_model", plot_wer, "no decoding results (wer.json) yet"),
            ("decode_speed", plot_decode_speed, "no decoding-speed measurement (asr-kd decode-speed) in this run")]
    for key, fn, why in jobs:
        path = Path(plots_dir) / f"{key}.png"
        try:
            ok = fn(run, path)
        except Exception as e:  # a plot must never cost the report
            log.warning("plot %s failed: %s", key, e)
            ok, why = False, f"plotting failed ({type(e).__name__}: {e})"
        if ok:
            made[key] = path
        else:
            path.unlink(missing_ok=True)  # no stale plot from an earlier run
            notes[key] = why
    return made, notes

