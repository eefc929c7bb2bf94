"""Kaldi matrix tables through kaldi-io: write binary arks + scps, read scps/arks/pipes.

Used by ``export-kaldi-feats`` (:mod:`data_prep.features.kaldi_feats_export`), ``import-kaldi-feats``
(:mod:`data_prep.features.kaldi_feats_import`) and the CMVN stats export (:mod:`data_prep.features.cmvn`):

- :func:`write_matrices_ark` writes ``key -> matrix`` as a binary Kaldi ark with ``kaldi_io.write_mat``
  and a ``.scp`` whose entries are ``key /abs/feats.ark:OFFSET`` (the byte offset of the matrix, as
  Kaldi's ``ark,scp:`` writer records it).
- :func:`read_scp` / :func:`read_matrix` / :func:`read_matrices` read uncompressed Kaldi matrices
  (binary float/double or text) from ``file:offset`` specs, ``[rows]``/``[rows,cols]`` ranges or
  ``cmd |`` pipes. kaldi-io cannot read *compressed* matrices on numpy 2.x, so those are detected from
  their header and rejected with :class:`CompressedMatrixError` telling the user what to run.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from asr_base.io import atomic_path, write_text

log = logging.getLogger(__name__)

_RANGE_RE = re.compile(r"^(.*)\[([0-9:,]*)\]$")
_OFFSET_RE = re.compile(r"^(.*):([0-9]+)$")


class CompressedMatrixError(ValueError):
    """A Kaldi compressed matrix (header CM/CM2/CM3), which kaldi-io cannot read on numpy 2.x."""


def compressed_message(where: str, header: str) -> str:
    return (
        f"{where}: compressed Kaldi matrix (header {header!r}); kaldi-io cannot read compressed matrices "
        f"with numpy 2.x. Convert the features without compression first, e.g.\n"
        f"  copy-feats --compress=false scp:feats.scp ark,scp:feats_nc.ark,feats_nc.scp\n"
        f"and import feats_nc.scp instead."
    )


# ----------------------------------------------------------------------------------------------------
# Writing


def write_matrices_ark(
    ark: str | os.PathLike,
    scp: str | os.PathLike | None,
    items: Iterable[tuple[str, np.ndarray]],
    dtype: np.dtype | type = np.float32,
) -> int:
    """Write ``(key, matrix)`` pairs to a binary ark (and an scp with byte offsets), atomically.

    Returns the number of matrices written. Keys must not contain whitespace.
    """
    from asr_base.kaldi_io import kaldi_io

    ark = Path(ark).absolute()
    lines: list[str] = []
    with atomic_path(ark) as tmp:
        with open(tmp, "wb") as f:
            for key, mat in items:
                if not key or any(c.isspace() for c in key):
                    raise ValueError(f"invalid Kaldi key {key!r}")
                f.write(f"{key} ".encode("utf-8"))
                lines.append(f"{key} {ark}:{f.tell()}\n")
                kaldi_io.write_mat(f, np.ascontiguousarray(mat, dtype=dtype))
    if scp is not None:
        write_text(scp, "".join(lines))
    return len(lines)


def ark_entry_size(key: str, rows: int, cols: int, itemsize: int = 4) -> int:
    """Bytes one binary matrix takes in an ark: ``key␠`` + ``\\0B`` + ``FM␠`` + 2 x (1 + 4) dims + data."""
    return len(key.encode("utf-8")) + 1 + 2 + 3 + 10 + rows * cols * itemsize


# ----------------------------------------------------------------------------------------------------
# Reading


@dataclass
class RxSpec:
    """A parsed Kaldi rxspecifier as found in an scp: file[:offset][range] or ``cmd |``."""

    path: str
    offset: int | None = None
    rows: slice | None = None
    cols: slice | None = None

    @property
    def is_pipe(self) -> bool:
        return self.path.rstrip().endswith("|")


def parse_rxspec(spec: str) -> RxSpec:
    spec = spec.strip()
    rows = cols = None
    m = _RANGE_RE.match(spec)
    if m and not spec.endswith("|"):
        spec, rng = m.group(1), m.group(2)
        parts = rng.split(",")
        if len(parts) > 2:
            raise ValueError(f"bad matrix range [{rng}]")
        sl = []
        for p in parts:
            a, sep, b = p.partition(":")
            if not sep:
                raise ValueError(f"bad matrix range [{rng}]")
            # Kaldi ranges are inclusive: [10:19] is rows 10..19
            sl.append(slice(int(a) if a else None, int(b) + 1 if b else None))
        rows = sl[0]
        cols = sl[1] if len(sl) > 1 else None
    offset = None
    m = _OFFSET_RE.match(spec)
    if m and not spec.endswith("|"):
        spec, offset = m.group(1), int(m.group(2))
    return RxSpec(spec, offset, rows, cols)


def read_scp(scp: str | os.PathLike) -> list[tuple[str, str]]:
    """``(key, rxspec)`` pairs of an scp file, in file order (per-utterance, not per-frame, objects)."""
    out = []
    with open(scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            key, _, rx = line.partition(" ")
            if not rx.strip():
                raise ValueError(f"{scp}:{lineno}: expected 'key rxspecifier', got {line!r}")
            out.append((key, rx.strip()))
    return out


def _open_stream(rx: RxSpec) -> BinaryIO:
    if rx.is_pipe:
        cmd = rx.path.rstrip()[:-1]
        proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"command {cmd!r} failed with exit code {proc.returncode}: {err[0]}")
        return io.BytesIO(proc.stdout)
    f = open(rx.path, "rb")
    if rx.offset is not None:
        f.seek(rx.offset)
    return f


def _check_header(fd: BinaryIO, where: str) -> None:
    """Peek at a matrix header; raise :class:`CompressedMatrixError` on compressed matrices."""
    pos = fd.tell()
    head = fd.read(5)
    fd.seek(pos)
    if head[:2] == b"\0B":
        kind = head[2:5].decode("latin1")
        if kind.startswith("CM"):
            raise CompressedMatrixError(compressed_message(where, kind))
        if kind not in ("FM ", "DM "):
            raise ValueError(f"{where}: not a Kaldi float matrix (header {kind!r})")
    elif head[:2] != b" [":
        raise ValueError(f"{where}: not a Kaldi matrix (starts with {head!r})")


def read_matrix(spec: str | RxSpec) -> np.ndarray:
    """Read one uncompressed Kaldi matrix (float32/float64/text) from an rxspecifier."""
    from asr_base.kaldi_io import kaldi_io

    rx = parse_rxspec(spec) if isinstance(spec, str) else spec
    fd = _open_stream(rx)
    try:
        _check_header(fd, str(spec))
        mat = kaldi_io.read_mat(fd)
    finally:
        fd.close()
    if rx.rows is not None:
        mat = mat[rx.rows]
    if rx.cols is not None:
        mat = mat[:, rx.cols]
    return np.asarray(mat)


def peek_matrix_shape(spec: str | RxSpec) -> tuple[int, int]:
    """``(rows, cols)`` of a matrix without reading its data (binary files); reads text/pipes fully."""
    rx = parse_rxspec(spec) if isinstance(spec, str) else spec
    if rx.is_pipe:
        mat = read_matrix(rx)
        return int(mat.shape[0]), int(mat.shape[1])
    with _open_stream(rx) as fd:
        _check_header(fd, str(spec))
        head = fd.read(15)
    if head[:2] != b"\0B":
        mat = read_matrix(rx)
        return int(mat.shape[0]), int(mat.shape[1])
    if len(head) < 15 or head[5] != 4 or head[10] != 4:
        raise ValueError(f"{spec}: truncated or malformed matrix header")
    rows = int(np.frombuffer(head[6:10], dtype="<i4")[0])
    cols = int(np.frombuffer(head[11:15], dtype="<i4")[0])
    if rx.rows is not None:
        rows = len(range(rows)[rx.rows])
    if rx.cols is not None:
        cols = len(range(cols)[rx.cols])
    return rows, cols


def read_matrices(scp_or_ark: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """All ``(key, matrix)`` of an ``.scp`` (entries resolved one by one) or a binary/text ``.ark``."""
    path = str(scp_or_ark)
    if path.endswith(".scp"):
        for key, rx in read_scp(path):
            yield key, read_matrix(rx)
        return
    from asr_base.kaldi_io import kaldi_io

    with open(path, "rb") as fd:
        while True:
            key = kaldi_io.read_key(fd)
            if not key:
                return
            _check_header(fd, f"{path} (key {key})")
            yield key, np.asarray(kaldi_io.read_mat(fd))
