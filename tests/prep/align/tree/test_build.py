"""build_tree on synthetic Gaussians: splitting, merging, limits, shared roots, phones without data."""

import numpy as np
import pytest

from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.align.tree.build import build_tree
from data_prep.align.tree.event_map import all_contexts
from data_prep.align.tree.stats import TreeStats
from data_prep.lang.lang_dir import load_topology

D = 4


def test_tree_separates_different_and_merges_identical_contexts(lang, stats, k1_pdfs):
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


def test_leaf_merging_undoes_noise_splits(lang, stats, k1_pdfs):
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


def test_exactly_identical_statistics_never_split(lang, k1_pdfs):
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


def test_phone_without_statistics_still_gets_pdfs(lang, synth_frames):
    left, center, right, pdf_class, feats = synth_frames(lang, n=5000, seed=5)
    keep = center != lang.phones["T"]
    st = TreeStats.from_frames(left[keep], center[keep], right[keep], pdf_class[keep], feats[keep])
    tree = build_tree(st, lang, num_leaves=50, min_count=20)
    assert (tree.lookup(all_contexts(lang)) >= 0).all()
    assert tree.info["pdfs_without_stats"] == 3
    kaldi_hmm_gmm.TransitionModel(tree.to_context_dependency(), load_topology(lang))
