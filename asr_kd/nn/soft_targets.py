"""Soft targets from a teacher ensemble (paper sections 2 and 4).

The ensemble distribution at temperature ``T`` is either the arithmetic mean of the members'
``softmax(z / T)`` (the paper's default) or the geometric mean, i.e. the renormalised product of the
members' distributions = ``softmax`` of the mean log-probabilities (= ``softmax(mean(z) / T)``).

The teachers run as one :class:`~asr_kd.nn.model.StackedDNN`: one batched forward pass per minibatch for the
whole ensemble, without autograd, in bf16 on a GPU. Targets are computed on the fly during student
training; that is the only option that scales (14k classes x 700M frames cannot be stored). For a small
corpus :class:`TopKCache` stores the top-k of the target distribution per frame (+ the remaining mass,
spread evenly over the other classes): ``N * k * 8`` bytes per temperature instead of a teacher forward
pass (``Mt`` times the student's compute) per batch.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Literal, get_args

import torch

from asr_kd.nn.losses import zero_mean
from asr_kd.nn.model import StackedDNN, load_model
from asr_kd.nn.model_dirs import FINAL, member_dirs

log = logging.getLogger(__name__)

Mean = Literal["arithmetic", "geometric"]
MEANS = get_args(Mean)


def ensemble_log_probs(teacher_logits: torch.Tensor, temperature: float, mean: str = "arithmetic") -> torch.Tensor:
    """``(Mt, B, P)`` member logits -> ``(B, P)`` log of the ensemble distribution at ``temperature``."""
    log_p = torch.log_softmax(_full(teacher_logits) / temperature, dim=-1)
    if mean == "arithmetic":
        return torch.logsumexp(log_p, dim=0) - math.log(teacher_logits.shape[0])
    if mean == "geometric":
        return torch.log_softmax(log_p.mean(dim=0), dim=-1)
    raise ValueError(f"unknown ensemble mean {mean!r}; choose from {MEANS}")


def ensemble_probs(teacher_logits: torch.Tensor, temperatures: list[float] | float, mean: str = "arithmetic") -> torch.Tensor:
    """Targets for one or several temperatures: ``(B, P)`` for a float, ``(len(T), B, P)`` for a list."""
    if isinstance(temperatures, (int, float)):
        return ensemble_log_probs(teacher_logits, float(temperatures), mean).exp()
    return torch.stack([ensemble_log_probs(teacher_logits, float(t), mean).exp() for t in temperatures])


def ensemble_centered_logits(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean of the members' zero-mean logits (the logit-matching target)."""
    return zero_mean(_full(teacher_logits)).mean(dim=0)


def _full(z: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 teacher logits are widened before softmax)."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


class TeacherEnsemble:
    """The teachers as one stacked model; ``logits(x)`` runs all members in one batched pass."""

    def __init__(self, stack: StackedDNN, mean: str = "arithmetic", amp: bool = True, compile: bool = False):
        if mean not in MEANS:
            raise ValueError(f"unknown ensemble mean {mean!r}; choose from {MEANS}")
        self.stack = stack.eval()
        for p in self.stack.parameters():
            p.requires_grad_(False)
        self.mean = mean
        self.device = next(stack.parameters()).device
        self.amp = amp and self.device.type == "cuda"
        # --compile (GPU only, like the trainer's): the targets from the raw (bf16) logits compiled into fused
        # kernels; eager, they are ~10 memory-bound passes over (Mt, B, P) float32 logits per temperature
        self._targets = torch.compile(ensemble_probs) if compile and self.device.type == "cuda" else None

    @classmethod
    def load(cls, paths: list[str | os.PathLike] | str | os.PathLike, device: str | torch.device = "cpu",
             mean: str = "arithmetic", amp: bool = True, compile: bool = False) -> "TeacherEnsemble":
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        dirs = [d for p in paths for d in member_dirs(p)]
        members = [load_model(d / FINAL) for d in dirs]
        log.info("teacher ensemble: %d members from %s", len(members), ", ".join(str(d) for d in dirs))
        return cls(StackedDNN.from_members(members).to(device), mean, amp, compile)

    @property
    def config(self):
        return self.stack.config

    @property
    def num_members(self) -> int:
        return self.stack.num_members

    @torch.no_grad()
    def raw_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(Mt, B, P)`` member logits as the stack computes them (bf16 under autocast on a GPU)."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return self.stack(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw_logits(x).float()

    def probs(self, x: torch.Tensor, temperatures: list[float] | float) -> torch.Tensor:
        if self._targets is not None:  # widened to float32 inside the compiled kernels (_full)
            return self._targets(self.raw_logits(x), temperatures, self.mean)
        return ensemble_probs(self.logits(x), temperatures, self.mean)


class TopKCache:
    """Top-k ensemble targets per frame of a split, for corpora small enough to keep them.

    ``values``/``indices``: ``(len(T), N, k)`` float32 / int32 on the device (only usable frames are filled).
    :meth:`dense` rebuilds ``(len(T), B, P)`` target distributions: the stored top-k probabilities plus
    the remaining mass spread evenly over the other ``P - k`` classes.
    """

    def __init__(self, values: torch.Tensor, indices: torch.Tensor, num_pdfs: int):
        self.values, self.indices, self.num_pdfs = values, indices, num_pdfs

    @classmethod
    @torch.no_grad()
    def build(cls, teachers: TeacherEnsemble, split, temperatures: list[float], k: int, batch_size: int = 4096):
        from tqdm import tqdm

        cfg = teachers.config
        n = int(split.feats.shape[0])
        values = torch.zeros(len(temperatures), n, k, device=split.device)
        indices = torch.zeros(len(temperatures), n, k, dtype=torch.int32, device=split.device)
        for idx in tqdm(list(split.eval_batches(batch_size)), desc="top-k targets", unit="batch"):
            probs = teachers.probs(split.windows(idx, cfg.left_context, cfg.right_context), temperatures)
            v, i = probs.topk(k, dim=-1)
            idx = idx.to(split.device)
            values[:, idx] = v
            indices[:, idx] = i.to(torch.int32)
        return cls(values, indices, cfg.num_pdfs)

    def dense(self, frame_idx: torch.Tensor) -> torch.Tensor:
        frame_idx = frame_idx.to(self.values.device)
        v = self.values[:, frame_idx]
        i = self.indices[:, frame_idx].long()
        rest = (1.0 - v.sum(-1, keepdim=True)).clamp_min(0) / max(self.num_pdfs - v.shape[-1], 1)
        out = rest.expand(v.shape[:-1] + (self.num_pdfs,)).clone()
        return out.scatter_(-1, i, v)

    def memory_bytes(self) -> int:
        return self.values.numel() * 4 + self.indices.numel() * 4
