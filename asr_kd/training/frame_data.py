"""One split of frames on the training device, and the random frame sampler.

A :class:`FrameSplit` holds the whole split as a float16 ``(N, D)`` tensor on the device plus the utterance
index and the frame labels; context windows are gathered per batch by :func:`asr_kd.nn.context_window.splice`
(never materialised for the split). Frames labelled ``-1`` (unaligned utterances) are never sampled nor
scored, except those of an unlabelled transfer set appended by :meth:`FrameSplit.with_unlabelled`, which are
sampled for their soft targets only.

:class:`FrameSampler` draws frames uniformly at random across the whole split: every epoch is a fresh
permutation of the usable frames from a ``torch.Generator`` seeded by ``(seed, epoch)``, so batch ``step``
of epoch ``epoch`` is a pure function of ``(seed, epoch, step)`` -- resuming needs only the position.
Several pools (one per stacked model, e.g. ensemble members with their own seeds or data shards) give one
batch per member. Under data parallelism every global batch is cut into equal contiguous per-rank slices.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr_kd.nn.context_window import splice
from data_prep.features.store import FeatureStore

log = logging.getLogger(__name__)

_COPY_ROWS = 1 << 22


@dataclass
class FrameSplit:
    name: str
    feats: torch.Tensor  # (N, D) float16 on the device
    starts: torch.Tensor  # int64 (U,) on the device
    lengths: torch.Tensor  # int64 (U,) on the device
    labels: torch.Tensor | None  # int64 (N,) on the device, -1 = unlabelled (not usable unless in ``usable``)
    usable: torch.Tensor  # int64 (K,) on the CPU: global indices of the frames drawn (labelled + transfer), ascending

    @classmethod
    def load(cls, feats_dir: str | os.PathLike, labels_path: str | os.PathLike | None = None,
             num_pdfs: int | None = None, device: str | torch.device = "cpu", name: str | None = None) -> "FrameSplit":
        store = FeatureStore.open(feats_dir)
        device = torch.device(device)
        feats = torch.empty(store.feats.shape, dtype=torch.float16, device=device)
        rows = store.num_frames
        for s in tqdm(range(0, rows, _COPY_ROWS), desc=f"load {Path(feats_dir).name}", disable=rows <= _COPY_ROWS,
                      unit="chunk"):
            feats[s : s + _COPY_ROWS].copy_(torch.from_numpy(np.array(store.feats[s : s + _COPY_ROWS])))
        labels = None
        if labels_path is not None:
            lab = np.load(labels_path, mmap_mode="r")
            labels_np = check_labels(lab, rows, num_pdfs, str(labels_path))
            labels = torch.from_numpy(labels_np.astype(np.int64))
            usable = torch.nonzero(labels >= 0).squeeze(1)
            skipped = rows - usable.numel()
            if skipped:
                log.info("%s: %d of %d frames unlabelled (-1), not used", labels_path, skipped, rows)
            labels = labels.to(device)
        else:
            usable = torch.arange(rows, dtype=torch.int64)
        if usable.numel() == 0:
            raise ValueError(f"{feats_dir}: no usable (labelled) frames")
        return cls(name or Path(feats_dir).name, feats, torch.from_numpy(store.starts).to(device),
                   torch.from_numpy(store.lengths).to(device), labels, usable)

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def num_usable(self) -> int:
        return int(self.usable.numel())

    @property
    def feat_dim(self) -> int:
        return int(self.feats.shape[1])

    def windows(self, frame_idx: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """float32 context windows for frame indices of any shape ``S`` -> ``S + (window * D,)``."""
        flat = frame_idx.reshape(-1).to(self.device, non_blocking=True)
        x = splice(self.feats, self.starts, self.lengths, flat, left, right)
        return x.reshape(tuple(frame_idx.shape) + (x.shape[-1],)).float()

    def targets(self, frame_idx: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            raise ValueError(f"split {self.name} has no labels")
        return self.labels[frame_idx.to(self.device, non_blocking=True)]

    def with_unlabelled(self, other: "FrameSplit", name: str | None = None) -> "FrameSplit":
        """This split followed by every frame of ``other`` as unlabelled (-1) but usable frames: a transfer set
        for soft targets (paper section 2: the transfer set need not be labelled). The hard-label terms skip
        frames labelled -1 (:func:`asr_kd.nn.losses.hard_ce`)."""
        if self.labels is None:
            raise ValueError(f"split {self.name} has no labels to extend")
        if other.feat_dim != self.feat_dim:
            raise ValueError(f"{other.name}: {other.feat_dim}-dim features, {self.name} has {self.feat_dim}")
        n = int(self.feats.shape[0])
        m = int(other.feats.shape[0])
        labels = torch.cat([self.labels, self.labels.new_full((m,), -1)])
        usable = torch.cat([self.usable, torch.arange(n, n + m, dtype=torch.int64)])
        return FrameSplit(name or f"{self.name}+{other.name}", torch.cat([self.feats, other.feats.to(self.device)]),
                          torch.cat([self.starts, other.starts.to(self.device) + n]),
                          torch.cat([self.lengths, other.lengths.to(self.device)]), labels, usable)

    def utterance_subset(self, fraction: float, seed: int) -> "FrameSplit":
        """Same tensors, usable frames restricted to a random ``fraction`` of the utterances (>= 1)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        n_utt = int(self.starts.numel())
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(n_utt, generator=g)[: max(1, round(fraction * n_utt))]
        mask = torch.zeros(n_utt, dtype=torch.bool)
        mask[keep] = True
        frame_utt = torch.repeat_interleave(torch.arange(n_utt), self.lengths.cpu())
        usable = self.usable[mask[frame_utt[self.usable]]]
        if usable.numel() == 0:
            raise ValueError(f"{self.name}: the {fraction:.3g} utterance subset has no labelled frame")
        return FrameSplit(f"{self.name}_{fraction:g}", self.feats, self.starts, self.lengths, self.labels, usable)

    def shard(self, index: int, count: int) -> "FrameSplit":
        """Usable frames of every ``count``-th utterance starting at ``index`` (contiguous utterances kept whole)."""
        n_utt = int(self.starts.numel())
        frame_utt = torch.repeat_interleave(torch.arange(n_utt), self.lengths.cpu())
        usable = self.usable[(frame_utt[self.usable] % count) == index]
        if usable.numel() == 0:
            raise ValueError(f"{self.name}: data shard {index}/{count} has no labelled frame")
        return FrameSplit(f"{self.name}_shard{index}of{count}", self.feats, self.starts, self.lengths, self.labels,
                          usable)

    def eval_batches(self, batch_size: int, max_frames: int | None = None):
        """Usable frame indices in order, ``batch_size`` at a time (optionally an evenly spaced subset)."""
        usable = self.usable
        if max_frames is not None and usable.numel() > max_frames:
            usable = usable[torch.linspace(0, usable.numel() - 1, max_frames).round().long()]
        for s in range(0, usable.numel(), batch_size):
            yield usable[s : s + batch_size]


def check_labels(labels: np.ndarray, num_frames: int, num_pdfs: int | None, what: str) -> np.ndarray:
    """Validate a pdf.npy array against its store; a clear error names what is wrong."""
    if labels.ndim != 1 or labels.shape[0] != num_frames:
        raise ValueError(f"{what}: labels shape {labels.shape} does not match the store's {num_frames} frames")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers, got {labels.dtype}")
    labels = np.asarray(labels)
    if labels.size and labels.min() < -1:
        raise ValueError(f"{what}: labels below -1 found (min {labels.min()})")
    if num_pdfs is not None and labels.size and labels.max() >= num_pdfs:
        raise ValueError(f"{what}: label {labels.max()} >= num_pdfs {num_pdfs}")
    return labels


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


class FrameSampler:
    """Uniform random frames without replacement within an epoch, one pool per stacked model.

    ``pools``: usable-frame index tensors (one per member, or a single shared one); ``seeds``: one per pool.
    ``batch_size`` is the global batch per pool; with ``world > 1`` rank ``rank`` gets the slice
    ``[rank * b, (rank + 1) * b)`` of it, ``b = batch_size / world``. ``epoch_frames`` caps the frames of an
    epoch (a random subset each epoch) so held-out checks come often enough on a large corpus. ``passes`` > 1
    makes an epoch that many passes over a small pool (each pass its own permutation; the frames of one pass
    are all seen before the next begins), so that an epoch can be as long as on the full data.
    """

    def __init__(self, pools: list[torch.Tensor], seeds: list[int], batch_size: int, epoch_frames: int | None = None,
                 rank: int = 0, world: int = 1, passes: int = 1):
        if len(pools) != len(seeds):
            raise ValueError("one seed per pool")
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world} data-parallel ranks")
        self.pools = pools
        self.seeds = seeds
        self.batch_size = batch_size
        self.rank, self.world = rank, world
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.passes = passes
        frames = min(int(p.numel()) for p in pools) * passes
        if epoch_frames:
            frames = min(frames, epoch_frames)
        self.steps_per_epoch = frames // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch size {batch_size} exceeds the {frames} usable frames of an epoch")
        self.device = torch.device("cpu")
        self._epoch = None
        self._orders: list[torch.Tensor] = []

    def to(self, device: str | torch.device) -> "FrameSampler":
        """Keep each epoch's frame order on ``device``: batches are then slices of a device tensor, with no
        host-to-device copy per step (the order itself is still drawn on the CPU: same frames anywhere)."""
        self.device = torch.device(device)
        self._epoch, self._orders = None, []
        return self

    def _order(self, epoch: int) -> list[torch.Tensor]:
        if self._epoch != epoch:
            self._orders = []
            for pool, seed in zip(self.pools, self.seeds):
                g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
                need = self.steps_per_epoch * self.batch_size
                perm = torch.cat([torch.randperm(pool.numel(), generator=g) for _ in range(self.passes)])
                self._orders.append(pool[perm[:need]].to(self.device))
            self._epoch = epoch
        return self._orders

    def batch(self, epoch: int, step: int) -> torch.Tensor:
        """``(num_pools, batch_size / world)`` global frame indices of this rank for ``(epoch, step)``."""
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} outside epoch of {self.steps_per_epoch} steps")
        local = self.batch_size // self.world
        s = step * self.batch_size + self.rank * local
        return torch.stack([o[s : s + local] for o in self._order(epoch)])
