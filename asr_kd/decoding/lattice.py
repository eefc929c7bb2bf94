"""Lattices: generation with kaldi-decoder's ``LatticeSimpleDecoder`` and one-best paths from a lattice at any
acoustic scale (equivalently LM weight) and word insertion penalty, without decoding again.

A lattice here is the decoder's *raw* state-level lattice (``kaldifst.Lattice``): input labels pdf + 1,
output labels word ids, weights ``(graph cost, acoustic cost)`` where the acoustic cost is the one the
decoder saw, i.e. already multiplied by the decoding acoustic scale ``s0``. The cost of a path at acoustic
scale ``s`` and insertion penalty ``p`` is, as in Kaldi's ``score.sh`` (``lattice-scale
--inv-acoustic-scale=LMWT | lattice-add-penalty --word-ins-penalty=p | lattice-best-path``)::

    graph + (s / s0) * acoustic + p * (number of words)

``LMWT = 1 / s`` is the LM weight of that point. The scaling is ``kaldifst.scale_lattice`` and the best path
``kaldifst.shortest_path`` (both C++). kaldifst has no lattice-add-penalty, so :func:`add_word_penalty`
rewrites the arcs that carry a word (a few per cent of the lattice) of a copy. Only paths within
``lattice_beam`` of the best path at ``s0`` are in the lattice, so points far from ``s0`` are searched in a
pruned space, as in Kaldi.

Why raw lattices: the installed kaldi-decoder exposes ``get_raw_lattice`` but no lattice determinization,
and kaldi-hmm-gmm's ``LatticeFasterDecoder`` returns only a best path, so word lattices (Kaldi's
``CompactLattice``) cannot be built with the stack's C++ code. Lattices therefore stay in the decoder
process: every sweep point's best path is taken there, right after decoding (see
:mod:`asr_kd.decoding.decoder`), and only the word sequences travel.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from asr_base.kaldi import kaldi_decoder, kaldifst

from _kaldifst import _ArcIteratorLattice  # noqa: E402  (kaldifst.ArcIterator only wraps Std FSTs)

Point = tuple[float, float]  # (acoustic scale, word insertion penalty)


def point_key(point: Point) -> str:
    """``0.12_0.5``: the name of a sweep point in files (``scoring/hyp_<key>.txt``) and JSON."""
    return f"{point[0]:g}_{point[1]:g}"


def generate_lattice(fst, scaled: np.ndarray, beam: float, lattice_beam: float):
    """Decode a (frames, pdfs) matrix of *scaled* log-likelihoods; returns the raw lattice or None when no
    token reached a final state."""
    cfg = kaldi_decoder.LatticeSimpleDecoderConfig(beam=beam, lattice_beam=lattice_beam)
    dec = kaldi_decoder.LatticeSimpleDecoder(fst, cfg)
    dec.decode(kaldi_decoder.DecodableCtc(scaled))
    if dec.final_relative_cost() == float("inf"):
        return None
    ok, lat = dec.get_raw_lattice(use_final_probs=True)
    return lat if ok and lat.num_states > 0 else None


def word_arcs(lat) -> dict[int, list]:
    """State -> its arcs, for the states that have an arc with a word (the ones a penalty changes)."""
    out: dict[int, list] = {}
    for s in range(lat.num_states):
        it = _ArcIteratorLattice(lat, s)
        arcs = []
        has_word = False
        while not it.done:
            a = it.value
            has_word |= a.olabel != 0
            arcs.append((a.ilabel, a.olabel, a.weight.value1, a.weight.value2, a.nextstate))
            it.next()
        if has_word:
            out[s] = arcs
    return out


def add_word_penalty(lat, penalty: float, arcs_by_state: dict[int, list]):
    """A copy of ``lat`` with ``penalty`` added to the graph cost of every arc that carries a word
    (Kaldi's ``lattice-add-penalty``)."""
    out = kaldifst.Lattice(lat)
    if penalty == 0:
        return out
    for s, arcs in arcs_by_state.items():
        out.delete_arcs(s, len(arcs))
        for il, ol, g, a, nxt in arcs:
            w = kaldifst.LatticeWeight(g + penalty if ol else g, a)
            out.add_arc(s, kaldifst.LatticeArc(il, ol, w, nxt))
    return out


def best_path(lat, acoustic_ratio: float):
    """The best path (a linear ``kaldifst.Lattice``) with the acoustic costs multiplied by ``acoustic_ratio``."""
    if acoustic_ratio != 1.0:
        lat = kaldifst.Lattice(lat)
        kaldifst.scale_lattice([[1.0, 0.0], [0.0, float(acoustic_ratio)]], lat)
    return kaldifst.shortest_path(lat)


def sweep(lat, points: Iterable[Point], decode_scale: float) -> dict[Point, object]:
    """The best path of the lattice at every (acoustic scale, penalty) point: point -> linear lattice."""
    points = sorted(set(points), key=lambda p: (p[1], p[0]))
    arcs = word_arcs(lat) if any(p != 0 for _, p in points) else {}
    out: dict[Point, object] = {}
    penalised = {}
    for scale, penalty in points:
        if penalty not in penalised:
            penalised[penalty] = add_word_penalty(lat, penalty, arcs) if penalty else lat
        out[(scale, penalty)] = best_path(penalised[penalty], scale / decode_scale)
    return out
