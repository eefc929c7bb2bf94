"""LDA and MLLT estimation for the tri2 system (Kaldi's ``acc-lda`` / ``est-lda`` and ``gmm-acc-mllt`` / ``est-mllt``).

**LDA.** Classes are the tied states of the previous system's alignment, silence frames left out (Kaldi's
``weight-silence-post 0.0``). From the within-class covariance ``W`` and the between-class covariance ``B`` of
the spliced frames: ``W = L L^T`` (Cholesky), the eigenvectors ``U`` of ``L^-1 B L^-T`` sorted by eigenvalue,
and ``M = U[:, :dim]^T L^-1``, so the projected within-class covariance is the identity (``LdaEstimate``).

**MLLT** (maximum-likelihood linear transform, Gales' semi-tied covariances). With the statistics
``G_i = sum_t sum_g post_tg / var_gi (x_t - mu_g)(x_t - mu_g)^T`` and ``beta = sum post`` of the current
features and model (:meth:`data_prep.align.gmm.DiagGmmSet.accumulate_mllt`), the square ``A`` maximising
``beta log|det A| - 1/2 sum_i a_i G_i a_i^T`` is found row by row: ``a_i = c_i G_i^-1 sqrt(beta / (c_i G_i^-1
c_i^T))`` with ``c_i`` the cofactor row, from ``A = I`` (``MlltAccs::Update``). Features become ``A x``,
means ``A mu`` (``gmm-transform-means``), and ``final.mat = A M`` (``compose-transforms``).

Kaldi's tools exist only as C++ binaries (no Python binding does the estimation), and both are a few lines of
linear algebra on statistics that our vectorised accumulation already produces, so they are written here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class LdaStats:
    """Per-class counts and sums and the total scatter of the (spliced) frames, float64."""

    occ: np.ndarray  # (K,)
    sum: np.ndarray  # (K, D)
    scatter: np.ndarray  # (D, D) sum of x x^T

    @classmethod
    def zeros(cls, num_classes: int, dim: int) -> "LdaStats":
        return cls(np.zeros(num_classes), np.zeros((num_classes, dim)), np.zeros((dim, dim)))

    def accumulate(self, x: np.ndarray, labels: np.ndarray) -> "LdaStats":
        """Frames ``x`` with class ``labels`` (``< 0``: left out)."""
        keep = labels >= 0
        x64 = np.asarray(x, dtype=np.float64)[keep]
        lab = labels[keep]
        if lab.size == 0:
            return self
        self.occ += np.bincount(lab, minlength=self.occ.size)
        order = np.argsort(lab, kind="stable")  # per-class sums: one sort and one segment sum
        lab_s = lab[order]
        cuts = np.flatnonzero(np.diff(lab_s)) + 1
        starts = np.concatenate([[0], cuts])
        self.sum[lab_s[starts]] += np.add.reduceat(x64[order], starts, axis=0)
        self.scatter += x64.T @ x64
        return self


def estimate_lda(stats: LdaStats, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(M, eigenvalues)``: the ``(dim, D)`` LDA matrix (projected within-class covariance = identity) and the
    between/within eigenvalues, largest first (all ``D`` of them, for the log)."""
    n = stats.occ.sum()
    d = stats.scatter.shape[0]
    if dim > d:
        raise ValueError(f"LDA dimension {dim} is above the spliced feature dimension {d}")
    if n <= d:
        raise ValueError(f"LDA needs more than {d} non-silence frames, got {int(n)}")
    mean = stats.sum.sum(0) / n
    total = stats.scatter / n - np.outer(mean, mean)
    seen = stats.occ > 0
    cm = stats.sum[seen] / stats.occ[seen, None] - mean
    between = (cm * stats.occ[seen, None]).T @ cm / n
    within = total - between
    within = 0.5 * (within + within.T)
    chol = np.linalg.cholesky(within + 1e-10 * np.trace(within) / d * np.eye(d))
    linv = np.linalg.inv(chol)
    w, u = np.linalg.eigh(linv @ between @ linv.T)
    order = np.argsort(-w, kind="stable")
    m = u[:, order[:dim]].T @ linv
    # eigenvector signs are arbitrary: fix them (largest-magnitude entry positive) so the matrix is reproducible
    sign = np.sign(m[np.arange(dim), np.abs(m).argmax(1)])
    return m * sign[:, None], w[order]


def estimate_mllt(g: torch.Tensor | np.ndarray, beta: float, iters: int = 10) -> tuple[np.ndarray, float]:
    """``(A, objective improvement per frame)`` from MLLT statistics (``G``: ``(D, D, D)``), starting at ``A = I``."""
    g = np.asarray(g.numpy() if isinstance(g, torch.Tensor) else g, dtype=np.float64)
    d = g.shape[0]
    if beta <= 0:
        raise ValueError("MLLT statistics are empty")
    g_inv = np.linalg.inv(g)

    def objf(a: np.ndarray) -> float:
        return beta * np.linalg.slogdet(a)[1] - 0.5 * float(np.einsum("ia,iab,ib->", a, g, a))

    a = np.eye(d)
    start = objf(a)
    for _ in range(iters):
        for i in range(d):
            c = np.linalg.inv(a).T[i]  # the cofactor row up to det(A), which the normalisation removes
            cg = c @ g_inv[i]
            a[i] = cg * np.sqrt(beta / float(cg @ c))
    gain = (objf(a) - start) / beta
    log.info("MLLT: objective improvement %.4f per frame over %.0f frames", gain, beta)
    return a, gain
