"""Decision tree: statistics, questions, splitting/merging on synthetic Gaussians, Kaldi compatibility."""

import numpy as np
import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.align.decision_tree import (
    Questions,
    TiedStateTree,
    TreeStats,
    all_contexts,
    build_tree,
    cluster_phone_questions,
    default_questions,
    gaussian_loglik,
)
from data_prep.lang.lang_dir import load_topology, write_lang_dir

PHONES = ["AA", "IY", "K", "M", "S", "T"]
D = 4


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    lex = {"KAT": [("K", "AA", "T")], "SIM": [("S", "IY", "M")], "MAT": [("M", "AA", "T")], "TIK": [("T", "IY", "K")]}
    return write_lang_dir(lex, tmp_path_factory.mktemp("tree") / "lang", PHONES, sil_prob=0.5)


def synth_frames(lang, n=60000, seed=0, shift=3.0):
    """Frames of random triphone states. Only K (pdf class 1) depends on context: a left S or M shifts it."""
    rng = np.random.default_rng(seed)
    ids = np.array(lang.real_phone_ids)
    ctx = np.concatenate([[0], ids])
    center = rng.choice(ids, n)
    left, right = rng.choice(ctx, n), rng.choice(ctx, n)
    ncls = np.array([lang.num_pdf_classes(int(c)) for c in center])
    pdf_class = (rng.random(n) * ncls).astype(np.int64)
    mean = np.stack([center * 1.5, pdf_class * 2.0, np.zeros(n), np.zeros(n)], 1)
    special = (center == lang.phones["K"]) & (pdf_class == 1) & np.isin(left, [lang.phones["S"], lang.phones["M"]])
    mean[special, 2] += shift
    feats = mean + rng.standard_normal((n, D))
    return left, center, right, pdf_class, feats


@pytest.fixture(scope="module")
def stats(lang):
    return TreeStats.from_frames(*synth_frames(lang))


def k1_pdfs(lang, tree, left_ids):
    ids = np.array(lang.real_phone_ids)
    ctx = np.concatenate([[0], ids])
    keys = np.array([(l, lang.phones["K"], r, 1) for l in left_ids for r in ctx])
    return tree.lookup(keys).reshape(len(left_ids), len(ctx))


def test_from_frames_matches_brute_force_and_merge():
    rng = np.random.default_rng(1)
    n = 500
    cols = [rng.integers(0, 3, n), rng.integers(1, 3, n), rng.integers(0, 2, n), rng.integers(0, 3, n)]
    x = rng.standard_normal((n, 3))
    st = TreeStats.from_frames(*cols, x)
    keys = np.stack(cols, 1)
    for row, k in enumerate(st.keys):
        sel = (keys == k).all(1)
        assert st.counts[row] == sel.sum()
        np.testing.assert_allclose(st.sums[row], x[sel].sum(0))
        np.testing.assert_allclose(st.sumsqs[row], (x[sel] ** 2).sum(0))
    assert st.counts.sum() == n and len(np.unique(st.keys, axis=0)) == len(st)
    chunked = TreeStats.from_frames(*cols, x.astype(np.float16), chunk=64)  # chunked accumulation, float16 input
    np.testing.assert_array_equal(chunked.keys, st.keys)
    np.testing.assert_allclose(chunked.sums, TreeStats.from_frames(*cols, x.astype(np.float16)).sums)
    np.testing.assert_allclose(chunked.sums, st.sums, atol=0.05)
    weighted = TreeStats.from_frames(*cols, x, weights=np.full(n, 0.5))
    np.testing.assert_allclose(weighted.counts, st.counts / 2)
    np.testing.assert_allclose(weighted.sumsqs, st.sumsqs / 2)
    a = TreeStats.from_frames(*[c[:200] for c in cols], x[:200])
    b = TreeStats.from_frames(*[c[200:] for c in cols], x[200:])
    m = a.merge(b)
    np.testing.assert_array_equal(m.keys, st.keys)
    np.testing.assert_allclose(m.sums, st.sums)
    np.testing.assert_allclose(m.sumsqs, st.sumsqs)
    with pytest.raises(ValueError):
        TreeStats.from_frames(cols[0][:10], *cols[1:], x)


def test_stats_save_load(tmp_path, stats):
    stats.save(tmp_path / "s.npz")
    back = TreeStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.keys, stats.keys)
    np.testing.assert_array_equal(back.sums, stats.sums)


def test_gaussian_loglik_matches_direct_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (1000, 3))
    mu, var = x.mean(0), x.var(0)
    direct = (-0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)).sum()
    assert np.isclose(gaussian_loglik(len(x), x.sum(0), (x**2).sum(0), 1e-6), direct)


def test_tree_separates_different_and_merges_identical_contexts(lang, stats):
    tree = build_tree(stats, lang, num_leaves=200, min_count=20, min_gain=40.0)
    s, m = lang.phones["S"], lang.phones["M"]
    others = [0] + [lang.phones[p] for p in ("AA", "IY", "K", "T")] + lang.silence_phone_ids
    shifted = k1_pdfs(lang, tree, [s, m])
    plain = k1_pdfs(lang, tree, others)
    assert len(np.unique(shifted)) == 1 and len(np.unique(plain)) == 1  # identical statistics: same leaf
    assert shifted[0, 0] != plain[0, 0]  # different statistics: separated
    # every other (phone, pdf class) keeps exactly one pdf: nothing to separate there
    keys = all_contexts(lang)
    pdfs = tree.lookup(keys)
    assert (pdfs >= 0).all()
    for p in lang.real_phone_ids:
        for c in range(lang.num_pdf_classes(p)):
            sel = (keys[:, 1] == p) & (keys[:, 3] == c)
            expected = 2 if (p == lang.phones["K"] and c == 1) else 1
            assert len(np.unique(pdfs[sel])) == expected, (lang.phone_names[p], c)
    initial = sum(lang.num_pdf_classes(p) for p in lang.real_phone_ids)
    assert tree.num_pdfs == initial + 1
    # pdfs of different (phone, pdf class) are never shared
    owner = {}
    for (l, p, r, c), pdf in zip(keys, pdfs):
        assert owner.setdefault(int(pdf), (p, c)) == (p, c)


def test_leaf_merging_undoes_noise_splits(lang, stats):
    split_only = build_tree(stats, lang, num_leaves=120, min_count=20, cluster_thresh=-1)
    merged = build_tree(stats, lang, num_leaves=120, min_count=20, cluster_thresh=60.0)
    assert split_only.info["num_leaves_split"] == 120 and split_only.num_pdfs == 120
    assert merged.num_pdfs < split_only.num_pdfs
    s, m = lang.phones["S"], lang.phones["M"]
    others = [0] + [lang.phones[p] for p in ("AA", "IY", "K", "T")]
    assert len(np.unique(k1_pdfs(lang, merged, others))) == 1
    assert len(np.unique(k1_pdfs(lang, merged, [s, m]))) == 1
    assert k1_pdfs(lang, merged, [s])[0, 0] != k1_pdfs(lang, merged, others)[0, 0]


def test_limits_num_leaves_and_min_count(lang, stats):
    for num_leaves, min_count in ((60, 50.0), (150, 200.0)):
        tree = build_tree(stats, lang, num_leaves=num_leaves, min_count=min_count, cluster_thresh=-1)
        assert tree.info["num_leaves_split"] <= num_leaves
        assert tree.num_pdfs <= num_leaves
        assert tree.pdf_counts.min() >= min_count
        assert tree.pdf_counts.sum() == pytest.approx(stats.counts.sum())
    big = build_tree(stats, lang, num_leaves=10000, min_count=400.0, cluster_thresh=-1)
    assert big.pdf_counts.min() >= 400.0  # min_count stopped the splitting, not num_leaves
    assert big.info["num_leaves_split"] < 10000


def test_exactly_identical_statistics_never_split(lang):
    k = lang.phones["K"]
    rows, counts, sums, sqs = [], [], [], []
    for left in [0, *lang.real_phone_ids]:
        for c in range(3):
            rows.append((left, k, 0, c))
            counts.append(100.0)
            sums.append(np.full(D, 10.0 * c))
            sqs.append(np.full(D, 100.0 + 5 * c))
    st = TreeStats(np.array(rows), np.array(counts), np.array(sums), np.array(sqs))
    tree = build_tree(st, lang, num_leaves=500, min_count=1)
    assert tree.info["num_leaves_split"] == tree.info["initial_leaves"]
    assert len(np.unique(k1_pdfs(lang, tree, [0, *lang.real_phone_ids]))) == 1


def test_shared_roots_ask_about_pdf_class(lang, stats):
    tree = build_tree(stats, lang, num_leaves=200, min_count=20, min_gain=40.0, split_pdf_classes_first=False)
    keys = all_contexts(lang)
    pdfs = tree.lookup(keys)
    for p in lang.real_phone_ids:  # the state means differ, so the tree split every root by pdf class
        per_class = [set(pdfs[(keys[:, 1] == p) & (keys[:, 3] == c)]) for c in range(lang.num_pdf_classes(p))]
        for a in range(len(per_class)):
            for b in range(a + 1, len(per_class)):
                assert not per_class[a] & per_class[b]
    ctx = tree.to_context_dependency()
    tm = kaldi_hmm_gmm.TransitionModel(ctx, load_topology(lang))
    assert tm.num_pdfs == tree.num_pdfs


def test_cluster_phone_questions_find_groups(lang):
    rng = np.random.default_rng(3)
    ids = np.array([lang.phones[p] for p in PHONES])
    n = 30000
    center = rng.choice(ids, n)
    group_a = np.isin(center, [lang.phones[p] for p in ("AA", "IY", "M")])
    feats = rng.standard_normal((n, D)) + np.where(group_a, 4.0, -4.0)[:, None]
    st = TreeStats.from_frames(np.zeros(n), center, np.zeros(n), np.ones(n), feats)
    q = cluster_phone_questions(st, lang)
    a = tuple(sorted(lang.phones[p] for p in ("AA", "IY", "M")))
    b = tuple(sorted(lang.phones[p] for p in ("K", "S", "T")))
    assert q.phone_sets[0] in (a, b) and q.phone_sets[1] in (a, b)
    assert all(len(s) >= 1 for s in q.phone_sets) and len(q.phone_sets) == 2 * (len(PHONES) - 1)
    full = default_questions(st, lang)
    assert (0,) in full.phone_sets and (1,) in full.pdf_class_sets
    assert Questions.from_json(full.to_json()).phone_sets == full.phone_sets


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


def test_phone_without_statistics_still_gets_pdfs(lang):
    left, center, right, pdf_class, feats = synth_frames(lang, n=5000, seed=5)
    keep = center != lang.phones["T"]
    st = TreeStats.from_frames(left[keep], center[keep], right[keep], pdf_class[keep], feats[keep])
    tree = build_tree(st, lang, num_leaves=50, min_count=20)
    assert (tree.lookup(all_contexts(lang)) >= 0).all()
    assert tree.info["pdfs_without_stats"] == 3
    kaldi_hmm_gmm.TransitionModel(tree.to_context_dependency(), load_topology(lang))


def test_arpabet_questions_group_stress_variants(tmp_path):
    from data_prep.align.decision_tree import arpabet_questions

    lang = write_lang_dir({"X": [("AH0", "B")], "Y": [("AH1", "K")], "Z": [("S", "IY2")]}, tmp_path / "lang")
    questions = arpabet_questions(lang)
    q = dict(zip(questions.names, questions.phone_sets))
    ids = lang.phones
    assert tuple(sorted((ids["AH0"], ids["AH1"]))) in questions.phone_sets  # AH with its stress variants
    assert set(q["vowel"]) == {ids["AH0"], ids["AH1"], ids["IY2"]}
    assert set(q["voiced_stop"]) == {ids["B"]}
    assert "nasal" not in q  # no phone of the class in this lang
