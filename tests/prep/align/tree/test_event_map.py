"""TiedStateTree vs Kaldi: same pdfs as ContextDependency.compute, byte-identical tree files, clear read errors."""

import numpy as np
import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from asr_base.kaldi_binary import KaldiFormatError
from data_prep.align.tree.build import build_tree
from data_prep.align.tree.event_map import TiedStateTree, all_contexts
from data_prep.lang.lang_dir import load_topology


def test_kaldi_compatibility(lang, stats, tmp_path):
    tree = build_tree(stats, lang, num_leaves=150, min_count=20)
    ctx = tree.to_context_dependency()
    assert ctx.num_pdfs == tree.num_pdfs and ctx.context_width == 3 and ctx.central_position == 1
    keys = all_contexts(lang)
    rng = np.random.default_rng(4)
    sample = keys[rng.choice(len(keys), 1500, replace=False)]
    ours = tree.lookup(sample)
    for (l, p, r, c), pdf in zip(sample.tolist(), ours.tolist()):
        ok, kaldi_pdf = ctx.compute([l, p, r], c)
        assert ok and kaldi_pdf == pdf
    topo = load_topology(lang)
    tm = kaldi_hmm_gmm.TransitionModel(ctx, topo)
    assert tm.num_pdfs == tree.num_pdfs
    # Kaldi's own writer produces exactly our bytes; read() gives the same tree back
    tree.write(tmp_path / "tree")
    ctx.write(True, str(tmp_path / "tree.kaldi"))
    assert (tmp_path / "tree").read_bytes() == (tmp_path / "tree.kaldi").read_bytes()
    back = TiedStateTree.read(tmp_path / "tree")
    np.testing.assert_array_equal(back.lookup(keys), tree.lookup(keys))
    assert back.num_pdfs == tree.num_pdfs
    # a disambiguation symbol is not a phone: Kaldi cannot map it either
    assert tree.lookup([[0, lang.disambig_phone_ids[0], 0, 0]])[0] == -1
    # training graph for a word sequence through L.fst
    opts = kaldi_hmm_gmm.TrainingGraphCompilerOptions()
    gc = kaldi_hmm_gmm.TrainingGraphCompiler(tm, ctx, lang.load_l_fst(False), lang.disambig_phone_ids, opts)
    graph = gc.compile_graph_from_text([lang.words["KAT"], lang.words["SIM"]])
    assert graph.num_states > 0
    pdfs = {tm.transition_id_to_pdf(a.ilabel) for a in _all_arcs(graph) if a.ilabel > 0}
    assert pdfs and max(pdfs) < tree.num_pdfs


def _all_arcs(fst):
    for s in range(fst.num_states):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            yield it.value
            it.next()


def test_bad_tree_files_are_refused(lang, stats, tmp_path):
    tree = build_tree(stats, lang, num_leaves=60, min_count=20)
    data = tree.to_kaldi_bytes()
    assert TiedStateTree.from_kaldi_bytes(data).num_pdfs == tree.num_pdfs
    with pytest.raises(KaldiFormatError, match="truncated"):
        TiedStateTree.from_kaldi_bytes(data[:len(data) // 2])
    with pytest.raises(KaldiFormatError, match="expected token 'ContextDependency'"):
        TiedStateTree.from_kaldi_bytes(b"ContextDependencY " + data[len("ContextDependency "):])
    (tmp_path / "tree.txt").write_text("ContextDependency 3 1 ToPdf ...")
    with pytest.raises(KaldiFormatError, match="not a Kaldi binary file"):
        TiedStateTree.read(tmp_path / "tree.txt")
