"""LM rescoring of lattices with a bigger n-gram model by composition with the LM difference (Kaldi's
``steps/lmrescore.sh``, mode 3).

Kaldi removes the old LM's score from a determinized word lattice and adds the new one's by composing with
the two G.fsts (``lattice-scale --lm-scale=-1 | lattice-compose G_old | lattice-determinize |
lattice-scale --lm-scale=-1 | lattice-compose G_new | lattice-determinize``), keeping the acoustic cost
apart so that ``score.sh`` can still sweep the LM weight. kaldifst composes and determinizes only
single-weight (tropical) FSTs, and the installed kaldi-decoder has no lattice determinization (see
:mod:`asr_kd.decoding.lattice`), so the same operations run once per point of the sweep, on the lattice's
word acceptor at that point's acoustic scale:

1. the raw state-level lattice becomes a word acceptor with arc weights ``graph + r * acoustic`` (``r =
   scale / decoding scale``), through OpenFst's text format (``Lattice.to_str`` -> ``kaldifst.compile``, the
   one conversion between the two arc types the bindings offer; parsed once per lattice into numpy arrays);
2. ``determinize_star`` (epsilon removal + determinization, C++) keeps each word sequence once, with the
   cost of its best alignment; steps 1-2 run once per acoustic scale, as every word of a path pays the word
   insertion penalty (Kaldi's ``lattice-add-penalty``), added to the arcs in step 3;
3. **old LM out**: weights negated, composed with the graph's G (back-off arcs as epsilons), determinized:
   the minimum over G's paths of ``-cost + G`` is ``-(cost - G_min)``; negated back, each word sequence has
   lost exactly the LM cost the decoding graph gave it (HCLG took the cheapest path through G too);
4. **new LM in**: composed with the new G (back-off arcs as epsilons); the shortest path is the rescored
   best path of that point.

Step 4 takes the cheapest path through the new G, as the first-pass graph does with the old one, where
Kaldi's mode 3 follows a back-off arc only when no explicit n-gram exists (OpenFst's phi matcher, which the
bindings do not expose): a hypothesis can get a back-off score lower than its explicit n-gram's. Both Gs
come from ``kaldilm.arpa2fst`` (C++), so any ARPA kaldilm reads can be used, with G's memory: in the worker
processes the Gs are shared copy-on-write (forked after loading).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from asr_base.kaldi import kaldifst
from data_prep.lang.lang_dir import read_symbols
from asr_kd.decoding.graph import make_g, map_input_labels
from asr_kd.decoding.lattice import Point

log = logging.getLogger(__name__)


# src dst ilabel olabel [graph,acoustic] (OpenFst prints no weight for One, i.e. (0, 0))
_ARC = re.compile(r"^(\d+)\s+(\d+)\s+\d+\s+(\d+)(?:\s+(\S+),(\S+))?$", re.M)
_FINAL = re.compile(r"^(\d+)(?:\s+(\S+),(\S+))?$", re.M)  # state [graph,acoustic]
# a printed StdFst: "src dst ilabel olabel [weight]" and "state [weight]" (no weight printed for 0)
_STD_ARC = re.compile(r"^(\d+[ \t]+\d+[ \t]+\d+[ \t]+\d+)(?:[ \t]+(\S+))?$", re.M)
_STD_FINAL = re.compile(r"^(\d+)(?:[ \t]+(\S+))?$", re.M)


def compile_std(prefixes: list[str], weights: np.ndarray, finals: list[str], final_weights: np.ndarray):
    """A StdVectorFst from arc lines without their weight (``"src dst ilabel [olabel]"``) and final states,
    with the given weights (one ``%`` format over all lines: several times faster than numpy's float to string
    conversion, which dominated the rescoring time; 6 decimals)."""
    items = [None] * (2 * (len(prefixes) + len(finals)))
    items[0:2 * len(prefixes):2] = prefixes
    items[1:2 * len(prefixes):2] = weights.tolist()
    items[2 * len(prefixes)::2] = finals
    items[2 * len(prefixes) + 1::2] = final_weights.tolist()
    return kaldifst.compile(("%s %.6f\n" * (len(items) // 2)) % tuple(items))


@dataclass
class ParsedLattice:
    """A raw lattice's arcs as arrays, parsed once per lattice (regular expressions and numpy): the word acceptor
    of any acoustic ratio is built from them by one string format."""

    prefixes: list[str]  # "src dst word word" per arc, in the lattice's order (the start state's arcs first)
    graph: np.ndarray  # float64 graph cost per arc
    acoustic: np.ndarray  # float64 acoustic cost per arc (as decoded, i.e. at the decoding scale)
    final_states: list[str]  # state id of each final state
    final_costs: np.ndarray  # float64 (finals, 2): graph, acoustic cost of each final state

    @classmethod
    def of(cls, lat) -> "ParsedLattice":
        text = lat.to_str()
        arcs = np.array(_ARC.findall(text), dtype=str).reshape(-1, 5)
        finals = np.array(_FINAL.findall(text), dtype=str).reshape(-1, 3)
        arcs[arcs == ""] = "0"  # a weight printed without a value is One: (0, 0)
        finals[finals == ""] = "0"
        prefixes = [f"{a} {b} {w} {w}" for a, b, w in arcs[:, :3].tolist()]
        return cls(prefixes, arcs[:, 3].astype(np.float64), arcs[:, 4].astype(np.float64),
                   finals[:, 0].tolist(), finals[:, 1:].astype(np.float64))

    def word_acceptor(self, ratio: float):
        """StdVectorFst over word labels (0: epsilon) with weights ``graph + ratio * acoustic``."""
        return compile_std(self.prefixes, self.graph + ratio * self.acoustic, self.final_states,
                           self.final_costs[:, 0] + ratio * self.final_costs[:, 1])

    def word_lattice(self, ratio: float):
        """The determinized word acceptor at ``ratio``: each word sequence once, with the cost of its best
        path; every arc carries one word."""
        acc = self.word_acceptor(ratio)
        kaldifst.determinize_star(acc)
        return acc


def negated(fst, penalty: float = 0.0):
    """A copy of a StdFst with every arc weight ``w`` replaced by ``-(w + penalty)`` and every final weight
    negated (Kaldi's ``lattice-add-penalty`` then ``lattice-scale --lm-scale=-1``, on a single-weight FST:
    kaldifst has no weight map)."""
    text = fst.to_str()
    arcs = np.array(_STD_ARC.findall(text), dtype=str).reshape(-1, 2)
    finals = np.array(_STD_FINAL.findall(text), dtype=str).reshape(-1, 2)
    arcs[arcs == ""] = "0"
    finals[finals == ""] = "0"
    return compile_std(arcs[:, 0].tolist(), -(arcs[:, 1].astype(np.float64) + penalty), finals[:, 0].tolist(),
                       -finals[:, 1].astype(np.float64))


def best_words(fst) -> tuple[list[int], float]:
    """Output labels (epsilons dropped) and cost of the shortest path; ``([], inf)`` for an empty FST."""
    ok, _, words, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(fst))
    return (list(int(w) for w in words), float(weight.value)) if ok else ([], float("inf"))


def load_g(arpa: str | Path, words_txt: str | Path):
    """An ARPA LM as an acceptor over ``words_txt``'s ids with its back-off arcs as epsilons (Kaldi's
    ``fstproject --project_output=true G.fst``), arc-sorted on input labels."""
    symbols = read_symbols(words_txt)
    G = make_g(arpa, words_txt)
    if "#0" in symbols:
        table = np.arange(max(int(v) for v in symbols.values()) + 1)
        table[int(symbols["#0"])] = 0
        G = map_input_labels(G, table)
        G = kaldifst.StdVectorFst(G)
    kaldifst.arcsort(G, sort_type="ilabel")
    return G


@dataclass
class LmRescorer:
    """Replaces the graph's LM score (``old``, a G acceptor) of every hypothesis by ``new``'s."""

    old: object  # kaldifst.StdVectorFst
    new: object

    @classmethod
    def load(cls, old_arpa: str | Path, new_arpa: str | Path, words_txt: str | Path) -> "LmRescorer":
        return cls(load_g(old_arpa, words_txt), load_g(new_arpa, words_txt))

    def rescore(self, word_lattice, penalty: float = 0.0):
        """A determinized word acceptor (one word per arc) with ``penalty`` added per word and the old LM's
        cost of every word sequence replaced by the new LM's (steps 3-4 of the module doc)."""
        neg = negated(word_lattice, penalty)
        kaldifst.arcsort(neg, sort_type="olabel")
        without_old = kaldifst.compose(neg, self.old)
        kaldifst.determinize_star(without_old)
        back = negated(without_old)
        kaldifst.arcsort(back, sort_type="olabel")
        return kaldifst.compose(back, self.new)

    def best_paths(self, lat, points: Iterable[Point], decode_scale: float) -> dict[Point, list[int]]:
        """The rescored best word sequence of the lattice at every (acoustic scale, penalty) point."""
        parsed = ParsedLattice.of(lat)
        by_scale: dict[float, list[float]] = {}
        for scale, penalty in dict.fromkeys(points):
            by_scale.setdefault(scale, []).append(penalty)
        out: dict[Point, list[int]] = {}
        for scale, penalties in by_scale.items():  # one word lattice per scale: a penalty is per word
            word_lat = parsed.word_lattice(scale / decode_scale)
            for penalty in penalties:
                words, cost = best_words(self.rescore(word_lat, penalty))
                if cost == float("inf"):  # no path through the new G (a word it cannot generate): keep the first pass
                    words = best_words(word_lat)[0]
                    log.warning("no lattice path survives the rescoring LM at scale %g, penalty %g: first-pass "
                                "best path kept", scale, penalty)
                out[(scale, penalty)] = words
        return out
