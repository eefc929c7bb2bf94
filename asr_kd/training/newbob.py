"""The newbob learning-rate schedule, one independent schedule per member of a stack.

After each epoch, per member that has not stopped: the epoch is *accepted* when its held-out frame accuracy
beats the member's best (else the trainer restores the best weights). Once the gain over the best drops
below ``halving_start`` (absolute %) the learning rate is halved, and from then on halved after every epoch
until the gain drops below ``halving_stop`` (not before ``min_epochs``): the member stops. A member also
stops after ``epochs``; a stopped member has learning rate 0 and keeps its best weights.
"""

from __future__ import annotations

import math

import torch


class Newbob:
    """Per-member schedule state: ``lr`` (a float64 tensor on the training device), ``best_acc``,
    ``halving``, ``done``."""

    def __init__(self, num_members: int, lr: float, device: torch.device | str = "cpu"):
        self.lr = torch.full((num_members,), lr, dtype=torch.float64, device=device)
        self.best_acc = [-math.inf] * num_members
        self.halving = [False] * num_members
        self.done = [False] * num_members

    @property
    def finished(self) -> bool:
        return all(self.done)

    def end_epoch(self, acc: list[float], epoch: int, epochs: int, min_epochs: int, halving_start: float,
                  halving_stop: float) -> list[bool | None]:
        """Update the schedule with epoch ``epoch``'s dev accuracies; per member: True (accepted: new best),
        False (rejected: back to the best weights) or None (stopped before this epoch, untouched)."""
        verdicts: list[bool | None] = []
        for m, a in enumerate(acc):
            if self.done[m]:
                verdicts.append(None)
                continue
            gain = a - self.best_acc[m]
            verdicts.append(a > self.best_acc[m])
            if verdicts[-1]:
                self.best_acc[m] = a
            if self.halving[m]:
                if gain < halving_stop and epoch + 1 >= min_epochs:
                    self.done[m] = True
                else:
                    self.lr[m] *= 0.5
            elif gain < halving_start:
                self.halving[m] = True
                self.lr[m] *= 0.5
            if epoch + 1 >= epochs:
                self.done[m] = True
            if self.done[m]:
                self.lr[m] = 0.0
        return verdicts

    def state_dict(self) -> dict:
        return {"lr": self.lr.cpu(), "best_acc": list(self.best_acc), "halving": list(self.halving),
                "done": list(self.done)}

    def load_state_dict(self, state: dict) -> None:
        self.lr = state["lr"].to(self.lr.device)
        self.best_acc = list(state["best_acc"])
        self.halving, self.done = list(state["halving"]), list(state["done"])
