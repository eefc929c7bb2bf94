"""Per-speaker cepstral mean and variance normalisation (Kaldi conventions), vectorised and chunked.

Kaldi stores CMVN statistics of one speaker as a ``(2, dim + 1)`` float64 matrix::

    [[ sum_t x_t[0] ... sum_t x_t[dim-1],  count ],
     [ sum_t x_t[0]^2 ... sum_t x_t[dim-1]^2,  0  ]]

``apply-cmvn --norm-vars=true`` maps ``x -> (x - mean) / sqrt(var)`` with ``mean = sum / count`` and
``var = sumsq / count - mean^2`` (floored). Statistics live in ``cmvn.npz`` (``speakers`` (S,), ``stats``
(S, 2, dim+1) float64) next to a feature store, and can be exported as a Kaldi ``cmvn.ark``/``cmvn.scp``.

Nothing here loops over frames in Python: utterance sums come from ``np.add.reduceat`` over contiguous
chunks of the store, per-frame means/scales from ``np.repeat`` of per-utterance values; chunks bound the
memory so a LibriSpeech-size store is never held in RAM as float32.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from asr_base.io import atomic_path

log = logging.getLogger(__name__)

MODES = ("speaker_mean_var", "speaker_mean", "none")
VAR_FLOOR = 1.0e-20  # Kaldi's apply-cmvn floors the variance at 1e-20 (and warns)
CHUNK_FRAMES = 1 << 18  # 262k frames: ~84 MB as float64 at dim 40


@dataclass
class SpeakerCmvn:
    """Per-speaker Kaldi CMVN statistics."""

    speakers: list[str]
    stats: np.ndarray  # (S, 2, dim + 1) float64

    @property
    def dim(self) -> int:
        return int(self.stats.shape[2] - 1)

    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.speakers)}

    def transform(self, norm_vars: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Per-speaker ``(mean, scale)`` (each (S, dim) float64) so that ``(x - mean) * scale`` normalises."""
        return stats_to_transform(self.stats, norm_vars)

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **self.arrays())

    def arrays(self) -> dict[str, np.ndarray]:
        return {"speakers": np.asarray(self.speakers, dtype=str), "stats": self.stats}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SpeakerCmvn":
        with np.load(path) as z:
            speakers = [str(s) for s in z["speakers"]]
            stats = np.asarray(z["stats"], dtype=np.float64)
        check_stats(stats, path)
        if len(speakers) != stats.shape[0]:
            raise ValueError(f"{path}: {len(speakers)} speakers but {stats.shape[0]} stats matrices")
        return cls(speakers, stats)

    def write_kaldi(self, ark: str | os.PathLike, scp: str | os.PathLike | None = None) -> None:
        """Write ``cmvn.ark`` (+ ``cmvn.scp``) as Kaldi's compute-cmvn-stats does (double matrices)."""
        from data_prep.features.kaldi_feats import write_matrices_ark

        write_matrices_ark(ark, scp, ((s, self.stats[i]) for i, s in enumerate(self.speakers)), dtype=np.float64)

    @classmethod
    def read_kaldi(cls, scp_or_ark: str | os.PathLike) -> "SpeakerCmvn":
        """Read Kaldi CMVN stats from a ``cmvn.scp`` or ``cmvn.ark`` (uncompressed)."""
        from data_prep.features.kaldi_feats import read_matrices

        speakers, mats = [], []
        for key, mat in read_matrices(scp_or_ark):
            speakers.append(key)
            mats.append(np.asarray(mat, dtype=np.float64))
        if not mats:
            raise ValueError(f"{scp_or_ark}: no CMVN statistics")
        stats = np.stack(mats)
        check_stats(stats, scp_or_ark)
        return cls(speakers, stats)


def check_stats(stats: np.ndarray, where: object = "stats") -> None:
    if stats.ndim != 3 or stats.shape[1] != 2 or stats.shape[2] < 2:
        raise ValueError(f"{where}: CMVN stats must be (speakers, 2, dim+1), got {stats.shape}")


def utterance_stats(feats: np.ndarray) -> np.ndarray:
    """Kaldi ``(2, dim + 1)`` float64 stats of one utterance (or any block of frames)."""
    x = np.asarray(feats, dtype=np.float64)
    out = np.zeros((2, x.shape[1] + 1), dtype=np.float64)
    out[0, :-1] = x.sum(axis=0)
    out[0, -1] = x.shape[0]
    out[1, :-1] = np.einsum("td,td->d", x, x)
    return out


def stats_to_transform(stats: np.ndarray, norm_vars: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` (S, dim) from Kaldi stats (S, 2, dim+1); scale is 1 without variance normalisation."""
    check_stats(stats)
    count = stats[:, 0, -1]
    if np.any(count < 1.0):
        bad = np.flatnonzero(count < 1.0)
        raise ValueError(f"CMVN stats with count < 1 for {len(bad)} speaker(s) (first index {bad[0]})")
    mean = stats[:, 0, :-1] / count[:, None]
    if not norm_vars:
        return mean, np.ones_like(mean)
    var = stats[:, 1, :-1] / count[:, None] - mean**2
    floored = int(np.count_nonzero(var < VAR_FLOOR))
    if floored:
        log.warning("CMVN: flooring %d variance value(s) at %g", floored, VAR_FLOOR)
    return mean, 1.0 / np.sqrt(np.maximum(var, VAR_FLOOR))


def utterance_chunks(lengths: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> Iterator[tuple[int, int]]:
    """Split utterances ``[0, U)`` into runs ``[u0, u1)`` of at most ``chunk_frames`` frames (at least one
    utterance per run, so an utterance longer than ``chunk_frames`` forms a run by itself)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    u0, n = 0, len(lengths)
    while u0 < n:
        base = ends[u0 - 1] if u0 else 0
        u1 = int(np.searchsorted(ends, base + chunk_frames, side="right"))
        u1 = max(u1, u0 + 1)
        yield u0, u1
        u0 = u1


def speaker_index(speakers: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sorted unique speaker names and the int64 speaker number of every utterance."""
    names, inverse = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
    return [str(s) for s in names], inverse.astype(np.int64)


def accumulate_speaker_stats(
    feats: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    speakers: Sequence[str],
    chunk_frames: int = CHUNK_FRAMES,
) -> SpeakerCmvn:
    """Per-speaker Kaldi stats over a contiguous store (``feats`` may be a memmap of any float dtype).

    Utterances must be contiguous and in order (``starts[i+1] == starts[i] + lengths[i]``), as in a
    feature store. Zero-length utterances contribute nothing.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    names, spk = speaker_index(speakers)
    dim = feats.shape[1]
    stats = np.zeros((len(names), 2, dim + 1), dtype=np.float64)
    for u0, u1 in utterance_chunks(lengths, chunk_frames):
        lo = int(starts[u0])
        hi = int(starts[u1 - 1] + lengths[u1 - 1])
        x = np.asarray(feats[lo:hi], dtype=np.float64)
        lens = lengths[u0:u1]
        keep = lens > 0  # reduceat needs strictly valid offsets; empty utterances add nothing
        if not keep.any():
            continue
        offs = (starts[u0:u1] - lo)[keep]
        sums = np.add.reduceat(x, offs, axis=0)
        sqs = np.add.reduceat(x * x, offs, axis=0)
        who = spk[u0:u1][keep]
        np.add.at(stats[:, 0, :-1], who, sums)
        np.add.at(stats[:, 1, :-1], who, sqs)
        np.add.at(stats[:, 0, -1], who, lens[keep].astype(np.float64))
    return SpeakerCmvn(names, stats)


def apply_cmvn_inplace(
    feats: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    speakers: Sequence[str],
    cmvn: SpeakerCmvn,
    norm_vars: bool = True,
    chunk_frames: int = CHUNK_FRAMES,
    progress: bool = False,
    utt_offsets: np.ndarray | None = None,
) -> None:
    """Normalise a contiguous store in place, chunk by chunk: ``x <- (x - mean_spk) * scale_spk``.

    ``utt_offsets`` (U, dim), if given, says the stored rows of utterance ``u`` are ``x - utt_offsets[u]``
    (utterance-centred values keep float16 precision relative to the utterance's own spread, not to the
    raw magnitude); they are added back in the same vectorised step. Arithmetic is float32 per chunk;
    the result is written back in ``feats``' dtype (float16 in a store).
    """
    from tqdm import tqdm

    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    index = cmvn.index()
    missing = sorted({s for s in speakers if s not in index})
    if missing:
        raise KeyError(f"no CMVN stats for {len(missing)} speaker(s), e.g. {missing[:3]}")
    spk = np.fromiter((index[s] for s in speakers), dtype=np.int64, count=len(speakers))
    mean, scale = cmvn.transform(norm_vars)
    if utt_offsets is not None:
        utt_offsets = np.asarray(utt_offsets, dtype=np.float64)
        if utt_offsets.shape != (len(lengths), mean.shape[1]):
            raise ValueError(f"utt_offsets must be ({len(lengths)}, {mean.shape[1]}), got {utt_offsets.shape}")
    bar = tqdm(total=int(lengths.sum()), unit="frame", unit_scale=True, desc="apply CMVN", disable=not progress)
    for u0, u1 in utterance_chunks(lengths, chunk_frames):
        lo = int(starts[u0])
        hi = int(starts[u1 - 1] + lengths[u1 - 1])
        lens = lengths[u0:u1]
        per_utt = mean[spk[u0:u1]]
        if utt_offsets is not None:
            per_utt = per_utt - utt_offsets[u0:u1]
        m = np.repeat(per_utt.astype(np.float32), lens, axis=0)
        s = np.repeat(scale[spk[u0:u1]].astype(np.float32), lens, axis=0)
        x = np.asarray(feats[lo:hi], dtype=np.float32)
        x -= m
        x *= s
        feats[lo:hi] = x
        bar.update(hi - lo)
    bar.close()


class StatsAccumulator:
    """Sums per-utterance Kaldi stats into per-speaker stats as utterances stream in (no per-utt array)."""

    def __init__(self, dim: int):
        self.dim = dim
        self._stats: dict[str, np.ndarray] = {}

    def add(self, speaker: str, utt_stats: np.ndarray) -> None:
        if utt_stats.shape != (2, self.dim + 1):
            raise ValueError(f"expected ({2}, {self.dim + 1}) stats, got {utt_stats.shape}")
        acc = self._stats.get(speaker)
        if acc is None:
            self._stats[speaker] = np.array(utt_stats, dtype=np.float64)
        else:
            acc += utt_stats

    def result(self) -> SpeakerCmvn:
        names = sorted(self._stats)
        stats = np.stack([self._stats[s] for s in names]) if names else np.zeros((0, 2, self.dim + 1))
        return SpeakerCmvn(names, stats)


def load_store_cmvn(store_dir: str | os.PathLike) -> SpeakerCmvn:
    return SpeakerCmvn.load(Path(store_dir) / "cmvn.npz")
