"""HCLG construction: a toy 3-word system (monophone tree, ``toy`` fixture of conftest.py) whose graph must
decode spelled sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr_base.io import read_json
from asr_base.kaldi import kaldifst  # noqa: F401  (import order, see asr_base.kaldi)
from asr_base.stamp import path_digest
from asr_kd.decoding import graph


def test_toy_graph_labels_and_manifest(toy, tmp_path):
    lang, ctx, gdir = toy.build(tmp_path)
    fst = kaldifst.StdVectorFst.read(str(gdir / "HCLG.fst"))
    num_pdfs = int((gdir / "num_pdfs").read_text())
    assert num_pdfs == ctx.num_pdfs
    ilabels, olabels = set(), set()
    for s in range(fst.num_states):
        for a in kaldifst.ArcIterator(fst, s):
            ilabels.add(a.ilabel)
            olabels.add(a.olabel)
    assert max(ilabels) <= num_pdfs and min(ilabels) >= 0
    assert len(ilabels - {0}) == num_pdfs  # every pdf of the 3 words + silence/noise phones is reachable
    words = {w: i for i, w in enumerate(graph_words(gdir))}
    assert {words[w] for w in toy.LEXICON} <= olabels
    assert words["#0"] not in olabels  # disambiguation symbols are gone
    assert fst.is_ilabel_sorted
    man = read_json(gdir / "manifest.json")
    assert set(man["inputs"]) >= {"arpa", "tree", "L_disambig.fst", "words.txt"}
    assert man["stats"]["HCLG"]["arcs"] == graph.num_arcs(fst)


def graph_words(gdir: Path) -> list[str]:
    from asr_kd.decoding.decoder import read_words

    return read_words(gdir / "words.txt")


def test_toy_graph_decodes_spelled_sequences(toy, tmp_path):
    from asr_kd.decoding.decoder import DecoderConfig, WfstDecoder

    lang, ctx, gdir = toy.build(tmp_path)
    dec = WfstDecoder(gdir, DecoderConfig())
    words = graph_words(gdir)
    rng = np.random.default_rng(0)
    seqs = [["CAT"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["DOG", "DOG", "CAT", "BIRD"], ["BIRD", "BIRD"]]
    for seq in seqs:
        for sil in (False, True):
            r = dec.decode_one("u", toy.spell(lang, ctx, seq, dec.num_pdfs, rng, sil_between=sil))
            assert r.ok and r.status == "ok", r
            assert [words[w] for w in r.word_ids] == seq


def test_cache_rebuilds_only_on_change(toy, tmp_path, caplog):
    toy.build(tmp_path)
    hclg = tmp_path / "graph" / "HCLG.fst"
    t0 = hclg.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="asr_base.stamp"):
        toy.build(tmp_path)  # same inputs (the ARPA is rewritten with identical content)
        assert hclg.stat().st_mtime_ns == t0 and "up to date" in caplog.text
        caplog.clear()
        toy.build(tmp_path, order=3)  # a different LM -> different digest -> rebuilt, and the log says why
        assert hclg.stat().st_mtime_ns != t0 and "input changed: arpa" in caplog.text
        man = read_json(tmp_path / "graph" / "manifest.json")
        assert man["inputs"]["arpa"] == path_digest(tmp_path / "lm.arpa")
        t1 = hclg.stat().st_mtime_ns
        caplog.clear()
        inputs = graph.GraphInputs(tmp_path / "lang", tmp_path / "lm.arpa", tmp_path / "tree")
        graph.build_graph(inputs, tmp_path / "graph", graph.GraphConfig(self_loop_scale=0.2))  # a changed option
        assert hclg.stat().st_mtime_ns != t1 and "option changed: self_loop_scale 0.1 -> 0.2" in caplog.text


def test_map_input_labels():
    fst = kaldifst.StdVectorFst()
    s0, s1 = fst.add_state(), fst.add_state()
    fst.start = s0
    fst.set_final(s1, 0.0)
    fst.add_arc(s0, kaldifst.StdArc(1, 5, 0.5, s1))
    fst.add_arc(s0, kaldifst.StdArc(2, 6, 1.5, s1))
    fst.add_arc(s1, kaldifst.StdArc(0, 7, 0.25, s0))  # epsilon input stays epsilon
    out = graph.map_input_labels(fst, np.array([0, 10, 0]))  # 2 -> epsilon (like disambiguation removal)
    assert out.num_states == fst.num_states and graph.num_arcs(out) == graph.num_arcs(fst)
    arcs = sorted((s, a.ilabel, a.olabel, round(a.weight.value, 3), a.nextstate)
                  for s in range(out.num_states) for a in kaldifst.ArcIterator(out, s))
    start = out.start
    assert sorted((a, b, c, d) for _, a, b, c, d in arcs if _ == start) == [(0, 6, 1.5, 1 - start), (10, 5, 0.5, 1 - start)]
    assert [a.ilabel for a in kaldifst.ArcIterator(fst, s0)] == [1, 2]  # the input is untouched
    with pytest.raises(ValueError):
        graph.map_input_labels(fst, np.array([1, 2, 3]))


def test_missing_and_bad_inputs(toy, tmp_path):
    lang, ctx, gdir = toy.build(tmp_path)
    with pytest.raises(FileNotFoundError, match="arpa"):
        graph.build_graph(graph.GraphInputs(tmp_path / "lang", tmp_path / "nope.arpa", tmp_path / "tree"),
                          tmp_path / "g2")
    (tmp_path / "bad_tree").write_bytes(b"\0Bsomething else")
    with pytest.raises(ValueError, match="not a Kaldi binary tree"):
        graph.load_context_dependency(tmp_path / "bad_tree")
    loaded = graph.load_context_dependency(tmp_path / "tree")
    assert loaded.num_pdfs == ctx.num_pdfs
