"""Decision-tree statistics: one diagonal Gaussian's sufficient statistics per seen triphone-state event.

:class:`TreeStats` holds count, sum and sum of squares of every event ``(left phone, center phone, right
phone, pdf class)`` (phone ids from the lang dir's ``phones.txt``; phone 0 = "no phone", the utterance
boundary), accumulated from per-frame arrays without per-frame loops. :func:`gaussian_loglik` is the
likelihood of statistics under their own ML Gaussian, the objective every split and merge optimises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from asr_base.io import atomic_path

LOG_2PI = float(np.log(2 * np.pi))


@dataclass
class TreeStats:
    """Single-Gaussian statistics per seen event ``(left, center, right, pdf_class)``."""

    keys: np.ndarray  # int32 (K, 4)
    counts: np.ndarray  # float64 (K,)
    sums: np.ndarray  # float64 (K, D)
    sumsqs: np.ndarray  # float64 (K, D)

    def __post_init__(self) -> None:
        self.keys = np.asarray(self.keys, dtype=np.int32).reshape(-1, 4)
        self.counts = np.asarray(self.counts, dtype=np.float64)
        self.sums = np.asarray(self.sums, dtype=np.float64)
        self.sumsqs = np.asarray(self.sumsqs, dtype=np.float64)
        k = self.keys.shape[0]
        if self.counts.shape != (k,) or self.sums.ndim != 2 or self.sums.shape[0] != k or self.sumsqs.shape != self.sums.shape:
            raise ValueError(f"inconsistent TreeStats shapes: keys {self.keys.shape}, counts {self.counts.shape}, "
                             f"sums {self.sums.shape}, sumsqs {self.sumsqs.shape}")

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def empty(cls, dim: int) -> "TreeStats":
        return cls(np.zeros((0, 4), np.int32), np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim)))

    @classmethod
    def from_frames(cls, left, center, right, pdf_class, feats, weights=None, chunk: int = 1 << 18) -> "TreeStats":
        """Accumulate from per-frame arrays (all length N; ``feats`` (N, D), any float dtype); vectorised.

        ``weights`` (N,) optionally weights frames (e.g. posteriors); default 1. Frames are reduced in
        chunks of ``chunk`` so the float64 temporaries stay small.
        """
        cols = [np.asarray(a, dtype=np.int64).ravel() for a in (left, center, right, pdf_class)]
        feats = np.asarray(feats)
        n = feats.shape[0]
        if any(c.shape[0] != n for c in cols):
            raise ValueError("left/center/right/pdf_class must have one entry per frame of feats")
        keys = np.stack(cols, axis=1)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        return cls._reduce(keys, w, feats, None, chunk)

    @staticmethod
    def _reduce(keys: np.ndarray, counts: np.ndarray, sums_or_feats: np.ndarray,
                sumsqs: np.ndarray | None, chunk: int = 1 << 18) -> "TreeStats":
        """Sum rows with equal keys. ``sumsqs`` None: the third argument holds raw frames."""
        d = sums_or_feats.shape[1] if sums_or_feats.ndim == 2 else 0
        if keys.shape[0] == 0:
            return TreeStats.empty(d)
        if keys.min() < 0:
            raise ValueError("negative phone id or pdf class in tree statistics")
        base = keys.max(axis=0).astype(np.int64) + 1
        code = ((keys[:, 0] * base[1] + keys[:, 1]) * base[2] + keys[:, 2]) * base[3] + keys[:, 3]
        uniq, inv = np.unique(code, return_inverse=True)
        inv = inv.ravel()
        k = uniq.shape[0]
        out_keys = np.empty((k, 4), np.int64)
        rest = uniq
        for c in (3, 2, 1):
            out_keys[:, c] = rest % base[c]
            rest = rest // base[c]
        out_keys[:, 0] = rest
        cnt = np.bincount(inv, weights=counts, minlength=k)
        unweighted = sumsqs is None and bool(np.all(counts == 1.0))
        s = np.zeros((d, k))
        ss = np.zeros((d, k))
        # per chunk of rows, one bincount per feature dimension over contiguous (transposed) columns:
        # loops over chunks and dimensions, never over frames; float64 temporaries stay chunk-sized
        for start in range(0, keys.shape[0], chunk):
            sl = slice(start, start + chunk)
            idx = inv[sl]
            xt = np.asarray(sums_or_feats[sl]).T.astype(np.float64, order="C")
            if sumsqs is None:
                w = counts[sl]
                for j in range(d):
                    col = xt[j]
                    wcol = col if unweighted else col * w
                    s[j] += np.bincount(idx, weights=wcol, minlength=k)
                    ss[j] += np.bincount(idx, weights=wcol * col, minlength=k)
            else:
                sqt = np.asarray(sumsqs[sl]).T.astype(np.float64, order="C")
                for j in range(d):
                    s[j] += np.bincount(idx, weights=xt[j], minlength=k)
                    ss[j] += np.bincount(idx, weights=sqt[j], minlength=k)
        return TreeStats(out_keys.astype(np.int32), cnt, np.ascontiguousarray(s.T), np.ascontiguousarray(ss.T))

    def merge(self, *others: "TreeStats") -> "TreeStats":
        """Sum of this and other statistics (chunked accumulation)."""
        parts = [self, *others]
        parts = [p for p in parts if len(p)]
        if not parts:
            return TreeStats.empty(self.dim)
        if len({p.dim for p in parts}) != 1:
            raise ValueError("cannot merge TreeStats of different feature dimensions")
        return TreeStats._reduce(np.concatenate([p.keys for p in parts]).astype(np.int64),
                                 np.concatenate([p.counts for p in parts]),
                                 np.concatenate([p.sums for p in parts]),
                                 np.concatenate([p.sumsqs for p in parts]))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=self.keys, counts=self.counts, sums=self.sums, sumsqs=self.sumsqs)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TreeStats":
        with np.load(path) as z:
            return cls(z["keys"], z["counts"], z["sums"], z["sumsqs"])


def gaussian_loglik(n: np.ndarray, s: np.ndarray, ss: np.ndarray, var_floor: float) -> np.ndarray:
    """Log-likelihood of the data under its own ML diagonal Gaussian, for stats (..., ), (..., D)."""
    n = np.asarray(n, dtype=np.float64)
    d = s.shape[-1]
    safe = np.maximum(n, 1e-10)[..., None]
    mean = s / safe
    var = np.maximum(ss / safe - mean * mean, var_floor)
    ll = -0.5 * n * (d * (1.0 + LOG_2PI) + np.log(var).sum(-1))
    return np.where(n > 0, ll, 0.0)
