"""LM rescoring of lattices: ARPA files read back exactly, rescoring with the graph's own LM is the first pass,
and a new LM moves the best path towards what it prefers, by exactly its score difference over the whole lattice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr_base.kaldi import kaldifst
from asr_kd.decoding.decoder import DecoderConfig, WfstDecoder, best_path_words, decode_matrices, read_words
from asr_kd.decoding.lattice import generate_lattice, sweep
from asr_kd.decoding.lm import LMConfig, estimate, read_arpa
from asr_kd.decoding.rescore import LmRescorer, ParsedLattice, best_words, negated

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


def _nbest(word_lattice, n):
    """Every distinct word sequence of a determinized word acceptor (up to ``n``) with its cost."""
    out = []
    for path in kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(word_lattice, n=n)):
        ok, _, words, weight = kaldifst.get_linear_symbol_sequence(path)
        assert ok
        out.append((tuple(int(w) for w in words), float(weight.value)))
    return out


def _g_cost(G, words):
    """The cheapest path's cost of ``words`` through G (back-off arcs as epsilons)."""
    lin = kaldifst.make_linear_acceptor(list(words))
    kaldifst.arcsort(lin, sort_type="olabel")
    return best_words(kaldifst.compose(lin, G))[1]


def test_rescoring_with_the_graph_lm_is_the_first_pass(toy, system):
    lang, ctx, gdir, small, _ = system
    same = LmRescorer.load(small, small, gdir / "words.txt")
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
            word_lat = parsed.word_lattice(k[0] / 0.1)
            words, cost = best_words(negated(negated(word_lat, k[1])))  # + the penalty per word
            assert words == first[k][0]
            assert cost == pytest.approx(first[k][2], abs=1e-3)  # the word lattice's costs are the lattice's
            # old LM out, same LM in: every word sequence keeps its cost
            assert best_words(same.rescore(word_lat, k[1])) == (words, pytest.approx(cost, abs=1e-3))
            checked += 1
    assert checked == len(mats) * len(points)


def test_rescoring_applies_the_new_lm_score_difference(system):
    """Over the whole lattice: the rescored best path is the word sequence with the lowest ``cost - old G +
    new G`` (each G's cheapest path), and a G's cheapest path is never above the exact back-off score."""
    lang, ctx, gdir, small, big = system
    words = read_words(gdir / "words.txt")
    r = LmRescorer.load(small, big, gdir / "words.txt")
    exact = {"old": read_arpa(small), "new": read_arpa(big)}
    bird = words.index("BIRD")
    dec = WfstDecoder(gdir)
    moved = 0
    for utt, m in _ambiguous(ctx, 5, 11).items():
        lat = generate_lattice(dec.fst, m * np.float32(0.1), 12.0, 5.0)
        word_lat = ParsedLattice.of(lat).word_lattice(1.0)
        hyps = _nbest(word_lat, 10_000)
        assert 1 < len(hyps) < 10_000  # every word sequence of the lattice, each once
        assert len({h for h, _ in hyps}) == len(hyps)
        new_cost = {}
        for h, c in hyps:
            g = {"old": _g_cost(r.old, h), "new": _g_cost(r.new, h)}
            for k in g:
                assert g[k] <= -exact[k].sentence_logprob([words[w] for w in h]) + 1e-3
            new_cost[h] = c - g["old"] + g["new"]
        got, cost = best_words(r.rescore(word_lat))
        assert tuple(got) == tuple(r.best_paths(lat, [(0.1, 0.0)], 0.1)[(0.1, 0.0)])
        assert cost == pytest.approx(min(new_cost.values()), abs=1e-3)
        assert new_cost[tuple(got)] == pytest.approx(min(new_cost.values()), abs=1e-3)
        first = hyps[0][0]
        moved += tuple(got) != first
        assert got.count(bird) >= first.count(bird) or tuple(got) == first
    assert moved, "the new LM never changed a hypothesis: the test would not see rescoring do nothing"


def test_negated_weights():
    """Arcs and finals with and without a printed weight (a final state right after a weightless arc)."""
    fst = kaldifst.compile("0 1 3 3 1.5\n1 2 4 4 -0.25\n2 3 5 5\n2 1\n3 0.5\n4 5 6 6\n4\n")
    neg = negated(fst)
    assert best_words(fst) == ([3, 4, 5], pytest.approx(1.75))
    assert best_words(neg) == ([3, 4], pytest.approx(-2.25))
    assert negated(neg).to_str() == fst.to_str()
    assert best_words(negated(fst, 2.0)) == ([3, 4, 5], pytest.approx(-(1.75 + 3 * 2.0)))  # 2 per arc


def test_decoder_rescores_in_parallel_and_needs_lattices(system):
    lang, ctx, gdir, small, big = system
    mats = _ambiguous(ctx, 4, 5)
    cfg = DecoderConfig(lattice_beam=5.0, beam=12.0, sweep_acoustic_scales=[0.1, 0.2], num_jobs=2,
                        rescore_arpa=str(big), rescore_graph_arpa=str(small))
    out = decode_matrices(gdir, mats, cfg)
    assert set(out.results) == set(mats)
    for r in out.results.values():
        assert set(r.rescored) == set(cfg.points(rescored=True)) and set(r.points) == set(cfg.points())
    assert any(r.rescored[p] != r.points[p] for r in out.results.values() for p in cfg.points())
    with pytest.raises(ValueError, match="needs lattices"):
        DecoderConfig(rescore_arpa=str(big))


def test_parsed_lattice_keeps_arcs_and_finals_printed_without_a_weight():
    """OpenFst prints no weight for One = (0, 0): such arcs and final states are still part of the acceptor."""
    lat = kaldifst.Lattice()
    for _ in range(3):
        lat.add_state()
    lat.start = 0
    lat.add_arc(0, kaldifst.LatticeArc(1, 0, kaldifst.LatticeWeight(0, 0), 1))
    lat.add_arc(1, kaldifst.LatticeArc(2, 5, kaldifst.LatticeWeight(1.5, -2.25), 2))
    lat.set_final(2, kaldifst.LatticeWeight(0, 0))
    p = ParsedLattice.of(lat)
    assert p.prefixes == ["0 1 0 0", "1 2 5 5"] and p.graph.tolist() == [0.0, 1.5]
    assert p.acoustic.tolist() == [0.0, -2.25] and p.final_states == ["2"]
    assert best_words(p.word_lattice(2.0)) == ([5], pytest.approx(1.5 - 4.5))
    assert best_words(negated(p.word_lattice(2.0), 1.0)) == ([5], pytest.approx(-(1.5 - 4.5 + 1.0)))


def test_a_lattice_the_new_lm_cannot_generate_keeps_its_first_pass(system, tmp_path, caplog):
    """A word the new LM lacks leaves no path through its G: the first pass's best path is kept, with a warning."""
    lang, ctx, gdir, small, _ = system
    estimate([["CAT", "DOG"], ["DOG", "CAT"]], LMConfig(order=2)).write_arpa(tmp_path / "no_bird.arpa")
    r = LmRescorer.load(small, tmp_path / "no_bird.arpa", gdir / "words.txt")
    bird, cat = (read_words(gdir / "words.txt").index(w) for w in ("BIRD", "CAT"))
    lat = kaldifst.Lattice()
    for _ in range(3):
        lat.add_state()
    lat.start = 0
    lat.add_arc(0, kaldifst.LatticeArc(1, bird, kaldifst.LatticeWeight(1.0, 2.0), 1))
    lat.add_arc(1, kaldifst.LatticeArc(2, 0, kaldifst.LatticeWeight(0.0, 1.0), 2))
    lat.set_final(2, kaldifst.LatticeWeight(0, 0))
    assert r.best_paths(lat, [(0.1, 0.0)], 0.1) == {(0.1, 0.0): [bird]}
    assert "first-pass best path kept" in caplog.text
    lat.add_arc(0, kaldifst.LatticeArc(1, cat, kaldifst.LatticeWeight(5.0, 2.0), 2))  # a path it can score
    assert r.best_paths(lat, [(0.1, 0.0)], 0.1) == {(0.1, 0.0): [cat]}
