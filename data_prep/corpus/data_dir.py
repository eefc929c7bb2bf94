"""Reading and writing Kaldi-style data dirs (wav.scp, text, utt2spk, spk2utt, utt2dur, ...).

Files are "key value..." lines sorted by key in C-locale (byte) order, as Kaldi's tools expect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from asr_base.io import write_text


def c_sorted(keys):
    """Sort like ``LC_ALL=C sort``: by UTF-8 bytes."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def read_table(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi table file into {key: rest-of-line}. Blank lines are ignored."""
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, _, value = line.partition(" ")
            if key in table:
                raise ValueError(f"{path}:{lineno}: duplicate key {key!r}")
            table[key] = value.strip()
    return table


def write_table(path: str | os.PathLike, table: dict[str, str]) -> None:
    write_text(path, "".join(f"{k} {table[k]}\n" if table[k] != "" else f"{k}\n" for k in c_sorted(table)))


@dataclass
class DataDir:
    """In-memory view of a Kaldi data dir; utterance-level only (no per-frame data)."""

    wav: dict[str, str] = field(default_factory=dict)  # utt -> audio path (or command)
    text: dict[str, str] = field(default_factory=dict)  # utt -> transcript
    utt2spk: dict[str, str] = field(default_factory=dict)
    utt2dur: dict[str, float] = field(default_factory=dict)
    utt2num_samples: dict[str, int] = field(default_factory=dict)

    @property
    def utt_ids(self) -> list[str]:
        return c_sorted(self.wav)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utt_ids:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DataDir":
        path = Path(path)
        d = cls(wav=read_table(path / "wav.scp"), utt2spk=read_table(path / "utt2spk"))
        if (path / "text").is_file():
            d.text = read_table(path / "text")
        if (path / "utt2dur").is_file():
            d.utt2dur = {k: float(v) for k, v in read_table(path / "utt2dur").items()}
        if (path / "utt2num_samples").is_file():
            d.utt2num_samples = {k: int(v) for k, v in read_table(path / "utt2num_samples").items()}
        return d

    def write(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_table(path / "wav.scp", self.wav)
        write_table(path / "utt2spk", self.utt2spk)
        write_table(path / "spk2utt", {s: " ".join(u) for s, u in self.spk2utt.items()})
        if self.text:
            write_table(path / "text", self.text)
        if self.utt2dur:
            write_table(path / "utt2dur", {k: f"{v:.3f}" for k, v in self.utt2dur.items()})
        if self.utt2num_samples:
            write_table(path / "utt2num_samples", {k: str(v) for k, v in self.utt2num_samples.items()})
