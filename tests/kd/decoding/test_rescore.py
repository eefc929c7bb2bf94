"""LM rescoring of lattices: ARPA files read back exactly, rescoring with the graph's own LM is the first pass,
and a new LM moves the best path towards what it prefers, by exactly its score difference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr_kd.decoding.decoder import DecoderConfig, WfstDecoder, best_path_words, decode_matrices, read_words
from asr_kd.decoding.lattice import generate_lattice, sweep
from asr_kd.decoding.lm import LMConfig, estimate, read_arpa
from asr_kd.decoding.rescore import LmRescorer, ParsedLattice, word_nbest

TEXT = [["CAT", "DOG"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["CAT"], ["DOG", "DOG", "CAT"], ["BIRD"]]


@pytest.fixture(scope="module")
def system(toy, tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_rescore")
    lang, ctx, gdir = toy.build(root)
    # the "bigger" LM: a trigram that has only ever seen BIRD BIRD BIRD (same vocabulary as the graph's)
    estimate([["BIRD", "BIRD", "BIRD"]] * 20 + [["CAT"], ["DOG"]], LMConfig(order=3)).write_arpa(root / "big.arpa")
    return lang, ctx, gdir, root / "lm.arpa", root / "big.arpa"


def _ambiguous(ctx, n, seed):
    rng = np.random.default_rng(seed)  # acoustically ambiguous: the LM decides
    return {f"n{i}": rng.normal(-4.0, 1.5, (30 + 5 * i, ctx.num_pdfs)).astype(np.float32) for i in range(n)}


def test_read_arpa_is_the_estimated_model(tmp_path):
    lm = estimate(TEXT, LMConfig(order=3))
    lm.write_arpa(tmp_path / "lm.arpa")
    back = read_arpa(tmp_path / "lm.arpa")
    assert back.order == 3 and sorted(back.vocab) == sorted(lm.vocab)
    for hist in ([], ["<s>"], ["CAT"], ["<s>", "DOG"], ["DOG", "DOG"], ["BIRD", "CAT"]):
        for w in lm.vocab:
            assert back.logprob(w, hist) == pytest.approx(lm.logprob(w, hist), abs=1e-5), (hist, w)
    words = ["DOG", "CAT", "FISH"]  # FISH: not in the vocabulary -> <UNK>
    expect = (lm.logprob("DOG", ["<s>"]) + lm.logprob("CAT", ["<s>", "DOG"]) + lm.logprob("<UNK>", ["DOG", "CAT"])
              + lm.logprob("</s>", ["CAT", "<UNK>"]))
    assert back.sentence_logprob(words) == pytest.approx(expect, abs=1e-4)
    assert math.isfinite(expect)


def test_read_arpa_rejects_a_wrong_header(tmp_path):
    lm = estimate(TEXT, LMConfig(order=2))
    lm.write_arpa(tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    n1 = len(lm.probs[0])
    (tmp_path / "bad.arpa").write_text(text.replace(f"ngram 1={n1}", f"ngram 1={n1 + 1}"))
    with pytest.raises(ValueError, match="header says"):
        read_arpa(tmp_path / "bad.arpa")


def test_rescoring_with_the_graph_lm_is_the_first_pass(toy, system):
    lang, ctx, gdir, small, _ = system
    words = read_words(gdir / "words.txt")
    same = LmRescorer.load(small, small, words, nbest=50)
    dec = WfstDecoder(gdir)
    points = [(s, p) for p in (0.0, 1.5) for s in (0.05, 0.1, 0.3)]
    mats = _ambiguous(ctx, 4, 3)
    rng = np.random.default_rng(1)
    mats["cdb"] = toy.spell(lang, ctx, ["CAT", "DOG", "BIRD"], ctx.num_pdfs, rng) + rng.normal(0, 2.0, (1, 1))
    checked = 0
    for utt, m in mats.items():
        lat = generate_lattice(dec.fst, m.astype(np.float32) * np.float32(0.1), 12.0, 5.0)
        assert lat is not None
        first = {k: best_path_words(v) for k, v in sweep(lat, points, 0.1).items()}
        rescored = same.best_paths(lat, points, 0.1)
        parsed = ParsedLattice.of(lat)
        assert len(parsed.graph) == sum(lat.num_arcs(s) for s in range(lat.num_states))  # every arc parsed
        for k in points:
            assert rescored[k] == first[k][0], (utt, k)
            best_words, best_cost = word_nbest(parsed, k[0] / 0.1, k[1], 5)[0]
            assert list(best_words) == first[k][0]
            assert best_cost == pytest.approx(first[k][2], abs=1e-3)  # the n-best's costs are the lattice's
            checked += 1
    assert checked == len(mats) * len(points)


def test_rescoring_applies_the_new_lm_score_difference(system):
    lang, ctx, gdir, small, big = system
    words = read_words(gdir / "words.txt")
    r = LmRescorer.load(small, big, words, nbest=50)
    dec = WfstDecoder(gdir)
    bird = words.index("BIRD")
    moved = 0
    for utt, m in _ambiguous(ctx, 5, 11).items():
        lat = generate_lattice(dec.fst, m * np.float32(0.1), 12.0, 5.0)
        parsed = ParsedLattice.of(lat)
        hyps = word_nbest(parsed, 1.0, 0.0, 50)
        assert len({h for h, _ in hyps}) == len(hyps) > 1  # distinct word sequences
        new_cost = {h: c + r.old.sentence_logprob([words[w] for w in h]) - r.new.sentence_logprob(
            [words[w] for w in h]) for h, c in hyps}
        got = tuple(r.best_paths(lat, [(0.1, 0.0)], 0.1)[(0.1, 0.0)])
        assert new_cost[got] == pytest.approx(min(new_cost.values()), abs=1e-6)
        first = hyps[0][0]
        moved += got != first
        assert got.count(bird) >= first.count(bird) or got == first
    assert moved, "the new LM never changed a hypothesis: the test would not see rescoring do nothing"


def test_decoder_rescores_in_parallel_and_needs_lattices(system):
    lang, ctx, gdir, small, big = system
    mats = _ambiguous(ctx, 4, 5)
    cfg = DecoderConfig(lattice_beam=5.0, beam=12.0, sweep_acoustic_scales=[0.1, 0.2], num_jobs=2,
                        rescore_arpa=str(big), rescore_graph_arpa=str(small), rescore_nbest=20)
    out = decode_matrices(gdir, mats, cfg)
    assert set(out.results) == set(mats)
    for r in out.results.values():
        assert set(r.rescored) == set(cfg.points(rescored=True)) and set(r.points) == set(cfg.points())
    assert any(r.rescored[p] != r.points[p] for r in out.results.values() for p in cfg.points())
    with pytest.raises(ValueError, match="needs lattices"):
        DecoderConfig(rescore_arpa=str(big))


def test_parsed_lattice_keeps_arcs_and_finals_printed_without_a_weight():
    """OpenFst prints no weight for One = (0, 0): such arcs and final states are still part of the acceptor."""
    from asr_base.kaldi import kaldifst

    lat = kaldifst.Lattice()
    for _ in range(3):
        lat.add_state()
    lat.start = 0
    lat.add_arc(0, kaldifst.LatticeArc(1, 0, kaldifst.LatticeWeight(0, 0), 1))
    lat.add_arc(1, kaldifst.LatticeArc(2, 5, kaldifst.LatticeWeight(1.5, -2.25), 2))
    lat.set_final(2, kaldifst.LatticeWeight(0, 0))
    p = ParsedLattice.of(lat)
    assert p.prefixes.tolist() == ["0 1 0 ", "1 2 5 "] and p.graph.tolist() == [0.0, 1.5]
    assert p.acoustic.tolist() == [0.0, -2.25] and p.final_states.tolist() == ["2"]
    assert word_nbest(p, 2.0, 1.0, 3) == [((5,), pytest.approx(1.5 - 4.5 + 1.0))]
