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

from asr_base.io import atomic_path, read_json, write_json, write_text

FEATS = "feats.npy"
INDEX = "index.tsv"
META = "meta.json"
DEFAULT_FRAME_SHIFT_MS = 10.0
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
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)  # utt_id -> row, lazily

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

    @property
    def frame_shift(self) -> float:
        """Seconds between frames, from ``meta.json`` (``fbank.frame_shift_ms`` as compute-fbank records it, or
        a top-level ``frame_shift_ms``); Kaldi's 10 ms when not recorded (stores imported from Kaldi
        features, hand-made stores)."""
        shift = self.meta.get("fbank", {}).get("frame_shift_ms", self.meta.get("frame_shift_ms", DEFAULT_FRAME_SHIFT_MS))
        return float(shift) / 1000.0

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
        """Frames of one utterance (a view into ``feats``); KeyError for an unknown utterance."""
        if self._index is None or len(self._index) != len(self.utt_ids):
            self._index = self.utt_index()
        i = self._index[utt_id]
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
        """Finish the store: truncate ``feats.npy``, write the index, ``meta.json`` and ``extra_files``
        (``name -> dict of arrays`` is saved with ``np.savez``, ``name -> str`` as a text file), then
        rename the temporary directory onto ``root`` (replacing an older store)."""
        if self._feats is None:
            raise RuntimeError(f"{self.root}: writer already closed or aborted")
        self._feats.flush()
        capacity = self._feats.shape[0]
        self._feats = None
        if self._pos != capacity:
            _truncate_npy(self.tmp_root / FEATS, self._pos, self.dim)
        write_index(self.tmp_root / INDEX, self.utt_ids, self.lengths, self.speakers)
        for name, content in (extra_files or {}).items():
            if isinstance(content, str):
                write_text(self.tmp_root / name, content)
            else:
                with atomic_path(self.tmp_root / name) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, **content)
        # meta.json last: its presence marks a complete store (resumable stages check it).
        meta = dict(meta, num_frames=self._pos, num_utts=len(self.utt_ids), dim=self.dim, dtype="float16")
        write_json(self.tmp_root / META, meta)
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

    def abort(self) -> None:
        """Drop everything written so far; an existing store at ``root`` is left untouched."""
        self._feats = None
        _rmtree(self.tmp_root)

    def __enter__(self) -> "FeatureStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._feats is not None:
            # An exception, or leaving the block without close(): never leave a half-written store.
            self.abort()


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
    """Shrink a (capacity, dim) float16 .npy file to its first ``rows`` rows in place, in O(1).

    The header is rewritten with the new shape (padded to its old length, so the data offset does not
    move) and the file is truncated: no copy of the data, which matters for 28 GB stores.
    """
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{path}: unsupported .npy format version {version}")
        data_offset = f.tell()
        if fortran or dtype != np.float16 or len(shape) != 2 or shape[1] != dim or rows > shape[0]:
            raise ValueError(f"{path}: cannot truncate array {dtype} {shape} to {rows} rows")
        prefix_len = 8 + (2 if version == (1, 0) else 4)  # magic + version + header length field
        header_len = data_offset - prefix_len
        text = repr({"descr": dtype.str, "fortran_order": False, "shape": (rows, dim)})
        text = text.ljust(header_len - 1) + "\n"
        if len(text) != header_len:
            raise ValueError(f"{path}: new .npy header does not fit the old one")
        f.seek(prefix_len)
        f.write(text.encode("latin1"))
        f.truncate(data_offset + rows * dim * dtype.itemsize)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
