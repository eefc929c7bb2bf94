"""Per-speaker fMLLR (constrained MLLR) for the SAT system tri3: Kaldi's ``gmm-est-fmllr``, ``FmllrDiagGmmAccs``.

A speaker's transform ``W = [A b]`` (``(D, D + 1)``) maps its features to ``A x + b``. With ``xe = [x, 1]`` and the
posteriors of the current (adapted-space) model's Gaussians (:meth:`data_prep.align.gmm.DiagGmmSet.accumulate_fmllr`)
the statistics are ``beta = sum post``, ``K = sum post (mu / var) xe^T`` and ``G_i = sum post / var_i xe xe^T``,
and ``W`` maximises ``beta log|det A| + sum_i (w_i k_i - 1/2 w_i G_i w_i^T)``. It is updated row by row
(Gales 1998; Povey & Saon 2006, eq. B.9): with ``c_i`` the cofactor row of ``A`` (a zero appended),
``w_i = (alpha c_i + k_i) G_i^-1``, where ``alpha`` is the root of ``e2 alpha^2 + e1 alpha - beta = 0``
(``e1 = c_i G_i^-1 k_i^T``, ``e2 = c_i G_i^-1 c_i^T``) with the higher objective. A speaker with fewer than
``min_count`` frames keeps the identity (Kaldi's ``--fmllr-min-count``).

Written here because Kaldi's estimation is C++ only (``kaldi_hmm_gmm`` binds the model classes, not the fMLLR
accumulators); the transforms are written as Kaldi's ``trans.*`` archives (speaker -> matrix, kaldi-io).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from asr_base.io import atomic_path


@dataclass
class FmllrStats:
    beta: float
    k: np.ndarray  # (D, D + 1)
    g: np.ndarray  # (D, D + 1, D + 1)

    def add_(self, other: "FmllrStats") -> "FmllrStats":
        self.beta += other.beta
        self.k += other.k
        self.g += other.g
        return self


def identity_transform(dim: int) -> np.ndarray:
    return np.hstack([np.eye(dim), np.zeros((dim, 1))])


def fmllr_objective(w: np.ndarray, st: FmllrStats) -> float:
    d = w.shape[0]
    return (st.beta * np.linalg.slogdet(w[:, :d])[1] + float((w * st.k).sum())
            - 0.5 * float(np.einsum("ia,iab,ib->", w, st.g, w)))


def estimate_fmllr(st: FmllrStats, w0: np.ndarray | None = None, iters: int = 10,
                   min_count: float = 50.0) -> tuple[np.ndarray, float]:
    """``(W, objective improvement per frame)`` from one speaker's statistics, starting at ``w0`` (default identity)."""
    d = st.k.shape[0]
    w = identity_transform(d) if w0 is None else np.array(w0, dtype=np.float64)
    if st.beta < min_count:
        return identity_transform(d), 0.0
    g_inv = np.linalg.inv(st.g)
    start = fmllr_objective(w, st)
    for _ in range(iters):
        for i in range(d):
            c = np.append(np.linalg.inv(w[:, :d])[:, i], 0.0)  # the cofactor row / det(A): alpha absorbs the scale
            gc, gk = g_inv[i] @ c, g_inv[i] @ st.k[i]
            e2, e1 = float(c @ gc), float(c @ gk)
            disc = np.sqrt(e1 * e1 + 4.0 * e2 * st.beta)
            best = None
            for alpha in ((-e1 + disc) / (2 * e2), (-e1 - disc) / (2 * e2)):
                row = alpha * gc + gk
                obj = st.beta * np.log(abs(alpha * e2 + e1)) - 0.5 * alpha * alpha * e2
                if best is None or obj > best[0]:
                    best = (obj, row)
            w[i] = best[1]
    return w, (fmllr_objective(w, st) - start) / st.beta


def apply_transform(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``A x + b`` for the rows of ``x``, float32."""
    d = w.shape[0]
    return (np.asarray(x, dtype=np.float32) @ w[:, :d].T.astype(np.float32) + w[:, d].astype(np.float32))


def write_transforms(path: str | os.PathLike, transforms: dict[str, np.ndarray]) -> None:
    """Kaldi's ``trans.*``: a binary archive of speaker -> ``(D, D + 1)`` matrices, sorted by speaker, atomically."""
    from asr_base.kaldi_io import kaldi_io

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for spk in sorted(transforms):
            kaldi_io.write_mat(f, np.asarray(transforms[spk], dtype=np.float32), key=spk)


def read_transforms(path: str | os.PathLike) -> dict[str, np.ndarray]:
    from asr_base.kaldi_io import kaldi_io

    return {k: np.asarray(m, dtype=np.float64) for k, m in kaldi_io.read_mat_ark(str(path))}
