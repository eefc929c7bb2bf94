"""Built-in decoder and scorer: spelled sequences, listed failures, beam retry, parallel decoding, priors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asr_kd.decoding.decoder import DecoderConfig, WfstDecoder, check_matrix, decode_matrices, read_words
from asr_kd.decoding.scorer import UNSEEN_LOG_PRIOR, ModelScorer, log_priors_from_counts


@pytest.fixture(scope="module")
def system(toy, tmp_path_factory):
    return toy.build(tmp_path_factory.mktemp("toy"))


def test_bad_matrices_are_listed_failures(toy, system):
    lang, ctx, gdir = system
    n = ctx.num_pdfs
    rng = np.random.default_rng(1)
    good = toy.spell(lang, ctx, ["CAT", "DOG"], n, rng)
    nan = good.copy()
    nan[3, 2] = np.nan
    inf = good.copy()
    inf[0, 0] = -np.inf
    items = {"a_good": good, "b_empty": np.zeros((0, n), np.float32), "c_nan": nan, "d_inf": inf,
             "e_cols": good[:, :-1], "f_1d": good[0]}
    out = decode_matrices(gdir, items, DecoderConfig(num_jobs=1))
    assert out.hyps == {"a_good": ["CAT", "DOG"]}
    assert out.failures["b_empty"] == "no frames"
    assert "NaN" in out.failures["c_nan"] and "1 of" in out.failures["c_nan"]
    assert "non-finite" in out.failures["d_inf"]
    assert "columns" in out.failures["e_cols"]
    assert "matrix" in out.failures["f_1d"]
    assert set(out.hyps) | set(out.failures) == set(items)
    assert check_matrix(good, n) == ""


def test_no_final_state_retries_with_wider_beam_then_fails(toy, system):
    lang, ctx, gdir = system
    # SIL + the first two phones of CAT: the best token ends inside a word, not in a final state.
    rows = [pdf for ph in ("SIL", "K", "AE") for pdf in toy.state_pdfs(lang, ctx, ph) for _ in range(3)]
    m = np.full((len(rows), ctx.num_pdfs), -8.0, np.float32)
    m[np.arange(len(rows)), rows] = 0.0
    narrow = DecoderConfig(beam=1.0, max_active=2, min_active=1, retry_beams=())
    r = WfstDecoder(gdir, narrow).decode_one("u", m)
    assert not r.ok and r.status == "failed" and "final state" in r.reason
    retry = DecoderConfig(beam=1.0, max_active=2, min_active=1, retry_beams=(30.0,))
    r = WfstDecoder(gdir, retry).decode_one("u", m)
    assert r.ok and r.status == "retried" and r.beam == 30.0
    assert r.word_ids and all(w > 0 for w in r.word_ids)  # never an empty hypothesis from a failure


def test_parallel_equals_serial_and_acoustic_scale_matters(toy, system):
    lang, ctx, gdir = system
    rng = np.random.default_rng(2)
    seqs = [["CAT"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["DOG", "DOG"], ["CAT", "BIRD"], ["BIRD"]]
    items = {f"u{i}": toy.spell(lang, ctx, s, ctx.num_pdfs, rng, sil_between=i % 2 == 1) for i, s in enumerate(seqs)}
    serial = decode_matrices(gdir, items, DecoderConfig(num_jobs=1))
    parallel = decode_matrices(gdir, items, DecoderConfig(num_jobs=2))
    assert serial.hyps == parallel.hyps == {f"u{i}": s for i, s in enumerate(seqs)}
    costs = {u: r.cost for u, r in serial.results.items()}
    assert all(math.isfinite(c) for c in costs.values())
    louder = decode_matrices(gdir, {u: m * 2 for u, m in items.items()}, DecoderConfig(num_jobs=1, acoustic_scale=0.05))
    assert louder.hyps == serial.hyps
    assert [louder.results[u].cost for u in items] == pytest.approx([costs[u] for u in items], rel=1e-4)


def test_read_words(system):
    words = read_words(system[2] / "words.txt")
    assert words[0] == "<eps>" and "CAT" in words


def test_log_priors():
    lp = log_priors_from_counts(np.array([3, 1, 0, 4]), floor=1e-3)
    assert lp[[0, 1, 3]] == pytest.approx(np.log([3 / 8, 1 / 8, 4 / 8]))
    assert lp[2] == UNSEEN_LOG_PRIOR
    with pytest.raises(ValueError):
        log_priors_from_counts(np.zeros(3))
    with pytest.raises(ValueError):
        log_priors_from_counts(np.array([1.0, -1.0]))


class _Linear(torch.nn.Module):
    def __init__(self, din, dout, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(din, dout, generator=g))

    def forward(self, x):
        return x @ self.w


def test_scorer_matches_naive_per_utterance(tmp_path):
    from data_prep.features.store import write_store

    rng = np.random.default_rng(3)
    lengths = [7, 0, 3, 12, 1]
    feats = rng.standard_normal((sum(lengths), 4)).astype(np.float16)
    store = write_store(tmp_path / "store", feats, [f"u{i}" for i in range(5)], lengths, ["s"] * 5)
    left, right, P = 2, 1, 6
    models = [_Linear(4 * (left + 1 + right), P, s) for s in (0, 1)]
    log_priors = np.log(np.array([1, 2, 3, 4, 5, 6], np.float32) / 21)
    scorer = ModelScorer(models, log_priors, store, left, right)
    scorer.config.batch_frames = 5  # forces multiple groups and sub-batches
    got = dict(scorer)
    assert list(got) == store.utt_ids and len(scorer) == 5 and scorer.num_pdfs == P
    start = 0
    for u, n in zip(store.utt_ids, lengths):
        x = torch.from_numpy(feats[start:start + n].astype(np.float32))
        start += n
        assert got[u].shape == (n, P)
        if n == 0:
            continue
        idx = np.clip(np.arange(n)[:, None] + np.arange(-left, right + 1)[None, :], 0, n - 1)
        win = x[idx].reshape(n, -1)
        post = torch.stack([torch.softmax(m(win), -1) for m in models]).mean(0)
        want = torch.log(post).detach().numpy() - log_priors
        np.testing.assert_allclose(got[u], want, atol=1e-4)
