"""Shared fixtures of the decision-tree tests: a small lang and synthetic triphone-state statistics."""

import numpy as np
import pytest

from data_prep.align.tree.stats import TreeStats
from data_prep.lang.lang_dir import write_lang_dir

PHONES = ["AA", "IY", "K", "M", "S", "T"]
D = 4


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    lex = {"KAT": [("K", "AA", "T")], "SIM": [("S", "IY", "M")], "MAT": [("M", "AA", "T")], "TIK": [("T", "IY", "K")]}
    return write_lang_dir(lex, tmp_path_factory.mktemp("tree") / "lang", PHONES, sil_prob=0.5)


def _synth_frames(lang, n=60000, seed=0, shift=3.0):
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


def _k1_pdfs(lang, tree, left_ids):
    """pdfs of K's middle state after each left phone (rows) and every right context (columns)."""
    ids = np.array(lang.real_phone_ids)
    ctx = np.concatenate([[0], ids])
    keys = np.array([(l, lang.phones["K"], r, 1) for l in left_ids for r in ctx])
    return tree.lookup(keys).reshape(len(left_ids), len(ctx))


@pytest.fixture(scope="session")
def synth_frames():
    return _synth_frames


@pytest.fixture(scope="session")
def k1_pdfs():
    return _k1_pdfs


@pytest.fixture(scope="session")
def tree_phones():
    return PHONES


@pytest.fixture(scope="module")
def stats(lang):
    return TreeStats.from_frames(*_synth_frames(lang))
