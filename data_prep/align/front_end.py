"""The GMM systems' front end: what is computed on the fly from a feature store before the GMMs score it.

Kaldi's GMM ladder uses three front ends on the same CMVN'd store, and so does the aligner:

* the store's features as they are (``apply-cmvn``);
* with deltas (``add-deltas``; Kaldi's ``train_mono.sh`` / ``train_deltas.sh``, our mono and tri);
* spliced frames times a matrix (``splice-feats --left-context=3 --right-context=3 | transform-feats
  final.mat``; ``train_lda_mllt.sh``, our tri2), the matrix being the LDA followed by the MLLT;
* the same followed by each speaker's fMLLR transform (``transform-feats --utt2spk ark:trans.*``;
  ``train_sat.sh``, our tri3).

:class:`FrontEnd` is one of them; it is small and picklable, so the workers of a pass get it with the
models. Windows (deltas, splicing) are gathered by index arithmetic clamped to each utterance's own first
and last frame, as Kaldi does: one gather for a whole chunk of utterances, no loop over frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from asr_base import kaldi_binary as kb
from asr_base.io import atomic_path


def clamped_window(lengths, half: int) -> np.ndarray:
    """``(N, 2 * half + 1)`` frame indices ``t - half .. t + half`` of utterances concatenated with ``lengths``
    frames each, clamped to each utterance's first and last frame."""
    lengths = np.asarray(lengths, dtype=np.int64)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    last = first + np.repeat(lengths, lengths) - 1
    return np.clip(np.arange(first.size)[:, None] + np.arange(-half, half + 1)[None, :], first[:, None], last[:, None])


def delta_kernels(order: int, window: int = 2) -> np.ndarray:
    """Kaldi's ``DeltaFeatures`` scales, ``(order + 1, 2 * order * window + 1)``: row 0 the identity, row i the
    convolution of row i-1 with ``j / sum(j^2)`` for ``j`` in ``[-window, window]`` (``add-deltas``)."""
    base = np.arange(-window, window + 1, dtype=np.float64)
    base /= float((base ** 2).sum())
    width = 2 * order * window + 1
    out = np.zeros((order + 1, width))
    cur = np.ones(1)
    for i in range(order + 1):
        pad = (width - cur.size) // 2
        out[i, pad:pad + cur.size] = cur
        cur = np.convolve(cur, base)
    return out


def add_deltas(x: np.ndarray, lengths, order: int, window: int = 2) -> np.ndarray:
    """Kaldi's ``add-deltas`` on utterances concatenated in ``x`` (``lengths`` frames each): ``(N, (order + 1) * D)``
    float32; one gather and one einsum."""
    if order <= 0:
        return np.asarray(x, dtype=np.float32)
    k = delta_kernels(order, window).astype(np.float32)
    x = np.asarray(x, dtype=np.float32)
    return np.einsum("nkd,ok->nod", x[clamped_window(lengths, k.shape[1] // 2)], k).reshape(x.shape[0], -1)


def splice_frames(x: np.ndarray, lengths, context: int) -> np.ndarray:
    """Kaldi's ``splice-feats --left-context=C --right-context=C``: ``(N, (2C + 1) * D)``, frame ``t - C`` first."""
    x = np.asarray(x, dtype=np.float32)
    if context <= 0:
        return x
    return x[clamped_window(lengths, context)].reshape(x.shape[0], -1)


def speaker_frames(speakers, lengths) -> list[tuple[str, np.ndarray]]:
    """``(speaker, frame indices)`` of utterances concatenated with ``lengths`` frames each, speakers in order of
    first appearance (integer codes repeated per frame: no per-frame Python objects)."""
    names = list(dict.fromkeys(speakers))
    code = {s: i for i, s in enumerate(names)}
    per_frame = np.repeat(np.asarray([code[s] for s in speakers], dtype=np.int64), np.asarray(lengths, dtype=np.int64))
    return [(s, np.flatnonzero(per_frame == i)) for i, s in enumerate(names)]


@dataclass(eq=False)
class FrontEnd:
    """Deltas of order ``deltas``, or ``splice`` frames each side times ``matrix`` (``(out, in)``, float64 holding
    float32 values, as Kaldi stores it), or the store's features as they are."""

    deltas: int = 0
    splice: int = 0
    matrix: np.ndarray | None = field(default=None, repr=False)
    speakers: dict[str, np.ndarray] | None = field(default=None, repr=False)  # speaker -> (D, D + 1) fMLLR [A b]

    def __post_init__(self) -> None:
        if self.deltas and (self.splice or self.matrix is not None):
            raise ValueError("a front end has deltas or splicing + a matrix, not both (Kaldi's tri1 vs tri2)")
        if self.matrix is not None:
            self.matrix = np.asarray(self.matrix, dtype=np.float32).astype(np.float64)

    def input_dim(self, store_dim: int) -> int:
        return store_dim * (2 * self.splice + 1)

    def output_dim(self, store_dim: int) -> int:
        if self.matrix is not None:
            return int(self.matrix.shape[0])
        return store_dim * (self.deltas + 1) * (2 * self.splice + 1)

    def apply(self, x: np.ndarray, lengths, speakers=None) -> np.ndarray:
        """The front end's features of utterances concatenated in ``x``, float32; ``speakers`` (one per utterance)
        is needed when the front end has speaker transforms (a speaker without one keeps its features)."""
        if self.deltas:
            return add_deltas(x, lengths, self.deltas)
        y = splice_frames(x, lengths, self.splice)
        if self.matrix is not None:
            if self.matrix.shape[1] != y.shape[1]:
                raise ValueError(f"transform matrix takes {self.matrix.shape[1]} dims, the spliced features have "
                                 f"{y.shape[1]}")
            y = y @ self.matrix.T.astype(np.float32)
        if self.speakers:
            if speakers is None or len(speakers) != len(lengths):
                raise ValueError("a front end with speaker transforms needs the speaker of every utterance")
            from data_prep.align.fmllr import apply_transform

            y = np.array(y, dtype=np.float32)  # a copy: never write into the caller's frames
            for spk, rows in speaker_frames(speakers, lengths):  # a chunk holds few speakers: one product each
                w = self.speakers.get(spk)
                if w is not None:
                    y[rows] = apply_transform(y[rows], w)
        return y

    def with_matrix(self, matrix: np.ndarray) -> "FrontEnd":
        return FrontEnd(self.deltas, self.splice, matrix, self.speakers)

    def with_speakers(self, transforms: dict[str, np.ndarray] | None) -> "FrontEnd":
        """The same front end with these per-speaker transforms (None: without any)."""
        return FrontEnd(self.deltas, self.splice, self.matrix, transforms)

    def for_speakers(self, speakers) -> "FrontEnd":
        """Only the transforms of ``speakers`` (what one chunk of work needs)."""
        if not self.speakers:
            return self
        return self.with_speakers({s: self.speakers[s] for s in dict.fromkeys(speakers) if s in self.speakers})

    def stamp(self) -> dict:
        """The options a sub-stage's stamp records (none for the store's own features, so older stamps stay valid);
        the matrix is an output of the stage that estimates it, not an option."""
        out = {"deltas": self.deltas} if self.deltas else {}
        if self.splice:
            out["splice"] = self.splice
        return out


def write_kaldi_matrix(path: str | os.PathLike, m: np.ndarray) -> None:
    """A Kaldi binary float matrix file (``lda.mat``, ``final.mat``: ``transform-feats`` reads it), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(kb.BINARY_HEADER)
        kb.write_float_matrix(f, m)


def read_kaldi_matrix(path: str | os.PathLike) -> np.ndarray:
    """A matrix written by :func:`write_kaldi_matrix` (or by Kaldi's ``est-lda`` / ``est-mllt``, binary mode)."""
    return kb.KaldiReader.open(path).float_matrix().astype(np.float64)
