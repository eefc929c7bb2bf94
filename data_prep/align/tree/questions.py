"""Questions of the phonetic decision tree: which phone classes (and pdf-class sets) a split may ask about.

:class:`Questions` is plain, JSON-serialisable data. :func:`default_questions` combines

* phone classes found by clustering the phones' monophone statistics top-down (binary splits that
  maximise the Gaussian log-likelihood, like Kaldi's ``cluster-phones``): data-driven, and it works for
  any phone set, e.g. with ``--keep-stress`` (AH0/AH1/AH2) or a non-ARPAbet lexicon;
* ARPAbet linguistic classes (manner, place, voicing, vowel height/backness, ...) for the phones whose
  names (stress stripped) are ARPAbet: well-tested priors that help when the data is small and the
  clustering is noisy, and that cost nothing when they are redundant;
* the boundary/silence classes ``{0}`` and ``{0, SIL, SPN}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr_base.io import write_text
from data_prep.align.tree.stats import TreeStats, gaussian_loglik
from data_prep.lang.lexicon import ARPABET_PHONES, strip_stress

if TYPE_CHECKING:  # pragma: no cover
    from data_prep.lang.lang_dir import LangDir

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
