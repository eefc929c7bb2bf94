"""Lattices: the best path of a lattice at another acoustic scale is what decoding at that scale finds, the
word insertion penalty trades words for cost as Kaldi's lattice-add-penalty does, and decode's dev/test
tuning picks dev's best point."""

from __future__ import annotations

import numpy as np
import pytest

from asr_base.io import write_json
from asr_kd.decoding.decode import best_point
from asr_kd.decoding.decoder import DecoderConfig, WfstDecoder, best_path_words, decode_matrices
from asr_kd.decoding.lattice import add_word_penalty, best_path, generate_lattice, sweep, word_arcs


@pytest.fixture(scope="module")
def system(toy, tmp_path_factory):
    return toy.build(tmp_path_factory.mktemp("toy_lat"))


def _noisy(toy, lang, ctx, words, seed, noise=2.5):
    rng = np.random.default_rng(seed)
    m = toy.spell(lang, ctx, words, ctx.num_pdfs, rng)
    return (m + rng.normal(0, noise, m.shape)).astype(np.float32)


def test_sweep_points_equal_decoding_at_that_scale(toy, system):
    """A point of the sweep (taken from one lattice) = a full decode at that acoustic scale."""
    lang, ctx, gdir = system
    wide = dict(beam=30.0, max_active=100000, retry_beams=())
    mats = {f"u{i}": _noisy(toy, lang, ctx, ws, i)
            for i, ws in enumerate([["CAT", "DOG"], ["BIRD", "CAT", "DOG"]])}
    rng = np.random.default_rng(5)  # acoustically ambiguous: the LM weight decides
    mats.update({f"n{i}": rng.normal(-4.0, 2.0, (60, ctx.num_pdfs)).astype(np.float32) for i in range(3)})
    scales = [0.05, 0.1, 0.3, 1.0]
    lat_cfg = DecoderConfig(**wide, acoustic_scale=0.3, lattice_beam=30.0, sweep_acoustic_scales=scales, num_jobs=1)
    dec = WfstDecoder(gdir, lat_cfg)
    differ = 0
    for utt, m in mats.items():
        r = dec.decode_one(utt, m)
        assert r.ok and r.points is not None
        for s in scales:
            ref = WfstDecoder(gdir, DecoderConfig(**wide, acoustic_scale=s)).decode_one(utt, m)
            assert r.points[(s, 0.0)] == ref.word_ids, (utt, s)
        differ += r.points[(0.05, 0.0)] != r.points[(1.0, 0.0)]
    assert differ, "the acoustic scale never changed a hypothesis: the test would not see a broken sweep"


def test_word_penalty_is_lattice_add_penalty(toy, system):
    lang, ctx, gdir = system
    m = _noisy(toy, lang, ctx, ["BIRD", "CAT", "DOG", "CAT"], 7, noise=3.0)
    lat = generate_lattice(WfstDecoder(gdir).fst, m * np.float32(0.2), 30.0, 30.0)
    assert lat is not None
    arcs = word_arcs(lat)
    n_words = sum(1 for a in arcs.values() for x in a if x[1])
    assert n_words > 0
    base_words, _, base_cost = best_path_words(best_path(lat, 1.0))
    pen = add_word_penalty(lat, 2.0, arcs)
    words, _, cost = best_path_words(best_path(pen, 1.0))
    # the penalised best path costs exactly its unpenalised cost + 2 per word, and is at least as cheap
    # (penalised) as the old best path with its words penalised
    assert cost <= base_cost + 2.0 * len(base_words) + 1e-3
    assert len(words) <= len(base_words)
    huge = best_path_words(best_path(add_word_penalty(lat, 1e4, arcs), 1.0))[0]
    assert len(huge) <= len(words) and len(huge) <= 1
    # the original lattice is unchanged (the penalty works on a copy)
    assert best_path_words(best_path(lat, 1.0))[0] == base_words
    pts = sweep(lat, [(0.2, 0.0), (0.2, 2.0)], 0.2)
    assert best_path_words(pts[(0.2, 2.0)])[0] == words


def test_lattice_mode_in_parallel_and_failures(toy, system):
    lang, ctx, gdir = system
    mats = {f"u{i}": _noisy(toy, lang, ctx, ws, 10 + i, noise=0.5)
            for i, ws in enumerate([["CAT"], ["DOG", "BIRD"], ["BIRD", "CAT"]])}
    mats["bad"] = np.zeros((0, ctx.num_pdfs), np.float32)
    cfg = DecoderConfig(lattice_beam=8.0, sweep_acoustic_scales=[0.1, 0.2], sweep_penalties=[0.0, 1.0], num_jobs=2)
    out = decode_matrices(gdir, mats, cfg)
    assert out.hyps == {"u0": ["CAT"], "u1": ["DOG", "BIRD"], "u2": ["BIRD", "CAT"]}
    assert "bad" in out.failures
    assert set(out.results["u1"].points) == {(0.1, 0.0), (0.2, 0.0), (0.1, 1.0), (0.2, 1.0)}


def test_best_point_is_dev_fewest_errors_with_deterministic_ties(tmp_path):
    rows = [{"acoustic_scale": s, "penalty": p, "errors": e}
            for s, p, e in [(0.08, 0.0, 30), (0.1, 0.0, 20), (0.14, 0.0, 12), (0.16, 0.0, 12), (0.14, 1.0, 12),
                            (0.2, 0.5, 15)]]
    write_json(tmp_path / "sweep.json", {"decode_acoustic_scale": 0.1, "points": rows})
    assert best_point(tmp_path / "sweep.json") == (0.14, 0.0)


def test_one_pass_beam_widens_with_the_tuned_scale():
    """--tuned-one-pass at a larger scale than the lattice pass searches with a proportionally wider beam (acoustic
    cost differences grow with the scale); never narrower than the configured beam."""
    from asr_kd.decoding.decode import one_pass_beam

    dc = DecoderConfig(beam=9.0, acoustic_scale=0.14)
    assert one_pass_beam(dc, 0.2) == pytest.approx(9.0 * 0.2 / 0.14, abs=1e-4)
    assert one_pass_beam(dc, 0.14) == 9.0 and one_pass_beam(dc, 0.08) == 9.0
