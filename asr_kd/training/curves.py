"""Training curves: the per-member view of a stack's log and ``curves.png`` (loss, frame accuracy)."""

from __future__ import annotations

import os

from asr_base.io import atomic_path


def member_history(history: list[dict], m: int) -> list[dict]:
    """The log of member ``m`` of a stack: every per-member list replaced by its ``m``-th value."""
    return [{k: (v[m] if isinstance(v, list) else v) for k, v in rec.items()} for rec in history]


def plot_curves(history: list[dict], path: str | os.PathLike, names: list[str]) -> None:
    """Training loss and frame accuracy per step, dev frame accuracy per epoch, one line per member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if r["type"] == "train"]
    epochs = [r for r in history if r["type"] == "epoch"]
    if not train and not epochs:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))

    def series(recs, key, m):
        return [r[key][m] if isinstance(r[key], list) else r[key] for r in recs]

    for m, name in enumerate(names):
        if train:
            axes[0].plot([r["global_step"] for r in train], series(train, "loss", m), label=name)
            axes[1].plot([r["global_step"] for r in train], series(train, "frame_acc", m), label=name)
        if epochs:
            axes[2].plot([r["epoch"] + 1 for r in epochs], series(epochs, "dev_acc", m), marker="o", label=name)
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[1].set(xlabel="step", ylabel="frame accuracy (%)", title="training frame accuracy")
    axes[2].set(xlabel="epoch", ylabel="frame accuracy (%)", title="held-out frame accuracy")
    if len(names) <= 12:
        axes[2].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
