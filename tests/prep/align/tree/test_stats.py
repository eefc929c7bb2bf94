"""TreeStats accumulation (vs brute force, chunked, weighted, merged), save/load, the Gaussian objective."""

import numpy as np
import pytest

from data_prep.align.tree.stats import TreeStats, gaussian_loglik


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
