"""Phonetic decision tree: clusters triphone HMM states into tied states (pdfs), in Kaldi's format.

Statistics (:class:`TreeStats`) are single diagonal-Gaussian sufficient statistics (count, sum, sum of
squares) of every seen event ``(left phone, center phone, right phone, pdf class)``; phone ids come from
the lang dir's ``phones.txt`` and phone 0 stands for "no phone" (utterance boundary).

:func:`build_tree` follows Kaldi's ``build-tree``:

1. One root per center phone (a ``TableEventMap`` on the center phone, key 1). By default each root is
   first split by pdf class (HMM state position; key -1), so every phone state has at least its own pdf
   (Kaldi's "not-shared" roots; ``split_pdf_classes_first=False`` gives "shared" roots where the tree
   asks about the pdf class like any other question).
2. Greedy splitting: the leaf with the best likelihood gain is split next, until ``num_leaves`` or no
   split gains more than ``min_gain``. Candidate questions ask whether the left (key 0) or right (key 2)
   phone is in a phone class, or whether the pdf class is in a set; the gain of every question of a leaf
   is computed at once with numpy (stats of a leaf are first summed per context phone, then every
   question is one row of a membership-matrix product). Both children must keep ``min_count`` frames.
   Context-independent phones (silence, spoken noise: ``phones/context_indep``) are never split by
   context, like Kaldi's ``--ci-phones``.
3. Leaf merging: within a root (and pdf class), leaves are clustered bottom-up while merging two costs
   less than ``cluster_thresh`` log-likelihood (Kaldi's default: the smallest split gain accepted in
   step 2). Merged leaves share a pdf.

Questions (:class:`Questions`, plain data, JSON-serialisable). The default combines

* phone classes found by clustering the phones' monophone statistics top-down (binary splits that
  maximise the Gaussian log-likelihood, like Kaldi's ``cluster-phones``): data-driven, and it works for
  any phone set, e.g. with ``--keep-stress`` (AH0/AH1/AH2) or a non-ARPAbet lexicon;
* ARPAbet linguistic classes (manner, place, voicing, vowel height/backness, ...) for the phones whose
  names (stress stripped) are ARPAbet: well-tested priors that help when the data is small and the
  clustering is noisy, and that cost nothing when they are redundant;
* the boundary/silence classes ``{0}`` and ``{0, SIL, SPN}``.

:class:`TiedStateTree` stores the resulting ``EventMap`` as flat numpy arrays; ``lookup`` maps any
number of events at once, ``write``/``read`` use Kaldi's binary ``tree`` format (``ContextDependency``
N=3 P=1) that Kaldi and ``kaldi_hmm_gmm`` read.
"""

from __future__ import annotations

import heapq
import io
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr_base import kaldi_binary as kb
from asr_base.io import atomic_path, write_text
from data_prep.lang.lexicon import ARPABET_PHONES, strip_stress

if TYPE_CHECKING:  # pragma: no cover
    from data_prep.lang.lang_dir import LangDir

log = logging.getLogger(__name__)

# Event keys (Kaldi): 0 left phone, 1 center phone, 2 right phone (N=3, P=1), -1 pdf class.
PDF_CLASS_KEY = -1
KEY_TO_COLUMN = {0: 0, 1: 1, 2: 2, PDF_CLASS_KEY: 3}
COLUMN_TO_KEY = {v: k for k, v in KEY_TO_COLUMN.items()}
LOG_2PI = float(np.log(2 * np.pi))


# --------------------------------------------------------------------------------------------------
# Statistics


@dataclass
class TreeStats:
    """Single-Gaussian statistics per seen event ``(left, center, right, pdf_class)``."""

    keys: np.ndarray  # int32 (K, 4)
    counts: np.ndarray  # float64 (K,)
    sums: np.ndarray  # float64 (K, D)
    sumsqs: np.ndarray  # float64 (K, D)

    def __post_init__(self) -> None:
        self.keys = np.asarray(self.keys, dtype=np.int32).reshape(-1, 4)
        self.counts = np.asarray(self.counts, dtype=np.float64)
        self.sums = np.asarray(self.sums, dtype=np.float64)
        self.sumsqs = np.asarray(self.sumsqs, dtype=np.float64)
        k = self.keys.shape[0]
        if self.counts.shape != (k,) or self.sums.ndim != 2 or self.sums.shape[0] != k or self.sumsqs.shape != self.sums.shape:
            raise ValueError(f"inconsistent TreeStats shapes: keys {self.keys.shape}, counts {self.counts.shape}, "
                             f"sums {self.sums.shape}, sumsqs {self.sumsqs.shape}")

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def empty(cls, dim: int) -> "TreeStats":
        return cls(np.zeros((0, 4), np.int32), np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim)))

    @classmethod
    def from_frames(cls, left, center, right, pdf_class, feats, weights=None, chunk: int = 1 << 18) -> "TreeStats":
        """Accumulate from per-frame arrays (all length N; ``feats`` (N, D), any float dtype); vectorised.

        ``weights`` (N,) optionally weights frames (e.g. posteriors); default 1. Frames are reduced in
        chunks of ``chunk`` so the float64 temporaries stay small.
        """
        cols = [np.asarray(a, dtype=np.int64).ravel() for a in (left, center, right, pdf_class)]
        feats = np.asarray(feats)
        n = feats.shape[0]
        if any(c.shape[0] != n for c in cols):
            raise ValueError("left/center/right/pdf_class must have one entry per frame of feats")
        keys = np.stack(cols, axis=1)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        return cls._reduce(keys, w, feats, None, chunk)

    @staticmethod
    def _reduce(keys: np.ndarray, counts: np.ndarray, sums_or_feats: np.ndarray,
                sumsqs: np.ndarray | None, chunk: int = 1 << 18) -> "TreeStats":
        """Sum rows with equal keys. ``sumsqs`` None: the third argument holds raw frames."""
        d = sums_or_feats.shape[1] if sums_or_feats.ndim == 2 else 0
        if keys.shape[0] == 0:
            return TreeStats.empty(d)
        if keys.min() < 0:
            raise ValueError("negative phone id or pdf class in tree statistics")
        base = keys.max(axis=0).astype(np.int64) + 1
        code = ((keys[:, 0] * base[1] + keys[:, 1]) * base[2] + keys[:, 2]) * base[3] + keys[:, 3]
        uniq, inv = np.unique(code, return_inverse=True)
        inv = inv.ravel()
        k = uniq.shape[0]
        out_keys = np.empty((k, 4), np.int64)
        rest = uniq
        for c in (3, 2, 1):
            out_keys[:, c] = rest % base[c]
            rest = rest // base[c]
        out_keys[:, 0] = rest
        cnt = np.bincount(inv, weights=counts, minlength=k)
        unweighted = sumsqs is None and bool(np.all(counts == 1.0))
        s = np.zeros((d, k))
        ss = np.zeros((d, k))
        # per chunk of rows, one bincount per feature dimension over contiguous (transposed) columns:
        # loops over chunks and dimensions, never over frames; float64 temporaries stay chunk-sized
        for start in range(0, keys.shape[0], chunk):
            sl = slice(start, start + chunk)
            idx = inv[sl]
            xt = np.asarray(sums_or_feats[sl]).T.astype(np.float64, order="C")
            if sumsqs is None:
                w = counts[sl]
                for j in range(d):
                    col = xt[j]
                    wcol = col if unweighted else col * w
                    s[j] += np.bincount(idx, weights=wcol, minlength=k)
                    ss[j] += np.bincount(idx, weights=wcol * col, minlength=k)
            else:
                sqt = np.asarray(sumsqs[sl]).T.astype(np.float64, order="C")
                for j in range(d):
                    s[j] += np.bincount(idx, weights=xt[j], minlength=k)
                    ss[j] += np.bincount(idx, weights=sqt[j], minlength=k)
        return TreeStats(out_keys.astype(np.int32), cnt, np.ascontiguousarray(s.T), np.ascontiguousarray(ss.T))

    def merge(self, *others: "TreeStats") -> "TreeStats":
        """Sum of this and other statistics (chunked accumulation)."""
        parts = [self, *others]
        parts = [p for p in parts if len(p)]
        if not parts:
            return TreeStats.empty(self.dim)
        if len({p.dim for p in parts}) != 1:
            raise ValueError("cannot merge TreeStats of different feature dimensions")
        return TreeStats._reduce(np.concatenate([p.keys for p in parts]).astype(np.int64),
                                 np.concatenate([p.counts for p in parts]),
                                 np.concatenate([p.sums for p in parts]),
                                 np.concatenate([p.sumsqs for p in parts]))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=self.keys, counts=self.counts, sums=self.sums, sumsqs=self.sumsqs)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TreeStats":
        with np.load(path) as z:
            return cls(z["keys"], z["counts"], z["sums"], z["sumsqs"])


def gaussian_loglik(n: np.ndarray, s: np.ndarray, ss: np.ndarray, var_floor: float) -> np.ndarray:
    """Log-likelihood of the data under its own ML diagonal Gaussian, for stats (..., ), (..., D)."""
    n = np.asarray(n, dtype=np.float64)
    d = s.shape[-1]
    safe = np.maximum(n, 1e-10)[..., None]
    mean = s / safe
    var = np.maximum(ss / safe - mean * mean, var_floor)
    ll = -0.5 * n * (d * (1.0 + LOG_2PI) + np.log(var).sum(-1))
    return np.where(n > 0, ll, 0.0)


# --------------------------------------------------------------------------------------------------
# Questions

# ARPAbet linguistic classes (stress-free names).
ARPABET_CLASSES: dict[str, tuple[str, ...]] = {
    "vowel": tuple("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()),
    "consonant": tuple("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split()),
    "front_vowel": tuple("AE EH EY IH IY".split()),
    "central_vowel": tuple("AH ER".split()),
    "back_vowel": tuple("AA AO OW UH UW".split()),
    "high_vowel": tuple("IH IY UH UW".split()),
    "mid_vowel": tuple("AH EH ER EY OW".split()),
    "low_vowel": tuple("AA AE AO".split()),
    "diphthong": tuple("AW AY EY OW OY".split()),
    "rounded": tuple("AO OW OY UH UW W".split()),
    "rhotic": tuple("ER R".split()),
    "stop": tuple("B D G K P T".split()),
    "voiced_stop": tuple("B D G".split()),
    "unvoiced_stop": tuple("K P T".split()),
    "affricate": tuple("CH JH".split()),
    "fricative": tuple("DH F HH S SH TH V Z ZH".split()),
    "sibilant": tuple("CH JH S SH Z ZH".split()),
    "voiced_fricative": tuple("DH V Z ZH".split()),
    "unvoiced_fricative": tuple("F HH S SH TH".split()),
    "nasal": tuple("M N NG".split()),
    "liquid": tuple("L R".split()),
    "glide": tuple("W Y".split()),
    "approximant": tuple("L R W Y".split()),
    "sonorant": tuple("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW L R W Y M N NG".split()),
    "voiced": tuple("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW B D G JH DH V Z ZH L R W Y M N NG".split()),
    "unvoiced": tuple("P T K CH F TH S SH HH".split()),
    "labial": tuple("B P M F V W".split()),
    "bilabial": tuple("B P M".split()),
    "labiodental": tuple("F V".split()),
    "dental": tuple("DH TH".split()),
    "alveolar": tuple("D T N S Z L".split()),
    "postalveolar": tuple("CH JH SH ZH R".split()),
    "coronal": tuple("D T N S Z L DH TH CH JH SH ZH R".split()),
    "velar": tuple("G K NG".split()),
    "palatal_glide": tuple("Y IY IH".split()),
}


@dataclass
class Questions:
    """Question sets: ``phone_sets`` for the left/right phone (phone ids; 0 = boundary),
    ``pdf_class_sets`` for the pdf class (only used with shared roots)."""

    phone_sets: list[tuple[int, ...]]
    pdf_class_sets: list[tuple[int, ...]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # optional description per phone set

    def __post_init__(self) -> None:
        seen: dict[tuple[int, ...], int] = {}
        sets, names = [], []
        for i, s in enumerate(self.phone_sets):
            t = tuple(sorted({int(x) for x in s}))
            if not t or t in seen:
                continue
            seen[t] = len(sets)
            sets.append(t)
            names.append(self.names[i] if i < len(self.names) else "")
        self.phone_sets, self.names = sets, names
        self.pdf_class_sets = [tuple(sorted({int(x) for x in s})) for s in self.pdf_class_sets if len(s)]

    def to_json(self) -> str:
        return json.dumps({"phone_sets": [list(s) for s in self.phone_sets],
                           "pdf_class_sets": [list(s) for s in self.pdf_class_sets], "names": self.names}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Questions":
        d = json.loads(text)
        return cls([tuple(s) for s in d["phone_sets"]], [tuple(s) for s in d.get("pdf_class_sets", [])],
                   list(d.get("names", [])))

    def write(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_json() + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Questions":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def extend(self, other: "Questions") -> "Questions":
        return Questions(self.phone_sets + other.phone_sets, self.pdf_class_sets + other.pdf_class_sets,
                         self.names + other.names)


def pdf_class_questions(max_pdf_classes: int) -> list[tuple[int, ...]]:
    """``{k}`` and ``{0..k}`` for every pdf class k (questions about the HMM state position)."""
    sets = [(k,) for k in range(max_pdf_classes)] + [tuple(range(k + 1)) for k in range(1, max_pdf_classes - 1)]
    return sets


def arpabet_questions(lang: "LangDir") -> Questions:
    """ARPAbet linguistic classes mapped onto the lang's phone ids (stress variants included)."""
    by_base: dict[str, list[int]] = {}
    for p in lang.nonsilence_phones:
        by_base.setdefault(strip_stress(p), []).append(lang.phones[p])
    sets, names = [], []
    for name, members in ARPABET_CLASSES.items():
        ids = [i for m in members for i in by_base.get(m, [])]
        if len(ids) >= 1:
            sets.append(tuple(ids))
            names.append(name)
    if len(by_base) > 1:
        for base, ids in by_base.items():  # every base phone (with its stress variants) on its own
            if base in ARPABET_PHONES:
                sets.append(tuple(ids))
                names.append(base)
    return Questions(sets, names=names)


def _best_binary_split(n: np.ndarray, s: np.ndarray, ss: np.ndarray, var_floor: float) -> np.ndarray:
    """Two-way split of items (phones) maximising the summed Gaussian log-likelihood.

    Items are sorted along the first principal direction of their (count-weighted, variance-normalised)
    means, the best cut of that order is chosen (all cuts scored at once with cumulative sums), then
    single-item moves that improve the objective are applied. Returns a bool mask (True = first group).
    """
    m = n.shape[0]
    mean = s / np.maximum(n, 1e-10)[:, None]
    tot_n, tot_s, tot_ss = n.sum(), s.sum(0), ss.sum(0)
    gvar = np.maximum(tot_ss / tot_n - (tot_s / tot_n) ** 2, var_floor)
    z = (mean - tot_s / tot_n) / np.sqrt(gvar)
    w = np.sqrt(n / n.sum())[:, None]
    _, _, vt = np.linalg.svd(z * w, full_matrices=False)
    order = np.argsort(z @ vt[0], kind="stable")
    cn, cs, css = np.cumsum(n[order]), np.cumsum(s[order], 0), np.cumsum(ss[order], 0)
    ll = (gaussian_loglik(cn[:-1], cs[:-1], css[:-1], var_floor)
          + gaussian_loglik(tot_n - cn[:-1], tot_s - cs[:-1], tot_ss - css[:-1], var_floor))
    cut = int(np.argmax(ll)) + 1
    mask = np.zeros(m, bool)
    mask[order[:cut]] = True
    for _ in range(4 * m):
        a_n, a_s, a_ss = n[mask].sum(), s[mask].sum(0), ss[mask].sum(0)
        b_n, b_s, b_ss = tot_n - a_n, tot_s - a_s, tot_ss - a_ss
        cur = gaussian_loglik(a_n, a_s, a_ss, var_floor) + gaussian_loglik(b_n, b_s, b_ss, var_floor)
        sign = np.where(mask, -1.0, 1.0)  # moving item i changes group A by sign * stats_i
        new = (gaussian_loglik(a_n + sign * n, a_s + sign[:, None] * s, a_ss + sign[:, None] * ss, var_floor)
               + gaussian_loglik(b_n - sign * n, b_s - sign[:, None] * s, b_ss - sign[:, None] * ss, var_floor))
        size_ok = np.where(mask, mask.sum() > 1, (~mask).sum() > 1)
        gain = np.where(size_ok, new - cur, -np.inf)
        i = int(np.argmax(gain))
        if gain[i] <= 1e-9 * max(1.0, abs(cur)):
            break
        mask[i] = ~mask[i]
    return mask


def cluster_phone_questions(stats: TreeStats, lang: "LangDir", var_floor: float = 0.01) -> Questions:
    """Phone classes from top-down binary clustering of monophone statistics (Kaldi's cluster-phones).

    Each non-silence phone is represented by the statistics of its central pdf class over all
    contexts. Every node of the binary tree except the root is a question; phones without statistics
    only get a singleton question.
    """
    ids = [lang.phones[p] for p in lang.nonsilence_phones]
    n = np.zeros(len(ids))
    s = np.zeros((len(ids), stats.dim))
    ss = np.zeros_like(s)
    pos = {pid: i for i, pid in enumerate(ids)}
    center = stats.keys[:, 1]
    mid = np.array([lang.num_pdf_classes(c) // 2 if c in pos else -1 for c in range(int(center.max(initial=0)) + 1)])
    sel = np.isin(center, ids)
    sel[sel] &= stats.keys[sel, 3] == mid[center[sel]]
    rows = np.nonzero(sel)[0]
    idx = np.array([pos[c] for c in center[rows]], dtype=np.int64)
    np.add.at(n, idx, stats.counts[rows])
    np.add.at(s, idx, stats.sums[rows])
    np.add.at(ss, idx, stats.sumsqs[rows])
    seen = np.nonzero(n > 0)[0]
    sets: list[tuple[int, ...]] = []
    stack = [seen] if len(seen) > 1 else []
    while stack:
        items = stack.pop()
        mask = _best_binary_split(n[items], s[items], ss[items], var_floor)
        for part in (items[mask], items[~mask]):
            sets.append(tuple(ids[i] for i in part))
            if len(part) > 1:
                stack.append(part)
    sets += [(ids[i],) for i in range(len(ids)) if n[i] == 0]
    return Questions(sets, names=["cluster"] * len(sets))


def default_questions(stats: TreeStats, lang: "LangDir", var_floor: float = 0.01) -> Questions:
    """Clustered phone classes + ARPAbet classes + boundary/silence classes (see module docstring)."""
    sil = [lang.phones[p] for p in lang.silence_phones]
    q = cluster_phone_questions(stats, lang, var_floor).extend(arpabet_questions(lang))
    extra = Questions([(0,), tuple([0, *sil]), tuple(sil)], names=["boundary", "boundary_or_silence", "silence"])
    max_classes = max(lang.num_pdf_classes(p) for p in lang.real_phone_ids)
    return Questions(q.phone_sets + extra.phone_sets, pdf_class_questions(max_classes), q.names + extra.names)


# --------------------------------------------------------------------------------------------------
# The tree

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
        b = _Builder()
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


class _Builder:
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


# --------------------------------------------------------------------------------------------------
# Building


@dataclass
class BuildTreeConfig:
    num_leaves: int = 2000  # maximum number of leaves after splitting (14000 for LibriSpeech 960 h)
    min_count: float = 100.0  # minimum frames in each child of a split (Kaldi's --min-count)
    min_gain: float = 0.0  # a split must gain more than this log-likelihood (Kaldi's --thresh)
    cluster_thresh: float | None = None  # merge leaves costing less; None: the smallest split gain; <0: off
    var_floor: float = 0.01  # absolute variance floor of the Gaussians
    split_pdf_classes_first: bool = True  # one root per (phone, pdf class), like Kaldi's not-shared roots
    context_independent: list[str] | None = None  # phones never split by context; None: lang's silence phones


@dataclass
class _Leaf:
    rows: np.ndarray
    n: float
    s: np.ndarray
    ss: np.ndarray
    ll: float
    group: int  # clustering is restricted to leaves of one group (root)
    ci: bool  # context-independent center phone
    best: tuple | None = None  # (gain, column, question index, yes mask)


def _leaf(stats: TreeStats, rows: np.ndarray, group: int, ci: bool, var_floor: float) -> _Leaf:
    n = float(stats.counts[rows].sum())
    s = stats.sums[rows].sum(0)
    ss = stats.sumsqs[rows].sum(0)
    return _Leaf(rows, n, s, ss, float(gaussian_loglik(n, s, ss, var_floor)), group, ci)


def _find_split(leaf: _Leaf, stats: TreeStats, phone_member: np.ndarray, class_member: np.ndarray | None,
                cfg: BuildTreeConfig) -> None:
    """Best question for ``leaf`` over all phone-set questions on left/right and pdf-class sets."""
    best = None
    if leaf.n < 2 * cfg.min_count or leaf.rows.size < 2:
        leaf.best = None
        return
    cand: list[tuple[int, np.ndarray]] = []
    if not leaf.ci:
        cand += [(0, phone_member), (2, phone_member)]
    if class_member is not None:
        cand.append((3, class_member))
    cnt, sums, sqs = stats.counts[leaf.rows], stats.sums[leaf.rows], stats.sumsqs[leaf.rows]
    for col, member in cand:
        vals = stats.keys[leaf.rows, col].astype(np.int64)
        width = member.shape[1]
        vals = np.where(vals < width, vals, width)  # values no question mentions: always "no"
        mem = np.concatenate([member, np.zeros((member.shape[0], 1), bool)], axis=1)
        onehot = np.zeros((vals.size, width + 1))
        onehot[np.arange(vals.size), vals] = 1.0
        g_n, g_s, g_ss = onehot.T @ cnt, onehot.T @ sums, onehot.T @ sqs  # stats per context value
        y = mem.astype(np.float64)  # (Q, values)
        y_n, y_s, y_ss = y @ g_n, y @ g_s, y @ g_ss
        no_n, no_s, no_ss = leaf.n - y_n, leaf.s - y_s, leaf.ss - y_ss
        gain = (gaussian_loglik(y_n, y_s, y_ss, cfg.var_floor) + gaussian_loglik(no_n, no_s, no_ss, cfg.var_floor)
                - leaf.ll)
        # gains within floating-point noise of zero (identical statistics on both sides) are no gain
        tol = 1e-9 * (abs(leaf.ll) + 1.0)
        ok = (y_n >= cfg.min_count) & (no_n >= cfg.min_count) & (y_n > 0) & (no_n > 0) & (gain > tol)
        if not ok.any():
            continue
        gain = np.where(ok, gain, -np.inf)
        q = int(np.argmax(gain))
        if best is None or gain[q] > best[0]:
            best = (float(gain[q]), col, q, mem[q, vals])
    leaf.best = best


def _cluster_leaves(leaves: list[_Leaf], thresh: float, var_floor: float) -> np.ndarray:
    """Bottom-up merging within groups while the likelihood loss is below ``thresh``.

    Returns the cluster representative (a leaf index) of every leaf.
    """
    rep = np.arange(len(leaves))
    if thresh <= 0:
        return rep
    groups: dict[int, list[int]] = {}
    for i, lf in enumerate(leaves):
        groups.setdefault(lf.group, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        idx = np.asarray(members)
        n = np.array([leaves[i].n for i in idx])
        s = np.stack([leaves[i].s for i in idx])
        ss = np.stack([leaves[i].ss for i in idx])
        ll = gaussian_loglik(n, s, ss, var_floor)
        m = idx.size
        cost = (ll[:, None] + ll[None, :]
                - gaussian_loglik(n[:, None] + n[None, :], s[:, None] + s[None, :], ss[:, None] + ss[None, :], var_floor))
        alive = np.ones(m, bool)
        np.fill_diagonal(cost, np.inf)
        local_rep = np.arange(m)
        while True:
            flat = int(np.argmin(cost))
            a, b = divmod(flat, m)
            if not np.isfinite(cost[a, b]) or cost[a, b] >= thresh:
                break
            n[a] += n[b]
            s[a] += s[b]
            ss[a] += ss[b]
            ll[a] = gaussian_loglik(n[a], s[a], ss[a], var_floor)
            alive[b] = False
            local_rep[local_rep == b] = a
            cost[b, :] = np.inf
            cost[:, b] = np.inf
            row = ll[a] + ll - gaussian_loglik(n[a] + n, s[a] + s, ss[a] + ss, var_floor)
            row[~alive] = np.inf
            row[a] = np.inf
            cost[a, :] = row
            cost[:, a] = row
        rep[idx] = idx[local_rep]
    return rep


def build_tree(stats: TreeStats, lang: "LangDir", num_leaves: int = 2000, min_count: float = 100.0,
               questions: Questions | None = None, config: BuildTreeConfig | None = None, **overrides) -> TiedStateTree:
    """Cluster the triphone states of ``stats`` into at most ``num_leaves`` tied states (see module doc).

    ``questions`` None uses :func:`default_questions`. Extra keyword arguments override fields of
    :class:`BuildTreeConfig`. Every phone with an HMM in ``lang`` gets pdfs, with or without statistics.
    """
    from tqdm import tqdm

    cfg = config or BuildTreeConfig()
    cfg = BuildTreeConfig(**{**asdict(cfg), "num_leaves": num_leaves, "min_count": min_count, **overrides})
    if cfg.min_count <= 0:
        raise ValueError("min_count must be positive")
    if questions is None:
        questions = default_questions(stats, lang, cfg.var_floor)
    ci_names = lang.silence_phones if cfg.context_independent is None else cfg.context_independent
    ci_ids = {lang.phones[p] for p in ci_names}
    real = lang.real_phone_ids
    num_classes = {p: lang.num_pdf_classes(p) for p in real}
    bad = ~np.isin(stats.keys[:, 1], real)
    if bad.any():
        raise ValueError(f"tree statistics have center phones without HMMs: {np.unique(stats.keys[bad, 1])[:10]}")
    width = 1 + max([max(s) for s in questions.phone_sets] + [max(real)])
    phone_member = np.zeros((max(len(questions.phone_sets), 1), width), bool)
    for i, st in enumerate(questions.phone_sets):
        phone_member[i, list(st)] = True
    class_member = None
    if not cfg.split_pdf_classes_first and questions.pdf_class_sets:
        cw = 1 + max(max(s) for s in questions.pdf_class_sets)
        class_member = np.zeros((len(questions.pdf_class_sets), cw), bool)
        for i, st in enumerate(questions.pdf_class_sets):
            class_member[i, list(st)] = True

    # initial leaves: one per phone (shared roots) or per (phone, pdf class)
    order = np.lexsort((stats.keys[:, 3], stats.keys[:, 1]))
    leaves: list[_Leaf] = []
    roots: dict[tuple[int, int], int] = {}  # (phone, pdf class or -1) -> leaf
    for p in real:
        rows_p = order[stats.keys[order, 1] == p]
        if cfg.split_pdf_classes_first:
            for c in range(num_classes[p]):
                rows = rows_p[stats.keys[rows_p, 3] == c]
                roots[(p, c)] = len(leaves)
                leaves.append(_leaf(stats, rows, len(roots), p in ci_ids, cfg.var_floor))
        else:
            roots[(p, -1)] = len(leaves)
            leaves.append(_leaf(stats, rows_p, len(roots), p in ci_ids, cfg.var_floor))
        bad_class = rows_p[stats.keys[rows_p, 3] >= num_classes[p]]
        if bad_class.size:
            raise ValueError(f"tree statistics have pdf classes >= {num_classes[p]} for phone {p}")
    n_initial = len(leaves)
    if cfg.num_leaves < n_initial:
        log.warning("num_leaves=%d is below the %d initial leaves (phone states); no splits", cfg.num_leaves, n_initial)

    # greedy splitting
    children: dict[int, tuple[int, int, int, tuple[int, ...] | None]] = {}  # leaf -> (col, yes leaf, no leaf, set)
    heap: list[tuple[float, int]] = []
    for i, lf in enumerate(leaves):
        _find_split(lf, stats, phone_member, class_member, cfg)
        if lf.best is not None:
            heapq.heappush(heap, (-lf.best[0], i))
    smallest_gain = np.inf
    total_gain = 0.0
    num_current = n_initial
    with tqdm(total=max(cfg.num_leaves - n_initial, 0), desc="tree splits", unit="split", leave=False) as bar:
        while heap and num_current < cfg.num_leaves:
            neg, i = heapq.heappop(heap)
            gain = -neg
            if gain <= cfg.min_gain:
                break
            lf = leaves[i]
            _, col, q, yes_mask = lf.best
            qset = (questions.phone_sets[q] if col in (0, 2) else questions.pdf_class_sets[q])
            yl = _leaf(stats, lf.rows[yes_mask], lf.group, lf.ci, cfg.var_floor)
            nl = _leaf(stats, lf.rows[~yes_mask], lf.group, lf.ci, cfg.var_floor)
            children[i] = (col, len(leaves), len(leaves) + 1, qset)
            leaves += [yl, nl]
            lf.best = None
            for j in (len(leaves) - 2, len(leaves) - 1):
                _find_split(leaves[j], stats, phone_member, class_member, cfg)
                if leaves[j].best is not None:
                    heapq.heappush(heap, (-leaves[j].best[0], j))
            smallest_gain = min(smallest_gain, gain)
            total_gain += gain
            num_current += 1
            bar.update(1)

    final = [i for i in range(len(leaves)) if i not in children]
    thresh = cfg.cluster_thresh
    if thresh is None:
        thresh = smallest_gain if np.isfinite(smallest_gain) else 0.0
    rep_local = _cluster_leaves([leaves[i] for i in final], thresh, cfg.var_floor)
    # pdf ids: in order of first appearance of each cluster (final leaves are in root order)
    pdf_of_final: dict[int, int] = {}
    cluster_pdf: dict[int, int] = {}
    for k, i in enumerate(final):
        r = int(rep_local[k])
        if r not in cluster_pdf:
            cluster_pdf[r] = len(cluster_pdf)
        pdf_of_final[i] = cluster_pdf[r]
    num_pdfs = len(cluster_pdf)
    pdf_counts = np.zeros(num_pdfs)
    for i in final:
        pdf_counts[pdf_of_final[i]] += leaves[i].n

    # pack into an EventMap: TE(center) -> [TE(pdf class) ->] SE ... -> CE
    b = _Builder()
    sets_index: dict[tuple[int, ...], int] = {}

    def emit_leaf(i: int) -> int:
        if i not in children:
            return b.add(CE, 3, pdf=pdf_of_final[i])
        col, y, nn, qset = children[i]
        sid = sets_index.setdefault(qset, len(sets_index))
        node = b.add(SE, col, set_id=sid)
        b.yes[node] = emit_leaf(y)
        b.no[node] = emit_leaf(nn)
        return node

    root = b.add(TE, 1)
    table = [-1] * (max(real) + 1)
    for p in real:
        if cfg.split_pdf_classes_first:
            node = b.add(TE, 3)
            b.tables[node] = [emit_leaf(roots[(p, c)]) for c in range(num_classes[p])]
            table[p] = node
        else:
            table[p] = emit_leaf(roots[(p, -1)])
    b.tables[root] = table
    tree = b.finish(sorted(sets_index, key=sets_index.get))
    tree.pdf_counts = pdf_counts
    tree.info = dict(num_leaves_split=len(final), num_pdfs=num_pdfs, initial_leaves=n_initial,
                     split_gain=total_gain, smallest_split_gain=float(smallest_gain) if np.isfinite(smallest_gain) else None,
                     cluster_thresh=float(thresh), pdfs_without_stats=int((pdf_counts == 0).sum()),
                     stats_frames=float(stats.counts.sum()), stats_events=len(stats),
                     num_phone_questions=len(questions.phone_sets))
    log.info("tree: %d initial leaves -> %d after splitting (gain %.1f, smallest %.2f) -> %d pdfs after merging "
             "(thresh %.2f); %d pdfs without data", n_initial, len(final), total_gain,
             tree.info["smallest_split_gain"] or 0.0, num_pdfs, thresh, tree.info["pdfs_without_stats"])
    return tree


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

