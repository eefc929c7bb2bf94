"""fMLLR estimation against a known speaker transform, its statistics against their definition, speaker transforms
in the front end, and ``data-prep align --lda-mllt --sat`` (tri3) end to end."""

import numpy as np
import pytest
import torch

from data_prep.align.fmllr import (FmllrStats, estimate_fmllr, fmllr_objective, identity_transform, read_transforms,
                                   write_transforms)
from data_prep.align.front_end import FrontEnd
from data_prep.align.gmm import DiagGmmSet, single_gaussian_stats


def _model_and_data(seed=0, n=20000, k=6, d=4):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((k, d)) * 3
    var = rng.uniform(0.2, 2.0, (k, d))
    y = rng.integers(0, k, n)
    u = mu[y] + rng.standard_normal((n, d)) * np.sqrt(var[y])
    return rng, DiagGmmSet.from_single_stats(single_gaussian_stats(u, y, k)), u, y


def test_fmllr_recovers_the_speaker_transform():
    rng, gmm, u, y = _model_and_data()
    d = u.shape[1]
    a = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    b = rng.standard_normal(d)
    x = (u - b) @ np.linalg.inv(a).T  # this speaker's features: the model's space through an unknown affine map
    st = gmm.accumulate_fmllr(x, y)
    w, gain = estimate_fmllr(st)
    np.testing.assert_allclose(w, np.hstack([a, b[:, None]]), atol=0.03)
    assert gain > 1.0 and fmllr_objective(w, st) > fmllr_objective(identity_transform(d), st)
    w2, gain2 = estimate_fmllr(st, w)  # from the optimum: nothing left to gain
    assert abs(gain2) < 1e-6
    few = FmllrStats(10.0, st.k * 0, st.g * 0)
    np.testing.assert_array_equal(estimate_fmllr(few)[0], identity_transform(d))  # too little data: identity


def test_fmllr_statistics_are_their_definition():
    rng, gmm, u, y = _model_and_data(n=200, k=2, d=3)
    gmm = gmm.split(4, torch.tensor([100.0, 100.0]), generator=torch.Generator().manual_seed(0))
    st = gmm.accumulate_fmllr(u, y)
    k, g = np.zeros((3, 4)), np.zeros((3, 4, 4))
    mu, var, g2p = gmm.means.double().numpy(), gmm.vars.double().numpy(), gmm.gauss2pdf.numpy()
    for t in range(200):
        gs = np.flatnonzero(g2p == y[t])
        ll = gmm.gauss_loglik(u[t:t + 1])[0, gs].double().numpy()
        post = np.exp(ll - np.logaddexp.reduce(ll))
        xe = np.append(u[t].astype(np.float32).astype(np.float64), 1.0)
        for p, gi in zip(post, gs):
            k += p * np.outer(mu[gi] / var[gi], xe)
            g += p * np.einsum("i,a,b->iab", 1 / var[gi], xe, xe)
    np.testing.assert_allclose(st.k, k, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(st.g, g, rtol=1e-6, atol=1e-8)
    assert st.beta == pytest.approx(200.0)


def test_speaker_transforms_in_the_front_end(tmp_path):
    rng = np.random.default_rng(1)
    lengths = [3, 5, 2]
    x = rng.standard_normal((10, 2)).astype(np.float32)
    w = {"a": np.array([[2.0, 0, 1], [0, 1, -1]]), "b": np.array([[0, 1.0, 0], [1, 0, 0]])}
    got = FrontEnd(speakers=w).apply(x, lengths, ["a", "b", "c"])  # c has no transform: unchanged
    np.testing.assert_allclose(got[:3], x[:3] @ w["a"][:, :2].T + w["a"][:, 2], rtol=1e-6)
    np.testing.assert_allclose(got[3:8], x[3:8][:, ::-1], rtol=1e-6)
    np.testing.assert_array_equal(got[8:], x[8:])
    with pytest.raises(ValueError, match="speaker of every utterance"):
        FrontEnd(speakers=w).apply(x, lengths)
    write_transforms(tmp_path / "trans.0", w)
    back = read_transforms(tmp_path / "trans.0")
    assert list(back) == ["a", "b"] and np.array_equal(back["a"], w["a"])


@pytest.mark.e2e
def test_align_with_sat(make_lexicon, write_align_split, tmp_path):
    from data_prep.align.stage import AlignStageConfig, run_align
    from data_prep.lang.lang_dir import write_lang_dir

    lang = write_lang_dir(make_lexicon(), tmp_path / "lang")
    write_align_split(tmp_path, lang, "train", 0, 40)
    write_align_split(tmp_path, lang, "dev", 1, 8)
    cfg = AlignStageConfig(lang=str(tmp_path / "lang"), fbank_dir=str(tmp_path / "fbank"),
                           data_dir=str(tmp_path / "data"), exp=str(tmp_path / "exp"), splits=["train", "dev"],
                           deltas=2, mono_iters=4, mono_realign=[1, 2, 3], mono_gauss=80, num_leaves=40,
                           tree_min_count=20, tri_iters=2, tri_realign=[1], tri_gauss=80, jobs=2, lda_mllt=True,
                           lda_dim=12, lda_iters=2, lda_realign=[1], mllt_iters=[1], sat=True, sat_iters=3,
                           sat_realign=[2], fmllr_iters=[1, 3])
    report = run_align(cfg)
    exp = tmp_path / "exp"
    assert report["final_system"] == "tri3" and set(report["by_stage"]) == {"tri", "tri2", "tri3"}
    assert report["splits"]["dev"]["fraction_aligned"] == 1.0
    speakers = {ln.split()[1] for ln in (tmp_path / "data/train/utt2spk").read_text().splitlines()}
    for name in ("trans.0", "trans.train"):
        assert set(read_transforms(exp / "tri3" / name)) == speakers
    dev_trans = read_transforms(exp / "tri3/ali/dev/trans")
    assert dev_trans and all(m.shape == (12, 13) for m in dev_trans.values())
    gains = [h.get("fmllr_objf_gain_per_frame") for h in report["tri3"]["iterations"]]
    assert gains[0] is not None and gains[1] is None and gains[2] is not None
    assert (exp / "tri3/pdf_counts.npy").is_file()
    pdf = np.load(exp / "tri3/ali/train/pdf.npy")
    assert pdf.max() < report["tri3"]["num_pdfs"]
