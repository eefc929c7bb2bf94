"""Vectorised diagonal-covariance GMM emission models for HMM states (torch).

One :class:`DiagGmmSet` holds every Gaussian of every pdf (tied HMM state) in flat tensors; a
Gaussian belongs to the pdf ``gauss2pdf[g]``. Scoring a whole utterance (or a batch of frames) is two
matrix products plus a scatter log-sum-exp, and accumulating statistics from an alignment is a masked
softmax plus matrix products: no per-frame Python loops (LibriSpeech is ~345M frames).

Kaldi's ``kaldi_hmm_gmm`` has the same models (``AmDiagGmm``) but its accumulation is a per-frame Python
call, far too slow, so training happens here and :meth:`DiagGmmSet.write_kaldi` serialises the result in
Kaldi's binary ``AmDiagGmm`` format (``<DIMENSION> <NUMPDFS> <DiagGMM> <GCONSTS> ...``) for ``final.mdl``.

The update follows Kaldi's ``MleDiagGmmUpdate``: means/variances from occupancy-weighted sums, a
variance floor, Gaussians with too little occupancy keep their parameters; mixture splitting follows
``AmDiagGmm::SplitByCount`` (per-pdf targets proportional to ``occ ** power``; the heaviest Gaussian of a
pdf is split in two, means moved by ``+-perturb * stddev`` along a random direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch

from asr_base import kaldi_binary as kb

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class GmmUpdateConfig:
    min_gauss_occ: float = 10.0  # Gaussians with less occupancy keep their mean/variance (Kaldi default 10)
    min_weight: float = 1e-5  # weight floor before renormalisation
    var_floor: float = 0.01  # variance floor, relative to the pooled (global) variance of the data
    split_power: float = 0.2  # Gaussians per pdf proportional to occ ** power (Kaldi --power 0.2)
    split_min_count: float = 20.0  # a pdf gets at most occ / min_count Gaussians
    perturb: float = 0.01  # split perturbation, in standard deviations


@dataclass
class GmmStats:
    """Sufficient statistics per Gaussian (float64): occupancy, first and second moments."""

    occ: torch.Tensor  # (G,)
    sum: torch.Tensor  # (G, D)
    sumsq: torch.Tensor  # (G, D)
    loglik: float = 0.0  # total log-likelihood of the accumulated frames under the model used
    frames: int = 0

    @classmethod
    def zeros(cls, num_gauss: int, dim: int) -> "GmmStats":
        z = torch.zeros
        return cls(z(num_gauss, dtype=torch.float64), z(num_gauss, dim, dtype=torch.float64),
                   z(num_gauss, dim, dtype=torch.float64))

    def add_(self, other: "GmmStats") -> "GmmStats":
        self.occ += other.occ
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.loglik += other.loglik
        self.frames += other.frames
        return self

    @property
    def avg_loglik(self) -> float:
        return self.loglik / max(self.frames, 1)


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


def _as_index(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.int64)
    return torch.from_numpy(np.asarray(x, dtype=np.int64))


def _segment_logsumexp(gl: torch.Tensor, starts: np.ndarray, counts: np.ndarray) -> torch.Tensor:
    """Log-sum-exp over contiguous, non-empty column segments ``starts[i] : starts[i] + counts[i]`` of ``gl``."""
    a = gl.detach().numpy() if gl.dtype == torch.float32 else gl.detach().to(torch.float32).numpy()
    m = np.maximum.reduceat(a, starts, axis=1)
    m = np.where(np.isfinite(m), m, np.float32(0.0))
    s = np.add.reduceat(np.exp(a - np.repeat(m, counts, axis=1)), starts, axis=1)
    with np.errstate(divide="ignore"):
        return torch.from_numpy(m + np.log(s))


def single_gaussian_stats(feats, pdf, num_pdfs: int) -> GmmStats:
    """Stats of one Gaussian per pdf from hard labels (frames with ``pdf < 0`` ignored)."""
    x = _as_tensor(feats).to(torch.float64)
    lab = _as_index(pdf)
    keep = lab >= 0
    x, lab = x[keep], lab[keep]
    st = GmmStats.zeros(num_pdfs, x.shape[1])
    st.occ.index_add_(0, lab, torch.ones_like(lab, dtype=torch.float64))
    st.sum.index_add_(0, lab, x)
    st.sumsq.index_add_(0, lab, x * x)
    st.frames = int(lab.numel())
    return st


class DiagGmmSet:
    """All Gaussians of all pdfs. ``gauss2pdf`` is sorted (Gaussians of a pdf are contiguous)."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
                 gauss2pdf: torch.Tensor, num_pdfs: int):
        self.weights = weights.to(torch.float32)
        self.means = means.to(torch.float32)
        self.vars = variances.to(torch.float32)
        self.gauss2pdf = gauss2pdf.to(torch.int64)
        self.num_pdfs = int(num_pdfs)
        if self.gauss2pdf.numel() and bool((self.gauss2pdf[1:] < self.gauss2pdf[:-1]).any()):
            order = torch.argsort(self.gauss2pdf, stable=True)
            self.weights, self.means, self.vars, self.gauss2pdf = (
                self.weights[order], self.means[order], self.vars[order], self.gauss2pdf[order])
        self._refresh()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_single_stats(cls, stats: GmmStats, var_floor: float = 0.01) -> "DiagGmmSet":
        """One Gaussian per pdf from :func:`single_gaussian_stats`; unseen pdfs get the global Gaussian."""
        num_pdfs, dim = stats.sum.shape
        tot = stats.occ.sum().clamp_min(1.0)
        gmean = stats.sum.sum(0) / tot
        gvar = (stats.sumsq.sum(0) / tot - gmean ** 2).clamp_min(1e-4)
        occ = stats.occ.clamp_min(1e-10)[:, None]
        mean = stats.sum / occ
        var = stats.sumsq / occ - mean ** 2
        seen = stats.occ > 0
        mean = torch.where(seen[:, None], mean, gmean)
        var = torch.where(seen[:, None], var, gvar)
        var = torch.maximum(var, var_floor * gvar)
        return cls(torch.ones(num_pdfs), mean, var, torch.arange(num_pdfs), num_pdfs)

    @property
    def num_gauss(self) -> int:
        return int(self.gauss2pdf.numel())

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def gauss_per_pdf(self) -> torch.Tensor:
        return torch.bincount(self.gauss2pdf, minlength=self.num_pdfs)

    def _refresh(self) -> None:
        inv = 1.0 / self.vars
        self._inv = inv  # (G, D)
        self._mean_inv = self.means * inv
        self._gconst = (torch.log(self.weights.clamp_min(1e-30)) - 0.5 * (
            self.dim * LOG_2PI + torch.log(self.vars).sum(1) + (self.means ** 2 * inv).sum(1)))
        # one GEMM scores every Gaussian: [x, x*x, 1] @ [mean*inv; -inv/2; gconst]  -> (T, G)
        self._w_aug = torch.cat([self._mean_inv, -0.5 * inv, self._gconst[:, None]], 1).T.contiguous()
        counts = torch.bincount(self.gauss2pdf, minlength=self.num_pdfs)
        ends = torch.cumsum(counts, 0)
        self._gstart = (ends - counts).numpy().astype(np.int64)  # first Gaussian of every pdf
        self._gend = ends.numpy().astype(np.int64)
        self._all_pdfs_have_gauss = bool((counts > 0).all())

    @staticmethod
    def _augment(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x * x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)

    # ------------------------------------------------------------------ scoring
    def gauss_loglik(self, feats) -> torch.Tensor:
        """(T, G) log(w_g N(x_t; mu_g, var_g)) (one matrix product over augmented features)."""
        x = _as_tensor(feats)
        return self._augment(x) @ self._w_aug

    def pdf_loglik_from_gauss(self, gl: torch.Tensor) -> torch.Tensor:
        """(T, G) Gaussian log-likelihoods -> (T, num_pdfs) pdf log-likelihoods (segment log-sum-exp).

        Gaussians of a pdf are contiguous, so the per-pdf max and sum are ``numpy.ufunc.reduceat`` over
        column segments (no scatter)."""
        if not self._all_pdfs_have_gauss or gl.shape[0] == 0:
            return self._pdf_loglik_scatter(gl)
        return _segment_logsumexp(gl, self._gstart, self._gend - self._gstart)

    def _pdf_loglik_scatter(self, gl: torch.Tensor) -> torch.Tensor:
        t = gl.shape[0]
        idx = self.gauss2pdf.expand(t, -1)
        m = gl.new_full((t, self.num_pdfs), -torch.inf).scatter_reduce_(1, idx, gl, "amax", include_self=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        s = gl.new_zeros((t, self.num_pdfs)).index_add_(1, self.gauss2pdf, torch.exp(gl - m[:, self.gauss2pdf]))
        return m + torch.log(s)

    def log_likelihoods(self, feats, pdfs: np.ndarray | None = None) -> torch.Tensor:
        """(T, num_pdfs) log p(x_t | pdf) for a whole utterance or batch; with ``pdfs`` (sorted, unique) only
        those columns, (T, len(pdfs)), scoring only their Gaussians (an utterance's training graph reaches a
        few hundred of the model's pdfs). A column is the same number either way."""
        if pdfs is None:
            return self.pdf_loglik_from_gauss(self.gauss_loglik(feats))
        pdfs = np.asarray(pdfs, dtype=np.int64)
        counts = self._gend[pdfs] - self._gstart[pdfs]
        if pdfs.size and int(counts.min()) == 0:
            raise ValueError(f"pdf {int(pdfs[np.argmin(counts)])} has no Gaussians")
        starts = np.cumsum(counts) - counts  # first column of every pdf among the selected Gaussians
        gidx = np.repeat(self._gstart[pdfs] - starts, counts) + np.arange(int(counts.sum()))
        gl = self._augment(_as_tensor(feats)) @ self._w_aug[:, torch.from_numpy(gidx)]
        if gl.shape[0] == 0 or pdfs.size == 0:
            return gl.new_zeros((gl.shape[0], pdfs.size))
        return _segment_logsumexp(gl, starts, counts)

    # ------------------------------------------------------------------ training
    def _pdf_posteriors(self, feats, pdf):
        """``(ga, gb, xa, post, frame_loglik)`` for every pdf present in the hard labels ``pdf`` (``< 0`` ignored):
        its frames ``xa = [x, x * x, 1]`` (float32), their posteriors over the pdf's Gaussians ``ga:gb`` (float64) and their
        log-likelihoods.

        Frames are sorted by pdf and every pdf's frames are scored against that pdf's Gaussians only (a loop over
        the pdfs present, not over frames), so the cost is O(T * Gaussians per pdf), not O(T * all Gaussians)."""
        x = _as_tensor(feats)
        lab = _as_index(pdf)
        keep = lab >= 0
        if not bool(keep.all()):
            x, lab = x[keep], lab[keep]
        if lab.numel() == 0:
            return
        if int(lab.max()) >= self.num_pdfs:
            raise ValueError(f"pdf label {int(lab.max())} >= num_pdfs {self.num_pdfs}")
        order = torch.argsort(lab, stable=True)
        lab = lab[order]
        xa = self._augment(x[order])  # (T, 2D+1) float32
        pdfs, counts = torch.unique_consecutive(lab, return_counts=True)
        bounds = np.concatenate([[0], np.cumsum(counts.numpy())])
        for p, a, b in zip(pdfs.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
            ga, gb = int(self._gstart[p]), int(self._gend[p])
            if gb == ga:
                raise ValueError(f"pdf {p} has no Gaussians")
            gl = xa[a:b] @ self._w_aug[:, ga:gb]  # (n, k)
            fll = torch.logsumexp(gl, 1)
            yield ga, gb, xa[a:b], torch.exp(gl - fll[:, None]).to(torch.float64), fll

    def accumulate(self, feats, pdf) -> GmmStats:
        """Stats from hard pdf labels (``pdf < 0`` ignored): posteriors over the Gaussians of each frame's pdf."""
        st = GmmStats.zeros(self.num_gauss, self.dim)
        tot = 0.0
        d = self.dim
        for ga, gb, xa, post, fll in self._pdf_posteriors(feats, pdf):
            tot += float(fll.to(torch.float64).sum())
            st.occ[ga:gb] += post.sum(0)
            mom = post.T @ xa[:, :-1].to(torch.float64)  # (k, 2D): first and second moments in one product
            st.sum[ga:gb] += mom[:, :d]
            st.sumsq[ga:gb] += mom[:, d:]
            st.frames += int(xa.shape[0])
        st.loglik = tot
        return st

    def accumulate_mllt(self, feats, pdf) -> tuple[torch.Tensor, float]:
        """MLLT statistics from hard pdf labels (Kaldi's ``gmm-acc-mllt``): ``G[i] = sum_t sum_g post_tg / var_gi
        (x_t - mu_g)(x_t - mu_g)^T``, ``(D, D, D)`` float64, and ``beta``, the total posterior count."""
        d = self.dim
        g_acc = torch.zeros(d, d, d, dtype=torch.float64)
        beta = 0.0
        mu, inv = self.means.to(torch.float64), self._inv.to(torch.float64)
        for ga, gb, xa, post, _ in self._pdf_posteriors(feats, pdf):
            x64 = xa[:, :d].to(torch.float64)
            occ = post.sum(0)  # (k,)
            s1 = post.T @ x64  # (k, D)
            s2 = torch.einsum("nk,na,nb->kab", post, x64, x64)  # (k, D, D)
            m = mu[ga:gb]
            outer = m[:, :, None] * s1[:, None, :]
            scatter = s2 - outer - outer.transpose(1, 2) + occ[:, None, None] * m[:, :, None] * m[:, None, :]
            g_acc += torch.einsum("kab,ki->iab", scatter, inv[ga:gb])
            beta += float(occ.sum())
        return g_acc, beta

    def accumulate_fmllr(self, feats, pdf):
        """fMLLR statistics of one speaker's frames from hard pdf labels (Kaldi's ``FmllrDiagGmmAccs``):
        :class:`data_prep.align.fmllr.FmllrStats` with ``K = sum post (mu / var) xe^T`` and ``G_i = sum post / var_i
        xe xe^T`` for ``xe = [x, 1]``, float64."""
        from data_prep.align.fmllr import FmllrStats

        d = self.dim
        st = FmllrStats(0.0, np.zeros((d, d + 1)), np.zeros((d, d + 1, d + 1)))
        mu_inv, inv = self._mean_inv.to(torch.float64), self._inv.to(torch.float64)
        k = torch.zeros(d, d + 1, dtype=torch.float64)
        g = torch.zeros(d, d + 1, d + 1, dtype=torch.float64)
        for ga, gb, xa, post, _ in self._pdf_posteriors(feats, pdf):
            xe = torch.cat([xa[:, :d].to(torch.float64), torch.ones(xa.shape[0], 1, dtype=torch.float64)], 1)
            st.beta += float(post.sum())
            k += mu_inv[ga:gb].T @ (post.T @ xe)
            w = post @ inv[ga:gb]  # (n, D): sum over the pdf's Gaussians of post / var_i
            g += torch.einsum("ni,na,nb->iab", w, xe, xe)
        st.k, st.g = k.numpy(), g.numpy()
        return st

    def update(self, stats: GmmStats, cfg: GmmUpdateConfig = GmmUpdateConfig()) -> "DiagGmmSet":
        """M-step (returns a new set with the same Gaussians)."""
        occ = stats.occ
        tot = occ.sum().clamp_min(1.0)
        gmean = stats.sum.sum(0) / tot
        gvar = (stats.sumsq.sum(0) / tot - gmean ** 2).clamp_min(1e-4)
        safe = occ.clamp_min(1e-10)[:, None]
        mean = stats.sum / safe
        var = torch.maximum(stats.sumsq / safe - mean ** 2, cfg.var_floor * gvar)
        ok = (occ >= cfg.min_gauss_occ)[:, None]
        mean = torch.where(ok, mean, self.means.to(torch.float64))
        var = torch.where(ok, var, self.vars.to(torch.float64))
        pdf_occ = torch.zeros(self.num_pdfs, dtype=torch.float64).index_add_(0, self.gauss2pdf, occ)
        w = occ / pdf_occ.clamp_min(1e-10)[self.gauss2pdf]
        unseen = pdf_occ[self.gauss2pdf] <= 0
        w = torch.where(unseen, self.weights.to(torch.float64), w).clamp_min(cfg.min_weight)
        wsum = torch.zeros(self.num_pdfs, dtype=torch.float64).index_add_(0, self.gauss2pdf, w)
        w = w / wsum[self.gauss2pdf]
        return DiagGmmSet(w, mean, var, self.gauss2pdf.clone(), self.num_pdfs)

    def transform_means(self, a) -> "DiagGmmSet":
        """Means ``A mu`` for features ``A x`` (Kaldi's ``gmm-transform-means``); weights and variances as they are
        (the next update re-estimates them in the new space)."""
        a = torch.as_tensor(np.asarray(a, dtype=np.float64))
        if tuple(a.shape) != (self.dim, self.dim):
            raise ValueError(f"transform of shape {tuple(a.shape)} for {self.dim}-dim Gaussians")
        return DiagGmmSet(self.weights, self.means.to(torch.float64) @ a.T, self.vars, self.gauss2pdf.clone(),
                          self.num_pdfs)

    def split(self, target_total: int, pdf_occ: torch.Tensor, cfg: GmmUpdateConfig = GmmUpdateConfig(),
              generator: torch.Generator | None = None) -> "DiagGmmSet":
        """Grow to about ``target_total`` Gaussians, distributed over pdfs like Kaldi's SplitByCount."""
        occ = pdf_occ.to(torch.float64).clamp_min(0)
        cur = self.gauss_per_pdf()
        if target_total <= self.num_gauss:
            return self
        share = occ ** cfg.split_power
        target = torch.floor(share / share.sum().clamp_min(1e-30) * target_total + 0.5).to(torch.int64)
        cap = torch.floor(occ / cfg.split_min_count).to(torch.int64)
        target = torch.maximum(torch.minimum(target, cap), torch.ones_like(target))
        target = torch.maximum(target, cur)  # never shrink
        w, mu, var, g2p = self.weights.clone(), self.means.clone(), self.vars.clone(), self.gauss2pdf.clone()
        while True:
            cnt = torch.bincount(g2p, minlength=self.num_pdfs)
            need = torch.nonzero(cnt < target).flatten()
            if need.numel() == 0:
                break
            # heaviest Gaussian of every pdf that needs more
            best = torch.full((self.num_pdfs,), -1.0, dtype=w.dtype).scatter_reduce_(0, g2p, w, "amax")
            is_best = (w == best[g2p]) & (cnt[g2p] < target[g2p])
            gidx = torch.nonzero(is_best).flatten()
            # one per pdf (ties: the first)
            first = torch.ones_like(gidx, dtype=torch.bool)
            first[1:] = g2p[gidx[1:]] != g2p[gidx[:-1]]
            gidx = gidx[first]
            direction = torch.randn(gidx.numel(), self.dim, generator=generator) * cfg.perturb * var[gidx].sqrt()
            w[gidx] = w[gidx] / 2
            new_mu = mu[gidx] - direction
            mu[gidx] = mu[gidx] + direction
            w = torch.cat([w, w[gidx]])
            mu = torch.cat([mu, new_mu])
            var = torch.cat([var, var[gidx]])
            g2p = torch.cat([g2p, g2p[gidx]])
        return DiagGmmSet(w, mu, var, g2p, self.num_pdfs)

    # ------------------------------------------------------------------ I/O
    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(weights=self.weights.numpy(), means=self.means.numpy(), vars=self.vars.numpy(),
                    gauss2pdf=self.gauss2pdf.numpy(), num_pdfs=np.asarray(self.num_pdfs))

    @classmethod
    def from_state_dict(cls, d) -> "DiagGmmSet":
        return cls(torch.as_tensor(d["weights"]), torch.as_tensor(d["means"]), torch.as_tensor(d["vars"]),
                   torch.as_tensor(d["gauss2pdf"]), int(d["num_pdfs"]))

    def write_kaldi(self, f: BinaryIO) -> None:
        """Kaldi binary ``AmDiagGmm::Write`` (without the ``\\0B`` header)."""
        kb.write_token(f, "<DIMENSION>")
        kb.write_int32(f, self.dim)
        kb.write_token(f, "<NUMPDFS>")
        kb.write_int32(f, self.num_pdfs)
        bounds = torch.cumsum(self.gauss_per_pdf(), 0).tolist()
        start = 0
        gconst, w, mi, inv = (t.numpy() for t in (self._gconst, self.weights, self._mean_inv, self._inv))
        for end in bounds:
            kb.write_token(f, "<DiagGMM>")
            kb.write_token(f, "<GCONSTS>")
            kb.write_float_vector(f, gconst[start:end])
            kb.write_token(f, "<WEIGHTS>")
            kb.write_float_vector(f, w[start:end])
            kb.write_token(f, "<MEANS_INVVARS>")
            kb.write_float_matrix(f, mi[start:end])
            kb.write_token(f, "<INV_VARS>")
            kb.write_float_matrix(f, inv[start:end])
            kb.write_token(f, "</DiagGMM>")
            start = end

    @classmethod
    def read_kaldi(cls, r: kb.KaldiReader | bytes | BinaryIO) -> "DiagGmmSet":
        """Inverse of :meth:`write_kaldi` (from a reader positioned at ``<DIMENSION>``, or bytes / a file)."""
        if not isinstance(r, kb.KaldiReader):
            r = kb.KaldiReader(r)
        r.expect("<DIMENSION>")
        dim = r.int32()
        r.expect("<NUMPDFS>")
        num_pdfs = r.int32()
        ws, mus, vs, g2p = [], [], [], []
        for p in range(num_pdfs):
            r.expect("<DiagGMM>")
            r.expect("<GCONSTS>")
            r.float_vector()
            r.expect("<WEIGHTS>")
            w = r.float_vector()
            r.expect("<MEANS_INVVARS>")
            mi = r.float_matrix()
            r.expect("<INV_VARS>")
            inv = r.float_matrix()
            r.expect("</DiagGMM>")
            if mi.shape[1] != dim:
                raise ValueError(f"pdf {p}: dimension {mi.shape[1]} != {dim}")
            ws.append(w)
            vs.append(1.0 / inv)
            mus.append(mi / inv)
            g2p.append(np.full(len(w), p))
        return cls(*(torch.from_numpy(np.concatenate(a)) for a in (ws, mus, vs, g2p)), num_pdfs)
