"""Context windows by index arithmetic on the device (never materialised for a whole split).

A window around frame ``t`` of an utterance covering rows ``[s, s + n)`` of the split's feature matrix
is rows ``clamp(t + o, s, s + n - 1)`` for ``o`` in ``[-left, right]``: frames beyond the utterance edges
are replaced by its first/last frame. With the paper's defaults (left=20, right=5) the window has 26
frames and its target is the 21st.
"""

from __future__ import annotations

import torch


def utterance_bounds(starts: torch.Tensor, lengths: torch.Tensor, frame_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last global row of the utterance holding each frame (binary search, no per-frame table)."""
    utt = torch.searchsorted(starts, frame_idx, right=True) - 1
    first = starts[utt]
    last = first + lengths[utt] - 1
    return first, last


def splice(
    feats: torch.Tensor,
    starts: torch.Tensor,
    lengths: torch.Tensor,
    frame_idx: torch.Tensor,
    left: int = 20,
    right: int = 5,
) -> torch.Tensor:
    """Gather ``(B, (left + 1 + right) * D)`` context windows for global frame indices ``frame_idx``.

    ``feats`` is the whole split ``(N, D)`` (any dtype; float16 on the device is the intended use),
    ``starts``/``lengths`` the utterance index as int64 tensors on the same device.
    """
    if left < 0 or right < 0:
        raise ValueError(f"context sizes must be >= 0, got left={left} right={right}")
    frame_idx = frame_idx.to(device=feats.device, dtype=torch.int64)
    first, last = utterance_bounds(starts, lengths, frame_idx)
    offsets = torch.arange(-left, right + 1, device=feats.device, dtype=torch.int64)
    rows = frame_idx[:, None] + offsets[None, :]
    rows = torch.maximum(torch.minimum(rows, last[:, None]), first[:, None])
    # index_select on the flattened rows: ~4-6x faster than advanced indexing feats[rows] for float16 on
    # CPU (benchmarks/bench_features.py), identical result.
    return feats.index_select(0, rows.reshape(-1)).reshape(frame_idx.shape[0], -1)
