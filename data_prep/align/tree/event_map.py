"""The tree itself: a Kaldi ``EventMap`` as flat numpy arrays, vectorised lookup, Kaldi's binary ``tree`` file.

:class:`TiedStateTree` maps events ``(left, center, right, pdf class)`` to tied states (pdfs) for any
number of events at once; ``write``/``read`` use Kaldi's binary ``ContextDependency`` format (N=3, P=1)
that Kaldi and ``kaldi_hmm_gmm`` read, through :mod:`asr_base.kaldi_binary`.
:class:`EventMapBuilder` assembles nodes (used by the reader and by :mod:`data_prep.align.tree.build`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr_base import kaldi_binary as kb
from asr_base.io import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from data_prep.lang.lang_dir import LangDir

# Event keys (Kaldi): 0 left phone, 1 center phone, 2 right phone (N=3, P=1), -1 pdf class.
PDF_CLASS_KEY = -1
KEY_TO_COLUMN = {0: 0, 1: 1, 2: 2, PDF_CLASS_KEY: 3}
COLUMN_TO_KEY = {v: k for k, v in KEY_TO_COLUMN.items()}

CE, SE, TE = 0, 1, 2  # node types: ConstantEventMap, SplitEventMap, TableEventMap


@dataclass
class TiedStateTree:
    """A Kaldi EventMap as flat arrays. Node ``i`` is

    * CE: ``pdf[i]`` is the answer;
    * SE: asks ``keys[:, column[i]] in sets[set_id[i]]``; children ``yes[i]`` / ``no[i]``;
    * TE: child ``table[table_start[i] + value]`` for ``0 <= value < table_size[i]`` (``-1`` = NULL).

    Node 0 is the root. ``N=3, P=1`` (triphones).
    """

    node_type: np.ndarray  # int8 (nodes,)
    column: np.ndarray  # int8 (nodes,) column of the event array (0 left, 1 center, 2 right, 3 pdf class)
    pdf: np.ndarray  # int32 (nodes,) answer of CE nodes (-1 otherwise)
    set_id: np.ndarray  # int32 (nodes,)
    yes: np.ndarray  # int32 (nodes,)
    no: np.ndarray  # int32 (nodes,)
    table_start: np.ndarray  # int32 (nodes,)
    table_size: np.ndarray  # int32 (nodes,)
    table: np.ndarray  # int32 (T,) child node ids, -1 = NULL
    sets: list[tuple[int, ...]]
    context_width: int = 3
    central_position: int = 1
    pdf_counts: np.ndarray | None = None  # float64 (num_pdfs,) frames of training stats per pdf
    info: dict = field(default_factory=dict)

    @property
    def num_pdfs(self) -> int:
        return int(self.pdf.max(initial=-1)) + 1

    @property
    def num_leaves(self) -> int:
        return int((self.node_type == CE).sum())

    # ---- lookup -----------------------------------------------------------------------------------
    def _membership(self) -> np.ndarray:
        cached = self.__dict__.get("_member")
        if cached is None:
            width = 1 + max((max(s) for s in self.sets if s), default=0)
            cached = np.zeros((max(len(self.sets), 1), width), bool)
            for i, st in enumerate(self.sets):
                cached[i, list(st)] = True
            self.__dict__["_member"] = cached
        return cached

    def lookup(self, keys) -> np.ndarray:
        """pdf ids (int32) of events ``(left, center, right, pdf_class)`` (M, 4), vectorised.

        Every context of a real phone maps to a pdf; events Kaldi cannot map either (a center phone or
        pdf class without an HMM, e.g. a disambiguation symbol) give -1.
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 4)
        member = self._membership()
        m = keys.shape[0]
        node = np.zeros(m, np.int64)
        out = np.full(m, -1, np.int32)
        active = np.arange(m)
        while active.size:
            cur = node[active]
            t = self.node_type[cur]
            leaf = t == CE
            out[active[leaf]] = self.pdf[cur[leaf]]
            keep = ~leaf
            active, cur, t = active[keep], cur[keep], t[keep]
            if not active.size:
                break
            val = keys[active, self.column[cur]]
            nxt = np.full(active.size, -1, np.int64)
            is_se = t == SE
            if is_se.any():
                v = val[is_se]
                sid = self.set_id[cur[is_se]]
                inside = (v >= 0) & (v < member.shape[1])
                hit = np.zeros(v.size, bool)
                hit[inside] = member[sid[inside], v[inside]]
                nxt[is_se] = np.where(hit, self.yes[cur[is_se]], self.no[cur[is_se]])
            is_te = t == TE
            if is_te.any():
                v = val[is_te]
                c = cur[is_te]
                ok = (v >= 0) & (v < self.table_size[c])
                child = np.full(v.size, -1, np.int64)
                child[ok] = self.table[self.table_start[c[ok]] + v[ok]]
                nxt[is_te] = child
            node[active] = nxt
            active = active[nxt >= 0]
        return out

    # ---- Kaldi binary I/O -------------------------------------------------------------------------
    def to_kaldi_bytes(self) -> bytes:
        """The binary ``ContextDependency`` object (without the ``\\0B`` file header)."""
        buf = io.BytesIO()
        kb.write_token(buf, "ContextDependency")
        kb.write_int32(buf, self.context_width)
        kb.write_int32(buf, self.central_position)
        kb.write_token(buf, "ToPdf")

        def emit(i: int) -> None:
            if i < 0:
                kb.write_token(buf, "NULL")
                return
            t = self.node_type[i]
            key = COLUMN_TO_KEY[int(self.column[i])]
            if t == CE:
                kb.write_token(buf, "CE")
                kb.write_int32(buf, self.pdf[i])
            elif t == SE:
                kb.write_token(buf, "SE")
                kb.write_int32(buf, key)
                kb.write_int_vector(buf, self.sets[int(self.set_id[i])])
                kb.write_token(buf, "{")
                emit(int(self.yes[i]))
                emit(int(self.no[i]))
                kb.write_token(buf, "}")
            else:
                kb.write_token(buf, "TE")
                kb.write_int32(buf, key)
                size = int(self.table_size[i])
                kb.write_uint32(buf, size)
                kb.write_token(buf, "(")
                start = int(self.table_start[i])
                for child in self.table[start:start + size]:
                    emit(int(child))
                kb.write_token(buf, ")")

        emit(0)
        kb.write_token(buf, "EndContextDependency")
        return buf.getvalue()

    def write(self, path: str | os.PathLike) -> None:
        """Kaldi binary ``tree`` file (``\\0B`` header + ContextDependency), written atomically."""
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(kb.BINARY_HEADER + self.to_kaldi_bytes())

    def to_context_dependency(self):
        """The tree as a ``kaldi_hmm_gmm.ContextDependency`` (loaded from the Kaldi bytes)."""
        from asr_base.kaldi import kaldi_hmm_gmm

        ctx = kaldi_hmm_gmm.ContextDependency.__new__(kaldi_hmm_gmm.ContextDependency)
        data = np.frombuffer(self.to_kaldi_bytes(), dtype=np.int8).tolist()
        ctx.__setstate__((data,))
        return ctx

    @classmethod
    def read(cls, path: str | os.PathLike) -> "TiedStateTree":
        """A binary Kaldi ``tree`` file (ours or Kaldi's ``build-tree`` output)."""
        return cls.from_kaldi(kb.KaldiReader.open(path))

    @classmethod
    def from_kaldi_bytes(cls, data: bytes) -> "TiedStateTree":
        """Inverse of :meth:`to_kaldi_bytes`."""
        return cls.from_kaldi(kb.KaldiReader(data, "tree"))

    @classmethod
    def from_kaldi(cls, r: kb.KaldiReader) -> "TiedStateTree":
        """The ``ContextDependency`` object at the reader's position."""
        r.expect("ContextDependency")
        n, p = r.int32(), r.int32()
        r.expect("ToPdf")
        b = EventMapBuilder()
        sets_index: dict[tuple[int, ...], int] = {}

        def parse() -> int:
            t = r.token()
            if t == "NULL":
                return -1
            if t == "CE":
                return b.add(CE, 3, pdf=r.int32())
            if t == "SE":
                key = r.int32()
                members = tuple(int(x) for x in r.int_vector())
                sid = sets_index.setdefault(members, len(sets_index))
                node = b.add(SE, KEY_TO_COLUMN[key], set_id=sid)
                r.expect("{")
                b.yes[node] = parse()
                b.no[node] = parse()
                r.expect("}")
                return node
            if t == "TE":
                key = r.int32()
                size = r.uint32()
                node = b.add(TE, KEY_TO_COLUMN[key])
                r.expect("(")
                b.tables[node] = [parse() for _ in range(size)]
                r.expect(")")
                return node
            raise kb.KaldiFormatError(f"{r.name}: unexpected token {t!r} in tree at byte {r.pos}")

        root = parse()
        if root != 0:
            raise ValueError("tree has no root EventMap")
        r.expect("EndContextDependency")
        tree = b.finish(sorted(sets_index, key=sets_index.get))
        tree.context_width, tree.central_position = n, p
        return tree


class EventMapBuilder:
    """Accumulates nodes, then packs them into a :class:`TiedStateTree`."""

    def __init__(self) -> None:
        self.types: list[int] = []
        self.cols: list[int] = []
        self.pdfs: list[int] = []
        self.set_ids: list[int] = []
        self.yes: dict[int, int] = {}
        self.no: dict[int, int] = {}
        self.tables: dict[int, list[int]] = {}

    def add(self, t: int, col: int, pdf: int = -1, set_id: int = -1) -> int:
        self.types.append(t)
        self.cols.append(col)
        self.pdfs.append(pdf)
        self.set_ids.append(set_id)
        return len(self.types) - 1

    def finish(self, sets: list[tuple[int, ...]]) -> TiedStateTree:
        n = len(self.types)
        yes = np.full(n, -1, np.int32)
        no = np.full(n, -1, np.int32)
        for k, v in self.yes.items():
            yes[k] = v
        for k, v in self.no.items():
            no[k] = v
        start = np.zeros(n, np.int32)
        size = np.zeros(n, np.int32)
        flat: list[int] = []
        for k in sorted(self.tables):
            start[k], size[k] = len(flat), len(self.tables[k])
            flat.extend(self.tables[k])
        return TiedStateTree(np.asarray(self.types, np.int8), np.asarray(self.cols, np.int8),
                             np.asarray(self.pdfs, np.int32), np.asarray(self.set_ids, np.int32), yes, no, start,
                             size, np.asarray(flat, np.int32), list(sets))


def all_contexts(lang: "LangDir") -> np.ndarray:
    """Every (left, center, right, pdf class) event of the lang's phones (boundary 0 included)."""
    real = np.asarray(lang.real_phone_ids)
    ctx = np.concatenate([[0], real])
    rows = []
    for p in real:
        c = np.arange(lang.num_pdf_classes(int(p)))
        l, r, k = np.meshgrid(ctx, ctx, c, indexing="ij")
        rows.append(np.stack([l.ravel(), np.full(l.size, p), r.ravel(), k.ravel()], axis=1))
    return np.concatenate(rows).astype(np.int32)
