"""The newbob learning-rate schedule, one independent schedule per member of a stack.

After each epoch, per member that has not stopped: the epoch is *accepted* when its held-out frame accuracy
beats the member's best (else the trainer restores the best weights). Once the gain over the best drops
below ``halving_start`` (absolute %) the learning rate is halved, and from then on halved after every epoch
until the gain drops below ``halving_stop`` (not before ``min_epochs``): the member stops. Halving never starts
within the first ``keep_lr_epochs`` epochs (a rejected epoch there is still rolled back), except that an epoch
which *collapses* -- its accuracy below half the member's best, as when too large a step kills the ReLUs and the net
predicts one class -- halves the rate at once: retried at the same rate it would collapse again. A member also
stops after ``epochs``; a stopped member has learning rate 0 and keeps its best weights.

Large minibatches (:func:`scaled_lr`, :func:`warmup_factor`): the initial learning rate is given for a
reference batch (``--lr-base-batch``, 256 frames: the paper's era of SGD) and scaled with the batch --
``linear`` (Goyal et al. 2017, "Accurate, large minibatch SGD": ``k`` times the batch, ``k`` times the
step, so an epoch moves the weights about as far with ``k`` times fewer steps) or ``sqrt`` (keeps the
variance of the update per frame; more conservative) -- and reached by a linear warm-up over the first
``--warmup-steps`` steps, which keeps the large early steps from blowing up a freshly initialised net.
Newbob then halves the scaled rate as usual.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

LrScaling = Literal["none", "linear", "sqrt"]
LR_SCALINGS = get_args(LrScaling)
COLLAPSE_FRACTION = 0.5  # an epoch below this fraction of the best dev accuracy has collapsed


def scaled_lr(lr: float, batch_size: int, base_batch: int, scaling: str) -> float:
    """The initial learning rate for ``batch_size`` given ``lr`` at ``base_batch`` (module docstring)."""
    k = batch_size / base_batch
    if scaling == "none":
        return lr
    if scaling == "linear":
        return lr * k
    if scaling == "sqrt":
        return lr * math.sqrt(k)
    raise ValueError(f"unknown learning-rate scaling {scaling!r}; choose from {LR_SCALINGS}")


def warmup_factor(global_step: int, warmup_steps: int) -> float:
    """Multiplier of the learning rate at (0-based) ``global_step``: ``(step + 1) / warmup`` up to 1."""
    if warmup_steps <= 0 or global_step >= warmup_steps:
        return 1.0
    return (global_step + 1) / warmup_steps


class Newbob:
    """Per-member schedule state: ``lr`` (a float64 tensor on the training device), ``best_acc``,
    ``halving``, ``done``, and ``stop``: why a member stopped (``"newbob"``: its gain fell below
    ``halving_stop`` while halving; ``"epochs"``: the epoch cap), None while it trains."""

    def __init__(self, num_members: int, lr: float, device: torch.device | str = "cpu"):
        self.lr = torch.full((num_members,), lr, dtype=torch.float64, device=device)
        self.best_acc = [-math.inf] * num_members
        self.halving = [False] * num_members
        self.done = [False] * num_members
        self.stop: list[str | None] = [None] * num_members
        self.collapsed = [False] * num_members  # the last epoch collapsed (module docstring); not checkpointed

    @property
    def finished(self) -> bool:
        return all(self.done)

    def end_epoch(self, acc: list[float], epoch: int, epochs: int, min_epochs: int, halving_start: float,
                  halving_stop: float, keep_lr_epochs: int = 0) -> list[bool | None]:
        """Update the schedule with epoch ``epoch``'s dev accuracies; per member: True (accepted: new best),
        False (rejected: back to the best weights) or None (stopped before this epoch, untouched). No halving
        starts within the first ``keep_lr_epochs`` epochs (Kaldi nnet1's ``keep_lr_iters``): one noisy early
        epoch would otherwise halve the rate of a model far from converged."""
        verdicts: list[bool | None] = []
        self.collapsed = [False] * len(acc)
        for m, a in enumerate(acc):
            if self.done[m]:
                verdicts.append(None)
                continue
            gain = a - self.best_acc[m]
            self.collapsed[m] = a < COLLAPSE_FRACTION * self.best_acc[m]
            verdicts.append(a > self.best_acc[m])
            if verdicts[-1]:
                self.best_acc[m] = a
            if self.halving[m]:
                if gain < halving_stop and epoch + 1 >= min_epochs:
                    self.done[m], self.stop[m] = True, "newbob"
                else:
                    self.lr[m] *= 0.5
            elif gain < halving_start and epoch + 1 > keep_lr_epochs:
                self.halving[m] = True
                self.lr[m] *= 0.5
            elif self.collapsed[m]:  # within keep_lr_epochs: halve, but do not start halving every epoch
                self.lr[m] *= 0.5
            if epoch + 1 >= epochs and not self.done[m]:
                self.done[m], self.stop[m] = True, "epochs"
            if self.done[m]:
                self.lr[m] = 0.0
        return verdicts

    def state_dict(self) -> dict:
        return {"lr": self.lr.cpu(), "best_acc": list(self.best_acc), "halving": list(self.halving),
                "done": list(self.done), "stop": list(self.stop)}

    def load_state_dict(self, state: dict) -> None:
        self.lr = state["lr"].to(self.lr.device)
        self.best_acc = list(state["best_acc"])
        self.halving, self.done = list(state["halving"]), list(state["done"])
        self.stop = list(state.get("stop", [None] * len(self.done)))  # absent in older checkpoints
