"""HCLG construction: a toy 3-word system (monophone tree) whose graph must decode spelled sequences.

The helpers ``build_toy`` and ``spell`` are shared with test_decoder / test_decoder_hook / test_export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr_kd.kaldi import kaldifst  # noqa: F401  (import order, see asr_kd.kaldi)
from asr_kd import graph
from asr_kd.lm import LMConfig, estimate

LEXICON = {"CAT": [("K", "AE", "T")], "DOG": [("D", "AO", "G")], "BIRD": [("B", "ER", "D")]}
LM_TEXT = [["CAT", "DOG"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["CAT"]]


def build_toy(root: Path, order: int = 2, force: bool = False):
    """lang dir (data_prep.lang.write_lang_dir) + monophone tree + ARPA + HCLG under ``root``."""
    from data_prep.lang import write_lang_dir

    lang = write_lang_dir(LEXICON, root / "lang", sil_prob=0.5)
    ctx = graph.monophone_context_dependency(lang)
    if not (root / "tree").is_file():
        ctx.write(True, str(root / "tree"))
    estimate(LM_TEXT, LMConfig(order=order)).write_arpa(root / "lm.arpa")
    graph.build_graph(graph.GraphInputs(root / "lang", root / "lm.arpa", root / "tree"), root / "graph", force=force)
    return lang, ctx, root / "graph"


def state_pdfs(lang, ctx, phone: str) -> list[int]:
    pid = lang.phones[phone]
    out = []
    for c in range(lang.num_pdf_classes(pid)):
        ok, pdf = ctx.compute([pid], c)
        assert ok
        out.append(pdf)
    return out


def spell(lang, ctx, words, num_pdfs: int, rng: np.random.Generator, sil_between: bool = False,
          floor: float = -8.0) -> np.ndarray:
    """Log-likelihoods (frames, pdfs) spelling SIL + the words' phones (+ SIL between words) + SIL:
    each HMM state holds 1-4 frames with log-likelihood 0 for its pdf and ~``floor`` elsewhere."""
    phones = ["SIL"]
    for i, w in enumerate(words):
        phones += list(lang.lexicon[w][0])
        if sil_between and i < len(words) - 1:
            phones.append("SIL")
    phones.append("SIL")
    rows = [pdf for ph in phones for pdf in state_pdfs(lang, ctx, ph) for _ in range(int(rng.integers(1, 5)))]
    m = floor + 0.5 * rng.standard_normal((len(rows), num_pdfs)).astype(np.float32)
    m[np.arange(len(rows)), rows] = 0.0
    return m.astype(np.float32)


def test_toy_graph_labels_and_manifest(tmp_path):
    lang, ctx, gdir = build_toy(tmp_path)
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
    assert {words[w] for w in LEXICON} <= olabels
    assert words["#0"] not in olabels  # disambiguation symbols are gone
    assert fst.is_ilabel_sorted
    man = graph.read_json(gdir / "manifest.json")
    assert set(man["inputs"]) >= {"arpa", "tree", "L_disambig.fst", "words.txt"}
    assert man["stats"]["HCLG"]["arcs"] == graph.num_arcs(fst)


def graph_words(gdir: Path) -> list[str]:
    from asr_kd.decoder import read_words

    return read_words(gdir / "words.txt")


def test_toy_graph_decodes_spelled_sequences(tmp_path):
    from asr_kd.decoder import DecoderConfig, WfstDecoder

    lang, ctx, gdir = build_toy(tmp_path)
    dec = WfstDecoder(gdir, DecoderConfig())
    words = graph_words(gdir)
    rng = np.random.default_rng(0)
    seqs = [["CAT"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["DOG", "DOG", "CAT", "BIRD"], ["BIRD", "BIRD"]]
    for seq in seqs:
        for sil in (False, True):
            r = dec.decode_one("u", spell(lang, ctx, seq, dec.num_pdfs, rng, sil_between=sil))
            assert r.ok and r.status == "ok", r
            assert [words[w] for w in r.word_ids] == seq


def test_cache_rebuilds_only_on_change(tmp_path):
    build_toy(tmp_path)
    hclg = tmp_path / "graph" / "HCLG.fst"
    t0 = hclg.stat().st_mtime_ns
    build_toy(tmp_path)  # same inputs (the ARPA is rewritten with identical content)
    assert hclg.stat().st_mtime_ns == t0
    build_toy(tmp_path, order=3)  # a different LM -> different checksum -> rebuilt
    assert hclg.stat().st_mtime_ns != t0
    man = graph.read_json(tmp_path / "graph" / "manifest.json")
    assert man["inputs"]["arpa"] == graph.sha256_file(tmp_path / "lm.arpa")


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


def test_missing_and_bad_inputs(tmp_path):
    lang, ctx, gdir = build_toy(tmp_path)
    with pytest.raises(FileNotFoundError, match="arpa"):
        graph.build_graph(graph.GraphInputs(tmp_path / "lang", tmp_path / "nope.arpa", tmp_path / "tree"),
                          tmp_path / "g2")
    (tmp_path / "bad_tree").write_bytes(b"\0Bsomething else")
    with pytest.raises(ValueError, match="not a Kaldi binary tree"):
        graph.load_context_dependency(tmp_path / "bad_tree")
    loaded = graph.load_context_dependency(tmp_path / "tree")
    assert loaded.num_pdfs == ctx.num_pdfs
