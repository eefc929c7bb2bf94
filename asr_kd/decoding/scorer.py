"""Scorers: acoustic model(s) + state priors + a feature store -> per-utterance log-likelihood matrices.

The hybrid DNN-HMM trick: the network estimates ``p(state | x)``; the decoder needs ``p(x | state)``,
which up to a per-frame constant is ``p(state | x) / p(state)``. So a scorer yields per utterance the
``(frames, num_pdfs)`` float32 matrix of **unscaled pseudo-log-likelihoods**
``log p(state | x) - log p(state)``; the decoder applies the acoustic scale (Kaldi's ``*-mapped``
decoders take the same input with ``--acoustic-scale``).

Priors are the state occupancy counts of the training alignment (``exp/tri/pdf_counts.npy``)
normalised to probabilities. As in Kaldi nnet1's ``PdfPrior``, a state whose relative count is below
``prior_floor`` (e.g. never seen in training) gets a huge log prior (``UNSEEN_LOG_PRIOR``) so its
log-likelihood is very low and it never wins (dividing a near-zero posterior by a near-zero prior would
otherwise make it win arbitrarily).

An ensemble scores with the arithmetic mean of its members' posteriors (paper, section 4).
Utterances are scored in batches of whole utterances: their frames are taken from the store as one
contiguous chunk and context windows are gathered with :func:`asr_kd.nn.context_window.splice`
(edge frames replicated), so no window ever crosses an utterance boundary.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from asr_kd.nn.context_window import splice

log = logging.getLogger(__name__)

UNSEEN_LOG_PRIOR = 1.0e4  # log prior of states below the floor: their log-likelihood becomes ~ -1e4


def log_priors_from_counts(counts: np.ndarray, floor: float = 1e-10) -> np.ndarray:
    """float32 log priors from occupancy counts (see the module docstring for the floor)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"pdf counts must be a non-empty vector, got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("pdf counts must be finite and non-negative")
    total = counts.sum()
    if total <= 0:
        raise ValueError("pdf counts are all zero")
    p = counts / total
    out = np.where(p >= floor, np.log(np.maximum(p, floor)), UNSEEN_LOG_PRIOR)
    n_unseen = int((p < floor).sum())
    if n_unseen:
        log.warning("%d of %d states have a prior below %g and are disabled", n_unseen, counts.size, floor)
    return out.astype(np.float32)


def load_log_priors(path: str | os.PathLike, floor: float = 1e-10) -> np.ndarray:
    """``pdf_counts.npy`` (counts) or ``log_priors.npy`` (already log priors, from an export dir)."""
    arr = np.load(path)
    if Path(path).name.startswith("log_prior"):
        return np.asarray(arr, dtype=np.float32)
    return log_priors_from_counts(arr, floor)


class PosteriorModel(torch.nn.Module):
    """Wraps one model or an ensemble: ``(B, window * D)`` -> ``(B, P)`` log of the mean posterior."""

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("no models to score with")
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for m in self.members:
            y = m(x)
            if y.dim() == 3:  # a StackedDNN: (M, B, P)
                outs.extend(torch.log_softmax(y.float(), dim=-1).unbind(0))
            else:
                outs.append(torch.log_softmax(y.float(), dim=-1))
        if len(outs) == 1:
            return outs[0]
        return torch.logsumexp(torch.stack(outs), dim=0) - math.log(len(outs))


@dataclass
class ScorerConfig:
    batch_frames: int = 8192  # frames per forward pass
    device: str = "cpu"


class ModelScorer:
    """Model(s) + log priors + feature store -> ``(utt, loglikes)`` pairs (see the module docstring)."""

    def __init__(self, models: torch.nn.Module | Sequence[torch.nn.Module], log_priors: np.ndarray, store,
                 left: int, right: int, config: ScorerConfig = ScorerConfig(), utt_ids: Sequence[str] | None = None):
        members = [models] if isinstance(models, torch.nn.Module) else list(models)
        self.device = torch.device(config.device)
        self.model = PosteriorModel(members).to(self.device).eval()
        self.log_priors = torch.as_tensor(np.asarray(log_priors, dtype=np.float32), device=self.device)
        self.store = store
        self.left, self.right = int(left), int(right)
        self.config = config
        idx = store.utt_index()
        if utt_ids is None:
            self.order = list(range(len(store.utt_ids)))
        else:
            missing = [u for u in utt_ids if u not in idx]
            if missing:
                raise KeyError(f"{len(missing)} utterances not in the feature store, e.g. {missing[:3]}")
            self.order = sorted(idx[u] for u in utt_ids)
        self.num_pdfs = int(self.log_priors.numel())

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | os.PathLike], log_priors: np.ndarray, store,
                         config: ScorerConfig = ScorerConfig(), utt_ids: Sequence[str] | None = None) -> "ModelScorer":
        from asr_kd.nn.model import load_model

        models = [load_model(p) for p in paths]
        cfgs = {(m.config.left_context, m.config.right_context, m.config.num_pdfs, m.config.feat_dim) for m in models}
        if len(cfgs) != 1:
            raise ValueError(f"ensemble members disagree on context/outputs: {sorted(cfgs)}")
        left, right, num_pdfs, feat_dim = cfgs.pop()
        if num_pdfs != len(log_priors):
            raise ValueError(f"models have {num_pdfs} outputs but the priors have {len(log_priors)} states")
        if feat_dim != store.dim:
            raise ValueError(f"models take {feat_dim}-dim features but the store has {store.dim}")
        return cls(models, log_priors, store, left, right, config, utt_ids)

    def __len__(self) -> int:
        return len(self.order)

    @property
    def utt_ids(self) -> list[str]:
        return [self.store.utt_ids[i] for i in self.order]

    def _groups(self) -> Iterator[list[int]]:
        """Runs of consecutive utterances with at most ``batch_frames`` frames (or one long utterance)."""
        group: list[int] = []
        frames = 0
        for i in self.order:
            n = int(self.store.lengths[i])
            if group and (frames + n > self.config.batch_frames or i != group[-1] + 1):
                yield group
                group, frames = [], 0
            group.append(i)
            frames += n
        if group:
            yield group

    @torch.inference_mode()
    def score_group(self, group: list[int]) -> list[tuple[str, np.ndarray]]:
        st = self.store
        s0 = int(st.starts[group[0]])
        e0 = int(st.starts[group[-1]] + st.lengths[group[-1]])
        lengths = torch.as_tensor(st.lengths[group], dtype=torch.int64)
        out: list[tuple[str, np.ndarray]] = []
        if e0 == s0:
            return [(st.utt_ids[i], np.zeros((0, self.num_pdfs), np.float32)) for i in group]
        chunk = torch.from_numpy(np.array(st.feats[s0:e0], dtype=np.float32)).to(self.device)
        starts = torch.as_tensor(st.starts[group] - s0, dtype=torch.int64, device=self.device)
        lengths = lengths.to(self.device)
        n = e0 - s0
        pieces = []
        for b in range(0, n, self.config.batch_frames):
            idx = torch.arange(b, min(n, b + self.config.batch_frames), device=self.device)
            # empty utterances share their start with the next one; splice's searchsorted skips them
            x = splice(chunk, starts, lengths, idx, self.left, self.right)
            pieces.append(self.model(x) - self.log_priors)
        ll = torch.cat(pieces).cpu().numpy()
        pos = 0
        for i in group:
            k = int(st.lengths[i])
            out.append((st.utt_ids[i], ll[pos:pos + k]))
            pos += k
        return out

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for group in self._groups():
            yield from self.score_group(group)

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(self)
