"""Tests for data_prep.align.hmm: graphs, Viterbi alignment on our scores, phone segments, Kaldi model files."""

import numpy as np
import pytest
import torch

from data_prep.align.gmm import DiagGmmSet, single_gaussian_stats
from data_prep.align.hmm import (AlignOptions, GraphCompiler, equal_align_states, frame_contexts, graph_pdfs,
                                 load_hmm, phone_segments, read_final_mdl, viterbi_align,
                                 write_final_mdl)


def _oracle_gmm(corpus, hmm):
    pdf = np.array([hmm.pdf_of(p, c) for p, c in zip(corpus.true_phone, corpus.true_state)])
    return DiagGmmSet.from_single_stats(single_gaussian_stats(corpus.feats.astype(np.float32), pdf, hmm.num_pdfs))


def test_tables_consistent_with_transition_model(mono, lang):
    tm = mono.tm
    for t in range(1, mono.num_tids + 1):
        assert mono.tid2pdf[t] == tm.transition_id_to_pdf(t)
        assert mono.tid2phone[t] == tm.transition_id_to_phone(t)
        assert mono.pdf_of(int(mono.tid2phone[t]), int(mono.tid2pdf_class[t])) == mono.tid2pdf[t]
    assert mono.num_pdfs == sum(lang.num_pdf_classes(p) for p in lang.real_phone_ids)


def test_equal_align_states():
    s = equal_align_states(10, 3)
    assert s.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        equal_align_states(2, 3)


def test_viterbi_with_oracle_model_recovers_truth_and_segments(simulate_corpus, lang, mono):
    corpus = simulate_corpus(lang, num_utts=8, seed=3)
    gmm = _oracle_gmm(corpus, mono)
    comp = GraphCompiler(mono, lang.load_l_fst(), lang.disambig_phone_ids)
    start = 0
    for u, n in zip(corpus.utt_ids, corpus.lengths):
        x = corpus.feats[start:start + n].astype(np.float32)
        graph = comp.compile([lang.words[w] for w in corpus.text[u].split()])
        res = viterbi_align(graph, gmm.log_likelihoods(torch.from_numpy(x)).numpy(), mono, AlignOptions(), u)
        assert res.ok, res.reason
        acc = np.mean((mono.tid2phone[res.tids] == corpus.true_phone[start:start + n])
                      & (mono.tid2pdf_class[res.tids] == corpus.true_state[start:start + n]))
        assert acc >= 0.97
        # phone segments follow the true phone sequence (merging repeated phones like SIL SIL)
        phone, seg_start, seg_len, inst = phone_segments(res.tids, mono)
        assert seg_len.sum() == n and seg_start[0] == 0
        true = corpus.true_phone[start:start + n]
        change = np.flatnonzero(np.diff(true) != 0) + 1
        true_seq = true[np.concatenate([[0], change])]
        merged = phone[np.concatenate([[True], phone[1:] != phone[:-1]])]
        assert merged.tolist() == true_seq.tolist()
        ctx = frame_contexts(res.tids, mono, np.array([0]))
        assert ctx[0, 0] == 0 and ctx[-1, 2] == 0  # utterance boundaries
        assert (ctx[:, 1] == mono.tid2phone[res.tids]).all()
        start += n


def test_graph_pdfs_score_only_what_the_graph_reaches(simulate_corpus, lang, mono):
    """graph_pdfs = the pdfs of the graph's arcs (read one by one); aligning on those columns only gives the
    alignment of the full matrix, and each column is the full matrix's column bit for bit."""
    import kaldifst

    corpus = simulate_corpus(lang, num_utts=4, seed=5)
    gmm = _oracle_gmm(corpus, mono)
    comp = GraphCompiler(mono, lang.load_l_fst(), lang.disambig_phone_ids)
    start = 0
    for u, n in zip(corpus.utt_ids, corpus.lengths):
        graph = comp.compile([lang.words[w] for w in corpus.text[u].split()])
        arcs = {a.ilabel for s in range(graph.num_states) for a in kaldifst.ArcIterator(graph, s)} - {0}
        pdfs = graph_pdfs(graph, mono)
        assert pdfs.tolist() == sorted({int(mono.tid2pdf[t]) for t in arcs})
        assert 0 < pdfs.size < mono.num_pdfs
        x = torch.from_numpy(corpus.feats[start:start + n].astype(np.float32))
        full = gmm.log_likelihoods(x).numpy()
        sub = gmm.log_likelihoods(x, pdfs).numpy()
        assert np.array_equal(sub, full[:, pdfs])
        a, b = viterbi_align(graph, full, mono, AlignOptions(), u), viterbi_align(graph, sub, mono, pdfs=pdfs)
        assert a.ok and np.array_equal(a.tids, b.tids)
        start += n


def test_too_short_utterance_fails_cleanly(lang, mono):
    comp = GraphCompiler(mono, lang.load_l_fst(), lang.disambig_phone_ids)
    words = ("W00", "W01", "W02")
    graph = comp.compile([lang.words[w] for w in words])
    res = viterbi_align(graph, np.zeros((4, mono.num_pdfs), np.float32), mono)
    assert not res.ok and res.tids is None and "beam" in res.reason
    phones = [lang.phones[p] for w in words for p in lang.lexicon[w][0]]
    assert mono.min_frames(phones) == 3 * len(phones)


def test_final_mdl_round_trip(simulate_corpus, tmp_path, lang, mono):
    corpus = simulate_corpus(lang, num_utts=3, seed=1)
    gmm = _oracle_gmm(corpus, mono)
    counts = np.zeros(mono.num_tids + 1)
    counts[1:] = np.arange(1, mono.num_tids + 1) * 10.0
    mono.update_transitions(counts)
    write_final_mdl(tmp_path / "final.mdl", mono, gmm)
    m = read_final_mdl(tmp_path / "final.mdl")
    np.testing.assert_allclose(m.log_probs, np.asarray(mono.tm.log_probs), rtol=1e-6)
    assert m.tuples.shape[1] == 4 and len(m.topology) == 2
    hmm2, gmm2 = load_hmm(tmp_path / "final.mdl", mono.topo, mono.ctx_dep)
    np.testing.assert_allclose(hmm2.tm.log_probs, mono.tm.log_probs, rtol=1e-6)
    np.testing.assert_allclose(hmm2.tm.non_self_loop_log_probs, mono.tm.non_self_loop_log_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gmm2.means.numpy(), gmm.means.numpy(), rtol=1e-5, atol=1e-5)
