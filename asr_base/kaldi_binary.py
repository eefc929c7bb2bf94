"""Kaldi's binary object format: writer helpers and one reader (``final.mdl``, ``tree``, GMMs).

What Kaldi's ``Write(os, binary=true)`` methods produce, byte for byte:

* a file starts with the header ``\\0B`` (:data:`BINARY_HEADER`);
* a token (``<TransitionModel>``, ``CE``, ``{``) is its text followed by one space;
* a basic type is a size byte then the little-endian value: ``int32`` ``\\x04`` + 4 bytes, an unsigned
  32-bit value ``\\xfc`` (-4) + 4 bytes, a ``float`` ``\\x04`` + 4 bytes;
* an integer vector (``WriteIntegerVector``) is the element size byte ``\\x04``, the int32 count without
  its own size byte, then the raw int32 values;
* a float vector is the token ``FV`` then an int32 size then raw float32 data; a float matrix is ``FM``,
  int32 rows, int32 columns, then the rows.

Writers take any binary file object (``io.BytesIO``, an open file). :class:`KaldiReader` reads from bytes
or a binary file object (the rest of the file is read at once) and raises :class:`KaldiFormatError` (a
``ValueError``) naming the byte offset on a wrong token, a wrong size byte or truncated data.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

BINARY_HEADER = b"\0B"


class KaldiFormatError(ValueError):
    """The data is not what Kaldi's binary format says should come next."""


# ------------------------------------------------------------------------------------------------ writing


def write_token(f: BinaryIO, token: str) -> None:
    f.write(token.encode() + b" ")


def write_int32(f: BinaryIO, v: int) -> None:
    f.write(struct.pack("<bi", 4, int(v)))


def write_uint32(f: BinaryIO, v: int) -> None:
    f.write(struct.pack("<bI", -4, int(v)))


def write_float(f: BinaryIO, v: float) -> None:
    f.write(struct.pack("<bf", 4, float(v)))


def write_int_vector(f: BinaryIO, v) -> None:
    a = np.asarray(v, dtype="<i4").ravel()
    f.write(struct.pack("<bi", 4, a.size) + a.tobytes())


def write_float_vector(f: BinaryIO, v) -> None:
    a = np.asarray(v, dtype="<f4").ravel()
    write_token(f, "FV")
    write_int32(f, a.size)
    f.write(a.tobytes())


def write_float_matrix(f: BinaryIO, m) -> None:
    a = np.ascontiguousarray(m, dtype="<f4")
    if a.ndim != 2:
        raise ValueError(f"a Kaldi matrix must be 2-D, got shape {a.shape}")
    write_token(f, "FM")
    write_int32(f, a.shape[0])
    write_int32(f, a.shape[1])
    f.write(a.tobytes())


# ------------------------------------------------------------------------------------------------ reading


class KaldiReader:
    """Sequential reader of Kaldi binary data (bytes, or the rest of a binary file object)."""

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO, name: str = "Kaldi data"):
        self.data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
        self.pos = 0
        self.name = name

    @classmethod
    def open(cls, path: str | os.PathLike) -> "KaldiReader":
        """A reader positioned after the binary header of file ``path`` (text-mode files are refused)."""
        r = cls(Path(path).read_bytes(), str(path))
        if r.data[:2] != BINARY_HEADER:
            raise KaldiFormatError(f"{path}: not a Kaldi binary file (no \\0B header; text mode is not supported)")
        r.pos = 2
        return r

    def _fail(self, what: str) -> KaldiFormatError:
        return KaldiFormatError(f"{self.name}: {what} at byte {self.pos}")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def raw(self, n: int) -> bytes:
        if n < 0:
            raise self._fail(f"negative size {n}")
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise self._fail(f"truncated data: {n} bytes wanted, {len(out)} left")
        self.pos += n
        return out

    def token(self) -> str:
        end = self.data.find(b" ", self.pos)
        if end < 0:
            raise self._fail("truncated data: end of data inside a token")
        tok = self.data[self.pos:end].decode(errors="replace")
        self.pos = end + 1
        return tok

    def expect(self, token: str) -> None:
        start = self.pos
        got = self.token()
        if got != token:
            self.pos = start
            raise self._fail(f"expected token {token!r}, got {got[:40]!r}")

    def _sized(self, fmt: str, sizes: tuple[int, ...], what: str):
        size = self.data[self.pos:self.pos + 1]
        if size and struct.unpack("<b", size)[0] not in sizes:
            raise self._fail(f"expected {what}, size byte {struct.unpack('<b', size)[0]}")
        return struct.unpack("<b" + fmt, self.raw(5))[1]

    def int32(self) -> int:
        return self._sized("i", (4,), "an int32")

    def uint32(self) -> int:
        return self._sized("I", (4, -4), "a 32-bit unsigned integer")

    def float32(self) -> float:
        return self._sized("f", (4,), "a float")

    def int_vector(self) -> np.ndarray:
        n = self._sized("i", (4,), "an int32 vector")
        if n < 0:
            raise self._fail(f"negative vector size {n}")
        return np.frombuffer(self.raw(4 * n), dtype="<i4").astype(np.int32)

    def float_vector(self) -> np.ndarray:
        self.expect("FV")
        n = self.int32()
        return np.frombuffer(self.raw(4 * n), dtype="<f4").astype(np.float32)

    def float_matrix(self) -> np.ndarray:
        self.expect("FM")
        r, c = self.int32(), self.int32()
        return np.frombuffer(self.raw(4 * r * c), dtype="<f4").reshape(r, c).astype(np.float32)
