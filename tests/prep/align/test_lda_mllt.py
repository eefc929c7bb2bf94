"""tri2's front end (splice + matrix), LDA and MLLT estimation against their definitions, and ``data-prep align
--lda-mllt`` end to end."""

import json

import numpy as np
import pytest
import torch

from data_prep.align.front_end import FrontEnd, read_kaldi_matrix, splice_frames, write_kaldi_matrix
from data_prep.align.gmm import DiagGmmSet, single_gaussian_stats
from data_prep.align.lda_mllt import LdaStats, estimate_lda, estimate_mllt


def test_splice_clamps_at_each_utterance_and_the_matrix_follows():
    rng = np.random.default_rng(0)
    lengths = np.array([1, 4, 9])
    x = rng.standard_normal((lengths.sum(), 3)).astype(np.float32)
    got = splice_frames(x, lengths, 2)
    assert got.shape == (lengths.sum(), 15)
    starts = np.cumsum(lengths) - lengths
    for s, n in zip(starts, lengths):  # splice-feats, frame by frame
        for t in range(n):
            want = np.concatenate([x[s + min(max(t + j, 0), n - 1)] for j in range(-2, 3)])
            np.testing.assert_array_equal(got[s + t], want)
    m = rng.standard_normal((4, 15))
    np.testing.assert_allclose(FrontEnd(splice=2, matrix=m).apply(x, lengths), got @ m.T.astype(np.float32),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        FrontEnd(deltas=2, splice=3)


def test_kaldi_matrix_round_trip(tmp_path):
    m = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    write_kaldi_matrix(tmp_path / "lda.mat", m)
    assert (tmp_path / "lda.mat").read_bytes()[:5] == b"\0BFM "
    np.testing.assert_array_equal(read_kaldi_matrix(tmp_path / "lda.mat"), m.astype(np.float32))


def test_lda_whitens_the_within_class_scatter_and_finds_the_class_direction():
    rng = np.random.default_rng(1)
    k, d, n = 6, 8, 30000
    means = np.zeros((k, d))
    means[:, 0] = np.arange(k) * 2.0  # the classes differ along one direction only
    mix = rng.standard_normal((d, d))
    y = rng.integers(0, k, n)
    x = (means[y] + rng.standard_normal((n, d))) @ mix  # ... which the mixing hides in every dimension
    labels = y.copy()
    labels[:500] = -1  # silence: left out
    st = LdaStats.zeros(k, d).accumulate(x[:10000], labels[:10000]).accumulate(x[10000:], labels[10000:])
    m, eig = estimate_lda(st, 3)
    assert m.shape == (3, d) and eig[0] > 100 * eig[1]
    z = x[500:] @ m.T
    yk = y[500:]
    within = sum(np.cov(z[yk == c].T, bias=True) * (yk == c).sum() for c in range(k)) / yk.size
    np.testing.assert_allclose(within, np.eye(3), atol=0.02)
    class_means = np.array([z[yk == c, 0].mean() for c in range(k)])
    assert abs(np.corrcoef(class_means, np.arange(k))[0, 1]) > 0.999  # the first output is the class direction
    with pytest.raises(ValueError, match="dimension"):
        estimate_lda(st, d + 1)


def test_mllt_statistics_are_their_definition():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((300, 3)).astype(np.float32))
    lab = torch.from_numpy(rng.integers(0, 2, 300))
    gmm = DiagGmmSet.from_single_stats(single_gaussian_stats(x, lab, 2))
    gmm = gmm.split(4, torch.tensor([150.0, 150.0]), generator=torch.Generator().manual_seed(0))
    g, beta = gmm.accumulate_mllt(x, lab)
    want = np.zeros((3, 3, 3))
    mu, var, g2p = gmm.means.double().numpy(), gmm.vars.double().numpy(), gmm.gauss2pdf.numpy()
    for t in range(300):  # per frame: posteriors over the Gaussians of its pdf
        gs = np.flatnonzero(g2p == int(lab[t]))
        ll = gmm.gauss_loglik(x[t:t + 1])[0, gs].double().numpy()
        post = np.exp(ll - np.logaddexp.reduce(ll))
        for p, gi in zip(post, gs):
            dlt = x[t].double().numpy() - mu[gi]
            want += p * np.einsum("i,a,b->iab", 1 / var[gi], dlt, dlt)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-6, atol=1e-8)
    assert beta == pytest.approx(300.0)


def test_mllt_recovers_a_hidden_rotation():
    """Classes with diagonal covariances in a rotated space: diagonal GMMs in the observed space fit badly until
    MLLT rotates the features back (log-likelihood up to the rotated space's own); on already diagonal data it
    changes nothing."""
    rng = np.random.default_rng(3)
    k, d, n = 4, 5, 40000
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    mu = rng.standard_normal((k, d)) * 2
    var = rng.uniform(0.05, 4.0, (k, d))
    y = rng.integers(0, k, n)
    u = mu[y] + rng.standard_normal((n, d)) * np.sqrt(var[y])

    def fit_ll(feats):
        g = DiagGmmSet.from_single_stats(single_gaussian_stats(feats, y, k))
        return g, g.accumulate(feats, y).avg_loglik

    _, ll_true = fit_ll(u)
    x = u @ q.T
    gmm, ll = fit_ll(x)
    assert ll_true - ll > 0.2  # the rotation costs the diagonal models
    logdet = 0.0  # log-likelihoods of A x are those of x minus log|det A|: added back to compare
    for _ in range(4):
        a, gain = estimate_mllt(*gmm.accumulate_mllt(x, y))
        assert gain >= -1e-9
        x = x @ a.T
        logdet += np.linalg.slogdet(a)[1]
        gmm, ll_new = fit_ll(x)
        assert ll_new + logdet >= ll - 1e-6
        ll = ll_new + logdet
    assert ll_true - ll < 0.005
    a, gain = estimate_mllt(*fit_ll(u)[0].accumulate_mllt(u, y))
    assert gain < 1e-3


@pytest.mark.e2e
def test_align_with_lda_mllt(make_lexicon, write_align_split, tmp_path, caplog):
    import logging

    from data_prep.align.hmm import read_final_mdl
    from data_prep.align.stage import AlignStageConfig, run_align
    from data_prep.lang.lang_dir import write_lang_dir

    lang = write_lang_dir(make_lexicon(), tmp_path / "lang")
    write_align_split(tmp_path, lang, "train", 0, 40)
    write_align_split(tmp_path, lang, "dev", 1, 8)
    cfg = dict(lang=str(tmp_path / "lang"), fbank_dir=str(tmp_path / "fbank"), data_dir=str(tmp_path / "data"),
               exp=str(tmp_path / "exp"), splits=["dev"], deltas=2, mono_iters=4, mono_realign=[1, 2, 3],
               mono_gauss=80, num_leaves=40, tree_min_count=20, tri_iters=2, tri_realign=[1], tri_gauss=80, jobs=1,
               lda_mllt=True, lda_dim=12, lda_iters=3, lda_realign=[2], mllt_iters=[1, 3], lda_leaves=30,
               lda_gauss=60)
    report = run_align(AlignStageConfig(**cfg))
    exp = tmp_path / "exp"
    assert report["final_system"] == "tri2" and report["num_tied_states"] == report["tri2"]["num_pdfs"]
    assert set(report["by_stage"]) == {"tri", "tri2"} and set(report["by_stage"]["tri"]) == {"train", "dev"}
    assert report["splits"]["dev"]["fraction_aligned"] == 1.0
    assert (exp / "tri/ali/train/pdf.npy").is_file()  # tri aligns train for tri2 even if train is not asked for
    lda, final = read_kaldi_matrix(exp / "tri2/lda.mat"), read_kaldi_matrix(exp / "tri2/final.mat")
    assert lda.shape == final.shape == (12, 13 * 7)  # 13-dim store spliced +-3
    assert not np.allclose(lda, final)  # the MLLT was applied
    assert [h.get("mllt_objf_gain_per_frame") is not None for h in report["tri2"]["iterations"]] == [True, False, True]
    assert read_final_mdl(exp / "tri2/final.mdl").gmm.means.shape[1] == 12
    pdf = np.load(exp / "tri2/ali/dev/pdf.npy")
    assert pdf.max() < report["tri2"]["num_pdfs"] and (pdf >= 0).all()
    assert (exp / "tri2/pdf_counts.npy").is_file() is False  # train was not asked for: no priors
    # a rerun is up to date; a changed tri2 option rebuilds tri2 only
    with caplog.at_level(logging.INFO):
        again = run_align(AlignStageConfig(**cfg))
    assert again == report
    for step in ("mono", "tri", "tri2 lda", "tri2 tree", "tri2", "ali dev"):
        assert f"{step}: up to date" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_align(AlignStageConfig(**{**cfg, "mllt_iters": [1]}))
    assert "tri2: rebuilding, option changed: mllt_iters" in caplog.text
    assert "tri2 lda: up to date" in caplog.text and "tri: up to date" in caplog.text
    json.loads((exp / "tri2/report.json").read_text())


def test_later_systems_inherit_the_budget_and_refuse_fewer_gaussians_than_leaves():
    from data_prep.align.config import AlignStageConfig

    cfg = AlignStageConfig(num_leaves=100, tri_gauss=1000, lda_leaves=200, sat_gauss=3000, lda_mllt=True, sat=True)
    assert [cfg.budget(s) for s in ("tri", "tri2", "tri3")] == [(100, 1000), (200, 1000), (200, 3000)]
    with pytest.raises(ValueError, match="tri2 Gaussian budget 1000 is below its 2000 leaves"):
        AlignStageConfig(num_leaves=100, tri_gauss=1000, lda_leaves=2000, lda_mllt=True)
    with pytest.raises(ValueError, match="tri3 Gaussian budget 1000 is below its 2000 leaves"):
        AlignStageConfig(num_leaves=100, tri_gauss=1000, sat_leaves=2000, lda_mllt=True, sat=True)
    with pytest.raises(ValueError, match="needs --lda-mllt"):
        AlignStageConfig(sat=True)
