"""LM rescoring of lattices with a bigger n-gram model (Kaldi's ``steps/lmrescore.sh``), on n-best lists.

Kaldi rescores a determinized word lattice: it subtracts the old LM's score of every path
(``lattice-lmrescore --lm-scale=-1`` with the graph's G) and adds the new one's (``--lm-scale=1``), keeping
the acoustic cost apart so that ``score.sh`` can still sweep the LM weight. The installed kaldi-decoder has
no lattice determinization (see :mod:`asr_kd.decoding.lattice`), so this module does the same on the ``N``
best *distinct word sequences* of each lattice, per acoustic scale of the sweep:

1. the raw state-level lattice becomes a word acceptor whose arc weights are ``graph + r * acoustic``
   (``r = scale / decoding scale``), through OpenFst's text format (``Lattice.to_str`` ->
   ``kaldifst.compile``: the one conversion between the two arc types the bindings offer; the text is parsed
   by regular expressions into numpy arrays once per lattice and written back with numpy string operations);
2. ``kaldifst.determinize_star`` (epsilon removal + determinization, C++) keeps each word sequence once,
   with the cost of its best alignment; ``kaldifst.shortest_path(n=N)`` gives its ``N`` best;
3. each hypothesis' total cost gets ``new LM cost - old LM cost`` (exact back-off scores of
   ``<s> words </s>``, natural-log units as in G.fst); the cheapest is the rescored best path of that point.
   A word insertion penalty is on the word arcs of step 1, as Kaldi's ``lattice-add-penalty``.

Rescoring ``N`` best paths instead of the whole lattice misses only hypotheses outside the first pass's
``N`` best at that scale (``--rescore-nbest``, default 100; Kaldi's RNNLM n-best rescoring uses the same
scheme). With the graph's own LM as the "new" one the rescored best path is the first pass's best path
(tested); each sweep point costs one conversion and determinization (measured on a few mini dev utterances
with other jobs running: 0.3-0.7 s per utterance for 12 points, against 1.5-2 s to generate its lattice).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from asr_base.kaldi import kaldifst
from asr_kd.decoding.lattice import Point
from asr_kd.decoding.lm import NgramLM, read_arpa

log = logging.getLogger(__name__)


# src dst ilabel olabel [graph,acoustic] (OpenFst prints no weight for One, i.e. (0, 0))
_ARC = re.compile(r"^(\d+)\s+(\d+)\s+\d+\s+(\d+)(?:\s+(\S+),(\S+))?$", re.M)
_FINAL = re.compile(r"^(\d+)(?:\s+(\S+),(\S+))?$", re.M)  # state [graph,acoustic]


@dataclass
class ParsedLattice:
    """A raw lattice's arcs as arrays: the word acceptor of any acoustic ratio is built from them (regular
    expressions and numpy string operations, no Python loop over arcs)."""

    prefixes: np.ndarray  # str "src dst word " per arc, in the lattice's order (the start state's arcs first)
    has_word: np.ndarray  # float64 1.0 where the arc carries a word (the arcs a word insertion penalty hits)
    graph: np.ndarray  # float64 graph cost per arc
    acoustic: np.ndarray  # float64 acoustic cost per arc (as decoded, i.e. at the decoding scale)
    final_states: np.ndarray  # str state id of each final state
    final_costs: np.ndarray  # float64 (finals, 2): graph, acoustic cost of each final state

    @classmethod
    def of(cls, lat) -> "ParsedLattice":
        text = lat.to_str()
        arcs = np.array(_ARC.findall(text), dtype=str).reshape(-1, 5)
        finals = np.array(_FINAL.findall(text), dtype=str).reshape(-1, 3)
        arcs[arcs == ""] = "0"  # a weight printed without a value is One: (0, 0)
        finals[finals == ""] = "0"
        prefixes = np.strings.add(np.strings.add(np.strings.add(np.strings.add(arcs[:, 0], " "), arcs[:, 1]), " "),
                                  np.strings.add(arcs[:, 2], " "))
        return cls(prefixes, (arcs[:, 2] != "0").astype(np.float64), arcs[:, 3].astype(np.float64),
                   arcs[:, 4].astype(np.float64), finals[:, 0], finals[:, 1:].astype(np.float64))

    def word_acceptor(self, ratio: float, penalty: float = 0.0):
        """StdVectorFst over word labels (0: epsilon) with weights ``graph + ratio * acoustic`` (+ ``penalty``
        on every word arc, as Kaldi's ``lattice-add-penalty``)."""
        w = self.graph + ratio * self.acoustic + penalty * self.has_word
        fw = self.final_costs[:, 0] + ratio * self.final_costs[:, 1]
        lines = np.concatenate([np.strings.add(self.prefixes, w.astype(str)),
                                np.strings.add(np.strings.add(self.final_states, " "), fw.astype(str))])
        return kaldifst.compile("\n".join(lines.tolist()) + "\n", acceptor=True)


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
