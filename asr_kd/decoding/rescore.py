"""LM rescoring of lattices with a bigger n-gram model (Kaldi's ``steps/lmrescore.sh``), on n-best lists.

Kaldi rescores a determinized word lattice: it subtracts the old LM's score of every path
(``lattice-lmrescore --lm-scale=-1`` with the graph's G) and adds the new one's (``--lm-scale=1``), keeping
the acoustic cost apart so that ``score.sh`` can still sweep the LM weight. The installed kaldi-decoder has
no lattice determinization (see :mod:`asr_kd.decoding.lattice`), so this module does the same on the ``N``
best *distinct word sequences* of each lattice, per acoustic scale of the sweep:

1. the raw state-level lattice becomes a word acceptor whose arc weights are ``graph + r * acoustic``
   (``r = scale / decoding scale``), through OpenFst's text format (``Lattice.to_str`` ->
   ``kaldifst.compile``: the one conversion between the two arc types the bindings offer; parsing the text
   costs about 1% of generating the lattice);
2. ``kaldifst.determinize_star`` (epsilon removal + determinization, C++) keeps each word sequence once,
   with the cost of its best alignment; ``kaldifst.shortest_path(n=N)`` gives its ``N`` best;
3. each hypothesis' total cost gets ``new LM cost - old LM cost`` (exact back-off scores of
   ``<s> words </s>``, natural-log units as in G.fst); the cheapest is the rescored best path of that point.
   A word insertion penalty is on the word arcs of step 1, as Kaldi's ``lattice-add-penalty``.

Rescoring ``N`` best paths instead of the whole lattice misses only hypotheses outside the first pass's
``N`` best at that scale (``--rescore-nbest``, default 100; Kaldi's RNNLM n-best rescoring uses the same
scheme). With the graph's own LM as the "new" one the rescored best path is the first pass's best path
(tested); each sweep point costs one conversion and determinization (about a third of the time of
generating the lattice for the mini recipe's 8 x 2 grid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from asr_base.kaldi import kaldifst
from asr_kd.decoding.lattice import Point
from asr_kd.decoding.lm import NgramLM, read_arpa

log = logging.getLogger(__name__)


@dataclass
class ParsedLattice:
    """A raw lattice's arcs as arrays: the word acceptor of any acoustic ratio is built from them."""

    prefixes: list[str]  # "src dst word " per arc, in the lattice's order (the start state's arcs first)
    has_word: np.ndarray  # float64 1.0 where the arc carries a word (the arcs a word insertion penalty hits)
    graph: np.ndarray  # float64 graph cost per arc
    acoustic: np.ndarray  # float64 acoustic cost per arc (as decoded, i.e. at the decoding scale)
    finals: list[tuple[str, float, float]]  # (state, graph, acoustic) of final states

    @classmethod
    def of(cls, lat) -> "ParsedLattice":
        prefixes, costs, finals, has_word = [], [], [], []
        for line in lat.to_str().splitlines():
            f = line.split()
            if len(f) == 5:  # src dst ilabel olabel graph,acoustic
                prefixes.append(f"{f[0]} {f[1]} {f[3]} ")
                costs.append(f[4])
                has_word.append(f[3] != "0")
            elif f:  # state [graph,acoustic]
                g, a = (f[1].split(",") if len(f) > 1 else ("0", "0"))
                finals.append((f[0], float(g), float(a)))
        ga = np.array([c.split(",") for c in costs], dtype=np.float64).reshape(-1, 2)
        return cls(prefixes, np.asarray(has_word, dtype=np.float64), ga[:, 0], ga[:, 1], finals)

    def word_acceptor(self, ratio: float, penalty: float = 0.0):
        """StdVectorFst over word labels (0: epsilon) with weights ``graph + ratio * acoustic`` (+ ``penalty``
        on every word arc, as Kaldi's ``lattice-add-penalty``)."""
        w = (self.graph + ratio * self.acoustic + penalty * self.has_word).tolist()
        lines = [p + f"{x:.9g}" for p, x in zip(self.prefixes, w)]
        lines += [f"{s} {g + ratio * a:.9g}" for s, g, a in self.finals]
        return kaldifst.compile("\n".join(lines) + "\n", acceptor=True)


def word_nbest(parsed: ParsedLattice, ratio: float, penalty: float, n: int) -> list[tuple[tuple[int, ...], float]]:
    """The ``n`` best distinct word sequences of the lattice at acoustic ratio ``ratio`` and word insertion
    penalty ``penalty``, with their costs (best first)."""
    acc = parsed.word_acceptor(ratio, penalty)
    kaldifst.determinize_star(acc)
    out = []
    for path in kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(acc, n=n)):
        ok, _, words, weight = kaldifst.get_linear_symbol_sequence(path)
        if ok:
            out.append((tuple(int(w) for w in words), float(weight.value)))
    return sorted(out, key=lambda h: (h[1], h[0]))


@dataclass
class LmRescorer:
    """Replaces the graph's LM score (``old``) of every hypothesis by ``new``'s. ``words``: graph word ids ->
    words."""

    old: NgramLM
    new: NgramLM
    words: list[str]
    nbest: int = 100
    _delta: dict[tuple[int, ...], float] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, old_arpa: str | Path, new_arpa: str | Path, words: list[str], nbest: int) -> "LmRescorer":
        return cls(read_arpa(old_arpa), read_arpa(new_arpa), words, nbest)

    def delta(self, word_ids: tuple[int, ...]) -> float:
        """New LM cost - old LM cost of ``<s> words </s>`` (costs: negated natural-log probabilities)."""
        d = self._delta.get(word_ids)
        if d is None:
            ws = [self.words[w] for w in word_ids]
            d = self.old.sentence_logprob(ws) - self.new.sentence_logprob(ws)
            if len(self._delta) > 200_000:  # one utterance's hypotheses share most entries; bound the cache
                self._delta.clear()
            self._delta[word_ids] = d
        return d

    def best_paths(self, lat, points: Iterable[Point], decode_scale: float) -> dict[Point, list[int]]:
        """The rescored best word sequence of the lattice at every (acoustic scale, penalty) point."""
        parsed = ParsedLattice.of(lat)
        out: dict[Point, list[int]] = {}
        for scale, penalty in dict.fromkeys(points):
            hyps = word_nbest(parsed, scale / decode_scale, penalty, self.nbest)
            best = min(((cost + self.delta(ws), ws) for ws, cost in hyps), default=(0.0, ()))
            out[(scale, penalty)] = list(best[1])
        return out
