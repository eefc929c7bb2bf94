"""The feature store: one contiguous float16 array per split plus an utterance index.

Layout of a store directory (see docs/formats.md)::

    feats.npy   float16 (num_frames, dim), memory-mappable
    index.tsv   utt_id  start  num_frames  speaker   (utterances contiguous, in order)
    meta.json   feature configuration, CMVN mode, counts
    cmvn.npz    per-speaker CMVN statistics (written by the fbank stage)

Nothing here holds per-frame Python objects: LibriSpeech 960 h is ~345M frames (~28 GB in float16).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from asr_kd.io_utils import atomic_path, read_json, write_json, write_text

FEATS = "feats.npy"
INDEX = "index.tsv"
META = "meta.json"
INDEX_HEADER = "utt_id\tstart\tnum_frames\tspeaker"


@dataclass
class FeatureStore:
    root: Path
    feats: np.ndarray  # (num_frames, dim) float16, usually a read-only memmap
    utt_ids: list[str]
    starts: np.ndarray  # int64 (num_utts,)
    lengths: np.ndarray  # int64 (num_utts,)
    speakers: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | os.PathLike, mmap: bool = True) -> "FeatureStore":
        root = Path(root)
        if not (root / FEATS).is_file() or not (root / INDEX).is_file():
            raise FileNotFoundError(f"{root} is not a feature store (needs {FEATS} and {INDEX})")
        feats = np.load(root / FEATS, mmap_mode="r" if mmap else None)
        utt_ids, starts, lengths, speakers = read_index(root / INDEX)
        meta = read_json(root / META) if (root / META).is_file() else {}
        store = cls(root, feats, utt_ids, starts, lengths, speakers, meta)
        store.check()
        return store

    @property
    def num_frames(self) -> int:
        return int(self.feats.shape[0])

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    def check(self) -> None:
        if self.feats.ndim != 2 or self.feats.dtype != np.float16:
            raise ValueError(f"{self.root}: feats must be a 2-D float16 array, got {self.feats.dtype} {self.feats.shape}")
        expected = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]) if len(self.lengths) else self.starts
        if not np.array_equal(self.starts, expected):
            raise ValueError(f"{self.root}: utterances in {INDEX} are not contiguous and in order")
        total = int(self.lengths.sum())
        if total != self.num_frames:
            raise ValueError(f"{self.root}: index covers {total} frames but {FEATS} has {self.num_frames}")

    def utt_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.utt_ids)}

    def utt(self, utt_id: str) -> np.ndarray:
        i = self.utt_ids.index(utt_id)
        s = int(self.starts[i])
        return self.feats[s : s + int(self.lengths[i])]

    def frame_to_utt(self) -> np.ndarray:
        """int32 (num_frames,) utterance number of every frame (use sparingly on huge stores)."""
        return np.repeat(np.arange(len(self.lengths), dtype=np.int32), self.lengths)


def read_index(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    utt_ids: list[str] = []
    speakers: list[str] = []
    starts: list[int] = []
    lengths: list[int] = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != INDEX_HEADER:
            raise ValueError(f"{path}: unexpected header {header!r}")
        for line in f:
            u, s, n, spk = line.rstrip("\n").split("\t")
            utt_ids.append(u)
            starts.append(int(s))
            lengths.append(int(n))
            speakers.append(spk)
    return utt_ids, np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64), speakers


def write_index(path: str | os.PathLike, utt_ids: Iterable[str], lengths: Iterable[int], speakers: Iterable[str]) -> None:
    rows = [INDEX_HEADER]
    start = 0
    for u, n, spk in zip(utt_ids, lengths, speakers):
        rows.append(f"{u}\t{start}\t{int(n)}\t{spk}")
        start += int(n)
    write_text(path, "\n".join(rows) + "\n")


class FeatureStoreWriter:
    """Writes a store utterance by utterance into a preallocated float16 memmap.

    ``max_frames`` is an upper bound (e.g. from utt2num_samples); the file is truncated to the frames
    actually written on :meth:`close`. The store appears atomically: everything is written under a
    temporary directory name and renamed at the end.
    """

    def __init__(self, root: str | os.PathLike, dim: int, max_frames: int):
        self.root = Path(root)
        self.tmp_root = self.root.with_name(f".{self.root.name}.tmp")
        if self.tmp_root.exists():
            _rmtree(self.tmp_root)
        self.tmp_root.mkdir(parents=True)
        self.dim = dim
        self._feats = np.lib.format.open_memmap(
            self.tmp_root / FEATS, mode="w+", dtype=np.float16, shape=(max(max_frames, 1), dim)
        )
        self._pos = 0
        self.utt_ids: list[str] = []
        self.lengths: list[int] = []
        self.speakers: list[str] = []

    def add(self, utt_id: str, speaker: str, feats: np.ndarray) -> None:
        n = feats.shape[0]
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"{utt_id}: expected (frames, {self.dim}) features, got {feats.shape}")
        if self._pos + n > self._feats.shape[0]:
            raise ValueError(f"{utt_id}: store capacity {self._feats.shape[0]} frames exceeded")
        self._feats[self._pos : self._pos + n] = feats
        self._pos += n
        self.utt_ids.append(utt_id)
        self.lengths.append(n)
        self.speakers.append(speaker)

    @property
    def feats(self) -> np.ndarray:
        """The frames written so far (a writable view; used e.g. to apply CMVN in place)."""
        return self._feats[: self._pos]

    def close(self, meta: dict[str, Any], extra_files: dict[str, Any] | None = None) -> FeatureStore:
        self._feats.flush()
        capacity = self._feats.shape[0]
        del self._feats
        if self._pos != capacity:
            _truncate_npy(self.tmp_root / FEATS, self._pos, self.dim)
        write_index(self.tmp_root / INDEX, self.utt_ids, self.lengths, self.speakers)
        meta = dict(meta, num_frames=self._pos, num_utts=len(self.utt_ids), dim=self.dim, dtype="float16")
        write_json(self.tmp_root / META, meta)
        for name, arrays in (extra_files or {}).items():
            np.savez(self.tmp_root / name, **arrays)
        if self.root.exists():
            old = self.root.with_name(f".{self.root.name}.old")
            if old.exists():
                _rmtree(old)
            os.replace(self.root, old)
            os.replace(self.tmp_root, self.root)
            _rmtree(old)
        else:
            os.replace(self.tmp_root, self.root)
        return FeatureStore.open(self.root)


def write_store(root: str | os.PathLike, feats: np.ndarray, utt_ids: list[str], lengths: list[int],
                speakers: list[str], meta: dict[str, Any] | None = None) -> FeatureStore:
    """Write a whole store at once (tests, imports of small Kaldi feature sets)."""
    w = FeatureStoreWriter(root, feats.shape[1], feats.shape[0])
    start = 0
    for u, n, s in zip(utt_ids, lengths, speakers):
        w.add(u, s, np.asarray(feats[start : start + n], dtype=np.float16))
        start += n
    return w.close(meta or {})


def _truncate_npy(path: Path, rows: int, dim: int) -> None:
    """Shrink a (capacity, dim) .npy file to its first ``rows`` rows without reading it into memory."""
    src = np.load(path, mmap_mode="r")
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(max(rows, 0), dim))
        step = 1 << 22
        for s in range(0, rows, step):
            out[s : s + step] = src[s : min(rows, s + step)]
        out.flush()
        del out
    del src


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
