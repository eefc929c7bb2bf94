"""Tests for data_prep.align.gmm: vectorised diagonal GMMs (scoring, statistics, M-step, splitting, Kaldi I/O)."""

import io

import numpy as np
import pytest
import torch

from data_prep.align.gmm import DiagGmmSet, GmmUpdateConfig, single_gaussian_stats


def _random_set(num_pdfs=4, per_pdf=(1, 3, 2, 1), dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    g2p = torch.cat([torch.full((n,), p) for p, n in enumerate(per_pdf)])
    w = torch.rand(len(g2p), generator=g) + 0.1
    w = w / torch.zeros(num_pdfs).index_add_(0, g2p, w)[g2p]
    return DiagGmmSet(w, torch.randn(len(g2p), dim, generator=g), torch.rand(len(g2p), dim, generator=g) + 0.5,
                      g2p, num_pdfs)


def test_log_likelihoods_match_kaldi_diag_gmm():
    from asr_base.kaldi import kaldi_hmm_gmm

    s = _random_set()
    x = torch.randn(50, s.dim, generator=torch.Generator().manual_seed(1))
    ours = s.log_likelihoods(x).numpy()
    for p in range(s.num_pdfs):
        m = s.gauss2pdf == p
        k = kaldi_hmm_gmm.DiagGmm(int(m.sum()), s.dim)
        k.set_weights(s.weights[m].numpy())
        k.set_invvars_and_means((1 / s.vars[m]).numpy(), s.means[m].numpy())
        k.compute_gconsts()
        ref = np.array([k.log_likelihood(row) for row in x.numpy()])
        np.testing.assert_allclose(ours[:, p], ref, rtol=1e-4, atol=1e-3)
    # a subset of pdfs (an utterance's graph) scores only their Gaussians, to the same bits
    pdfs = np.arange(s.num_pdfs)[1::2]
    assert np.array_equal(s.log_likelihoods(x, pdfs).numpy(), ours[:, pdfs])
    assert s.log_likelihoods(x, np.array([], dtype=np.int64)).shape == (50, 0)


def test_accumulate_single_gaussian_equals_hard_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    lab = rng.integers(-1, 4, size=200)
    hard = single_gaussian_stats(x, lab, 4)
    s = DiagGmmSet.from_single_stats(hard)
    soft = s.accumulate(x, lab)
    np.testing.assert_allclose(soft.occ.numpy(), hard.occ.numpy(), rtol=1e-6)
    np.testing.assert_allclose(soft.sum.numpy(), hard.sum.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(soft.sumsq.numpy(), hard.sumsq.numpy(), rtol=1e-5, atol=1e-5)
    assert soft.frames == int((lab >= 0).sum())
    # means are the class means
    for p in range(4):
        np.testing.assert_allclose(s.means[p].numpy(), x[lab == p].mean(0), atol=1e-5)


def test_split_and_em_recover_two_component_mixture():
    rng = np.random.default_rng(0)
    true_means = np.array([[-3.0, 0.0], [3.0, 1.0]])
    comp = rng.integers(0, 2, size=4000)
    x = (true_means[comp] + rng.normal(size=(4000, 2)) * 0.5).astype(np.float32)
    lab = np.zeros(4000, dtype=np.int64)
    s = DiagGmmSet.from_single_stats(single_gaussian_stats(x, lab, 1))
    cfg = GmmUpdateConfig(perturb=0.5)
    s = s.split(2, torch.tensor([4000.0]), cfg, torch.Generator().manual_seed(0))
    assert s.num_gauss == 2
    prev = -np.inf
    for _ in range(30):
        st = s.accumulate(x, lab)
        assert st.avg_loglik >= prev - 1e-4  # EM never decreases the likelihood
        prev = st.avg_loglik
        s = s.update(st, cfg)
    got = s.means.numpy()[np.argsort(s.means.numpy()[:, 0])]
    np.testing.assert_allclose(got, true_means, atol=0.1)
    np.testing.assert_allclose(np.sort(s.weights.numpy()), np.sort(np.bincount(comp) / 4000), atol=0.03)


def test_split_distributes_by_occupancy_and_respects_min_count():
    s = _random_set(num_pdfs=3, per_pdf=(1, 1, 1))
    occ = torch.tensor([10000.0, 100.0, 10.0])
    out = s.split(12, occ, GmmUpdateConfig(split_min_count=20.0), torch.Generator().manual_seed(0))
    per = out.gauss_per_pdf().tolist()
    assert per[0] > per[1] >= per[2] == 1  # the pdf with 10 frames cannot afford a second Gaussian
    assert per[1] <= 5  # at most occ / min_count
    assert bool((out.gauss2pdf[1:] >= out.gauss2pdf[:-1]).all())
    w = torch.zeros(3).index_add_(0, out.gauss2pdf, out.weights)
    np.testing.assert_allclose(w.numpy(), 1.0, rtol=1e-5)


def test_kaldi_binary_round_trip():
    s = _random_set()
    buf = io.BytesIO()
    s.write_kaldi(buf)
    data = buf.getvalue()
    assert data.startswith(b"<DIMENSION> \x04")
    r = DiagGmmSet.read_kaldi(io.BytesIO(data))
    assert r.num_pdfs == s.num_pdfs and torch.equal(r.gauss2pdf, s.gauss2pdf)
    np.testing.assert_allclose(r.means.numpy(), s.means.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.vars.numpy(), s.vars.numpy(), rtol=1e-5)
    x = torch.randn(7, s.dim)
    np.testing.assert_allclose(r.log_likelihoods(x).numpy(), s.log_likelihoods(x).numpy(), rtol=1e-5, atol=1e-4)


def test_read_kaldi_rejects_garbage():
    with pytest.raises(ValueError, match="expected token '<DIMENSION>'"):
        DiagGmmSet.read_kaldi(io.BytesIO(b"<NUMPDFS> \x04\x00\x00\x00\x00"))
    data = io.BytesIO()
    _random_set().write_kaldi(data)
    with pytest.raises(ValueError, match="truncated"):
        DiagGmmSet.read_kaldi(data.getvalue()[:-10])


def _dense_accumulate(s, x, lab):
    """Reference: posteriors over all Gaussians masked to the frame's pdf (O(T * G))."""
    x = torch.as_tensor(x, dtype=torch.float32)
    lab = torch.as_tensor(lab, dtype=torch.int64)
    keep = lab >= 0
    x, lab = x[keep], lab[keep]
    gl = s.gauss_loglik(x).masked_fill(s.gauss2pdf[None, :] != lab[:, None], -torch.inf)
    fll = torch.logsumexp(gl, 1)
    post = torch.exp(gl - fll[:, None]).double()
    return post.sum(0), post.T @ x.double(), post.T @ (x.double() ** 2), float(fll.double().sum())


def test_accumulate_per_pdf_matches_dense_reference_and_pdf_loglik_matches_scatter():
    s = _random_set(num_pdfs=5, per_pdf=(1, 3, 2, 4, 1), dim=6, seed=3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    lab = rng.integers(-1, 5, size=300)
    lab[lab == 4] = 3  # pdf 4 unseen: its stats stay zero
    st = s.accumulate(x, lab)
    occ, sm, sq, ll = _dense_accumulate(s, x, lab)
    np.testing.assert_allclose(st.occ.numpy(), occ.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st.sum.numpy(), sm.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(st.sumsq.numpy(), sq.numpy(), rtol=1e-4, atol=1e-4)
    assert st.loglik == pytest.approx(ll, rel=1e-5)
    assert st.occ[-1] == 0 and st.frames == int((lab >= 0).sum())
    gl = s.gauss_loglik(torch.from_numpy(x))
    np.testing.assert_allclose(s.pdf_loglik_from_gauss(gl).numpy(), s._pdf_loglik_scatter(gl).numpy(),
                               rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError):
        s.accumulate(x[:3], np.array([0, 1, 7]))
