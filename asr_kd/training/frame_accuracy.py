"""Frame accuracy: the share of labelled frames whose argmax is the label.

:func:`count_correct` scores any stacked predictor (the trainer's per-epoch dev check, data-parallel);
:func:`stack_accuracy` scores saved model dirs, optionally with their ensemble, in one stacked pass per batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from asr_kd.nn.losses import frame_correct
from asr_kd.nn.model import StackedDNN, load_model
from asr_kd.nn.model_dirs import FINAL
from asr_kd.nn.soft_targets import ensemble_log_probs
from asr_kd.training.frame_data import FrameSplit


@torch.no_grad()
def count_correct(predict: Callable[[torch.Tensor], torch.Tensor], split: FrameSplit, left: int, right: int,
                  batch_size: int = 4096, max_frames: int | None = None, rank: int = 0, world: int = 1,
                  progress: str | None = None) -> tuple[torch.Tensor, int]:
    """Frames whose argmax is the label, per predicted row of ``predict(x) -> (R, B, P)``; and frames scored.

    Batches are dealt round-robin over data-parallel ranks and the counts all-reduced.
    """
    correct, total = None, 0
    batches = list(split.eval_batches(batch_size, max_frames))
    for i, idx in enumerate(tqdm(batches, desc=progress or f"eval {split.name}", unit="batch", leave=False,
                                 disable=rank != 0)):
        if i % world != rank:
            continue
        x = split.windows(idx, left, right)
        c = frame_correct(predict(x), split.targets(idx)).to(torch.float64)
        correct = c if correct is None else correct + c
        total += idx.numel()
    if world > 1:
        if correct is None:
            correct = torch.zeros(len(predict(split.windows(batches[0][:1], left, right))), dtype=torch.float64,
                                  device=split.device)
        t = torch.tensor([float(total)], dtype=torch.float64, device=split.device)
        dist.all_reduce(correct)
        dist.all_reduce(t)
        total = int(t.item())
    return correct.cpu(), total


def stack_accuracy(dirs: list[Path], split: FrameSplit, batch_size: int = 4096, max_frames: int | None = None,
                   with_ensemble: bool = False, device: torch.device | None = None) -> dict[str, float]:
    """Frame accuracy (%) of each model dir (keyed ``str(dir)``); with ``with_ensemble`` also of their
    arithmetic/geometric mean (``ensemble_arithmetic``, ``ensemble_geometric``) and of the arithmetic mean of the
    first k models for 1 < k < len(dirs) (``ensemble_first_<k>``: the gain against ensemble size);
    ``_frames``: frames scored."""
    models = [load_model(d / FINAL) for d in dirs]
    cfg = models[0].config
    stack = StackedDNN.from_members(models).to(device or split.device).eval()
    amp = split.device.type == "cuda"

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            z = stack(x).float()
        if not with_ensemble:
            return z
        return torch.cat([z, ensemble_log_probs(z, 1.0, "arithmetic")[None],
                          ensemble_log_probs(z, 1.0, "geometric")[None],
                          *[ensemble_log_probs(z[:k], 1.0, "arithmetic")[None] for k in range(2, len(models))]])

    correct, total = count_correct(predict, split, cfg.left_context, cfg.right_context, batch_size, max_frames,
                                   progress=f"eval {split.name}")
    acc = (100.0 * correct / max(total, 1)).tolist()
    names = [str(d) for d in dirs]
    if with_ensemble:
        names += ["ensemble_arithmetic", "ensemble_geometric"] + [f"ensemble_first_{k}" for k in range(2, len(dirs))]
    return dict(zip(names, acc)) | {"_frames": total}
