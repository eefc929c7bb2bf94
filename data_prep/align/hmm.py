"""HMM machinery for forced alignment: training graphs, Viterbi alignment, Kaldi model files.

Built on ``kaldi_hmm_gmm`` (imported through :mod:`asr_base.kaldi`):

* :class:`HmmModel` wraps ``HmmTopology`` + ``ContextDependency`` + ``TransitionModel`` and exposes the
  transition-id tables as numpy arrays (tid -> pdf / phone / pdf class / is-final) so that everything
  per frame is vectorised.
* :class:`GraphCompiler` wraps ``TrainingGraphCompiler`` with the lang dir's ``L.fst``: word ids ->
  an FST over transition ids (optional silence between words, phones in context, HMM states).
  Transition probabilities are compiled in with Kaldi's alignment scales (transition 1.0, self-loop 0.1).
* :func:`viterbi_align` runs ``align_utterance_wrapper`` (Kaldi's FasterDecoder, beam + retry beam) on
  our own emission scores: a ``DecodableCtc`` over the matrix ``acoustic_scale * loglik[:, tid2pdf]``
  (``DecodableCtc`` answers ``M[t, i-1]`` for label ``i``, so column ``i-1`` is transition id ``i``).
  :func:`graph_pdfs` lists the pdfs a training graph can reach, so that only their Gaussians are scored
  (Kaldi's ``DecodableAmDiagGmm`` likewise scores on demand only the pdfs the search visits).
* :func:`write_final_mdl` writes ``final.mdl`` in Kaldi's binary format (TransitionModel + AmDiagGmm);
  ``kaldi_hmm_gmm`` cannot write a TransitionModel, so the serialisation of ``TransitionModel::Write``
  and ``HmmTopology::Write`` is done here from the objects' pickle state.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from asr_base.io import atomic_path
from asr_base import kaldi_binary as kb
from data_prep.align.gmm import DiagGmmSet

log = logging.getLogger(__name__)


@dataclass
class AlignOptions:
    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    careful: bool = False


def _khg():
    from asr_base.kaldi import kaldi_hmm_gmm

    return kaldi_hmm_gmm


class HmmModel:
    """Topology + context dependency + transition model, with vectorised transition-id tables."""

    def __init__(self, topo, ctx_dep, trans_model=None):
        khg = _khg()
        self.topo = topo
        self.ctx_dep = ctx_dep
        self.tm = trans_model if trans_model is not None else khg.TransitionModel(ctx_dep, topo)
        self._tables()

    @classmethod
    def monophone(cls, topo) -> "HmmModel":
        khg = _khg()
        phones = list(topo.phones)
        return cls(topo, khg.monophone_context_dependency(phones, topo.get_phone_to_num_pdf_classes()))

    def _tables(self) -> None:
        tm = self.tm
        n = tm.num_transition_ids
        self.num_tids = n
        self.num_pdfs = int(tm.num_pdfs)
        self.tid2pdf = np.asarray(tm.transition_id_to_pdf_array(), dtype=np.int32)  # (n+1,), [0] unused
        state = tm.__getstate__()
        tuples = [t.__getstate__() for t in state[0]]  # (phone, hmm_state, forward_pdf, self_loop_pdf)
        id2state = np.asarray(state[3], dtype=np.int64)  # (n+1,) tid -> transition state (1-based)
        tup = np.asarray([(0, 0, -1, -1)] + tuples, dtype=np.int64)
        self.tid2phone = tup[id2state, 0].astype(np.int32)
        hmm_state = tup[id2state, 1]
        topo_state = self.topo.__getstate__()  # (phones, phone2idx, entries)
        phone2idx = np.asarray(topo_state[1], dtype=np.int64)
        entries = topo_state[2]
        max_states = max(len(e) for e in entries)
        pdf_class_tab = np.full((len(entries), max_states), -1, dtype=np.int64)
        for i, e in enumerate(entries):
            for j, s in enumerate(e):
                pdf_class_tab[i, j] = s.forward_pdf_class
        self.tid2pdf_class = pdf_class_tab[phone2idx[self.tid2phone], hmm_state].astype(np.int32)
        self.tid2pdf_class[0] = -1
        self.tid_is_final = np.zeros(n + 1, dtype=bool)
        self.tid_is_self_loop = np.zeros(n + 1, dtype=bool)
        for t in range(1, n + 1):  # once per model (not per frame)
            self.tid_is_final[t] = tm.is_final(t)
            self.tid_is_self_loop[t] = tm.is_self_loop(t)

    def pdf_of(self, phone: int, pdf_class: int) -> int:
        ok, pdf = self.ctx_dep.compute([phone], pdf_class) if self.ctx_dep.context_width == 1 else (False, -1)
        if not ok:
            raise ValueError(f"no monophone pdf for phone {phone} pdf class {pdf_class}")
        return pdf

    def update_transitions(self, tid_counts: np.ndarray, floor: float = 0.01, mincount: float = 5.0) -> float:
        """Kaldi's MLE transition update from transition-id counts (len num_tids + 1)."""
        counts = np.asarray(tid_counts, dtype=np.float64).reshape(-1)
        if counts.size != self.num_tids + 1:
            raise ValueError(f"expected {self.num_tids + 1} transition counts, got {counts.size}")
        objf, count = self.tm.mle_update(counts, _khg().MleTransitionUpdateConfig(floor=floor, mincount=mincount))
        return float(objf) / max(float(count), 1.0)

    def min_frames(self, phones: Sequence[int]) -> int:
        return int(sum(self.topo.min_length(int(p)) for p in phones))


# ------------------------------------------------------------------------------------------------ graphs


class GraphCompiler:
    """Word-id sequences -> training graphs over transition ids (``kaldi_hmm_gmm.TrainingGraphCompiler``)."""

    def __init__(self, hmm: HmmModel, l_fst, disambig_ids: Sequence[int], opts: AlignOptions = AlignOptions()):
        khg = _khg()
        copts = khg.TrainingGraphCompilerOptions(transition_scale=opts.transition_scale,
                                                 self_loop_scale=opts.self_loop_scale, reorder=True)
        self.compiler = khg.TrainingGraphCompiler(hmm.tm, hmm.ctx_dep, l_fst, list(disambig_ids), copts)

    def compile(self, word_ids: Sequence[int]):
        return self.compiler.compile_graph_from_text([int(w) for w in word_ids])


@dataclass
class AlignResult:
    ok: bool
    tids: np.ndarray | None  # int32 (T,) transition ids (1-based), None on failure
    reason: str = ""
    retried: bool = False


_ARC_ILABEL = re.compile(r"^\d+ +\d+ +(\d+) +\d+", re.M)  # "src dst ilabel olabel [weight]" of to_str()


def graph_pdfs(graph, hmm: HmmModel) -> np.ndarray:
    """Sorted pdfs on the arcs of a training graph (its input labels are transition ids; 0 is epsilon).

    ``kaldifst`` exposes arcs one Python object at a time (~8 ms per utterance); its text form parsed by one
    regular expression gives the same labels in ~2 ms."""
    tids = np.unique(np.asarray(_ARC_ILABEL.findall(graph.to_str()), dtype=np.int64))
    return np.unique(hmm.tid2pdf[tids[tids > 0]]).astype(np.int64)


def viterbi_align(graph, pdf_loglik: np.ndarray, hmm: HmmModel, opts: AlignOptions = AlignOptions(),
                  utt: str = "utt", pdfs: np.ndarray | None = None) -> AlignResult:
    """Viterbi-align one utterance: ``pdf_loglik`` (T, num_pdfs) unscaled log-likelihoods, or (T, len(pdfs))
    for the pdfs ``pdfs`` only (:func:`graph_pdfs`; the graph reaches no other)."""
    khg = _khg()
    if graph.start == -1 or graph.num_states == 0:
        return AlignResult(False, None, "empty training graph")
    tid_cols = hmm.tid2pdf[1:]
    if pdfs is not None:  # pdf -> its column, other pdfs -> an appended filler column the graph never reads
        col = np.full(hmm.num_pdfs, len(pdfs), dtype=np.int64)
        col[pdfs] = np.arange(len(pdfs))
        tid_cols = col[tid_cols]
        pdf_loglik = np.concatenate([pdf_loglik, np.full((pdf_loglik.shape[0], 1), -1e10, np.float32)], axis=1)
    scores = np.ascontiguousarray(opts.acoustic_scale * pdf_loglik[:, tid_cols], dtype=np.float32)
    decodable = khg.DecodableCtc(scores)
    cfg = khg.AlignConfig(beam=opts.beam, retry_beam=opts.retry_beam, careful=opts.careful)
    num_done, num_err, num_retried, _like, _frames, ali, _words = khg.align_utterance_wrapper(
        cfg, utt, opts.acoustic_scale, graph, decodable, 0, 0, 0, 0.0, 0)
    if num_done != 1 or len(ali) != pdf_loglik.shape[0]:
        return AlignResult(False, None, "no path within retry beam", retried=bool(num_retried))
    return AlignResult(True, np.asarray(ali, dtype=np.int32), retried=bool(num_retried))


# ------------------------------------------------------------------------------------------------ flat start


def equal_align_states(num_frames: int, num_states: int) -> np.ndarray:
    """State index (0..num_states-1) of each frame for an equal split (vectorised)."""
    if num_frames < num_states:
        raise ValueError(f"{num_frames} frames < {num_states} states")
    return (np.arange(num_frames, dtype=np.int64) * num_states) // num_frames


# ------------------------------------------------------------------------------------------------ phones


def phone_segments(tids: np.ndarray, hmm: HmmModel, utt_starts: np.ndarray | None = None):
    """Split frame transition ids into phone instances (vectorised).

    ``tids`` (N,) covers one or more utterances (``utt_starts``: the frame where each starts; a phone
    never crosses an utterance start). Returns ``(phone, start, length, instance)``: arrays per phone
    instance, and the instance index of every frame. A phone ends on a frame whose transition id
    leaves the HMM (``is_final``, Kaldi's reordered topology).
    """
    tids = np.asarray(tids, dtype=np.int64)
    n = tids.size
    if n == 0:
        e = np.zeros(0, np.int64)
        return e.astype(np.int32), e, e, e
    # Reordered HMMs (Kaldi's default): a state's forward transition comes on its first frame, its
    # self-loops after it, so a phone starts at the first non-self-loop frame after a final transition.
    boundary = np.zeros(n, dtype=bool)
    boundary[0] = True
    fwd = np.flatnonzero(~hmm.tid_is_self_loop[tids])
    if fwd.size > 1:
        boundary[fwd[1:][hmm.tid_is_final[tids[fwd[:-1]]]]] = True
    if utt_starts is not None and len(utt_starts):
        boundary[np.asarray(utt_starts, dtype=np.int64)[np.asarray(utt_starts) < n]] = True
    starts = np.flatnonzero(boundary)
    lengths = np.diff(np.append(starts, n))
    instance = np.cumsum(boundary) - 1
    return hmm.tid2phone[tids[starts]], starts, lengths, instance


def frame_contexts(tids: np.ndarray, hmm: HmmModel, utt_starts: np.ndarray) -> np.ndarray:
    """(N, 4) int32 ``(left, center, right, pdf_class)`` of every frame; 0 = utterance boundary."""
    phone, starts, _lengths, inst = phone_segments(tids, hmm, utt_starts)
    k = phone.size
    first_in_utt = np.zeros(k, dtype=bool)
    first_in_utt[np.searchsorted(starts, np.asarray(utt_starts, dtype=np.int64))[
        np.asarray(utt_starts) < len(tids)]] = True
    last_in_utt = np.zeros(k, dtype=bool)
    last_in_utt[:-1] = first_in_utt[1:]
    last_in_utt[-1] = True
    left = np.where(first_in_utt, 0, np.roll(phone, 1))
    right = np.where(last_in_utt, 0, np.roll(phone, -1))
    out = np.empty((tids.size, 4), dtype=np.int32)
    out[:, 0] = left[inst]
    out[:, 1] = phone[inst]
    out[:, 2] = right[inst]
    out[:, 3] = hmm.tid2pdf_class[np.asarray(tids, dtype=np.int64)]
    return out


# ------------------------------------------------------------------------------------------------ Kaldi files


def _write_topology(f, topo) -> None:
    phones, phone2idx, entries = topo.__getstate__()
    is_hmm = all(s.forward_pdf_class == s.self_loop_pdf_class for e in entries for s in e)
    kb.write_token(f, "<Topology>")
    kb.write_int_vector(f, phones)
    kb.write_int_vector(f, phone2idx)
    if not is_hmm:
        kb.write_int32(f, -1)
    kb.write_int32(f, len(entries))
    for e in entries:
        kb.write_int32(f, len(e))
        for s in e:
            kb.write_int32(f, s.forward_pdf_class)
            if not is_hmm:
                kb.write_int32(f, s.self_loop_pdf_class)
            kb.write_int32(f, len(s.transitions))
            for dst, p in s.transitions:
                kb.write_int32(f, dst)
                kb.write_float(f, p)
    kb.write_token(f, "</Topology>")


def write_transition_model(f, hmm: HmmModel) -> None:
    """Kaldi binary ``TransitionModel::Write``."""
    state = hmm.tm.__getstate__()
    tuples = [t.__getstate__() for t in state[0]]
    entries = hmm.topo.__getstate__()[2]
    is_hmm = all(s.forward_pdf_class == s.self_loop_pdf_class for e in entries for s in e)
    kb.write_token(f, "<TransitionModel>")
    _write_topology(f, hmm.topo)
    kb.write_token(f, "<Triples>" if is_hmm else "<Tuples>")
    kb.write_int32(f, len(tuples))
    for phone, hmm_state, fpdf, spdf in tuples:
        kb.write_int32(f, phone)
        kb.write_int32(f, hmm_state)
        kb.write_int32(f, fpdf)
        if not is_hmm:
            kb.write_int32(f, spdf)
    kb.write_token(f, "</Triples>" if is_hmm else "</Tuples>")
    kb.write_token(f, "<LogProbs>")
    kb.write_float_vector(f, np.asarray(hmm.tm.log_probs, dtype=np.float32))
    kb.write_token(f, "</LogProbs>")
    kb.write_token(f, "</TransitionModel>")


def write_final_mdl(path: str | os.PathLike, hmm: HmmModel, gmm: DiagGmmSet) -> None:
    """``final.mdl``: Kaldi binary header, TransitionModel, AmDiagGmm (what ``gmm-copy`` reads)."""
    if gmm.num_pdfs != hmm.num_pdfs:
        raise ValueError(f"GMM has {gmm.num_pdfs} pdfs, transition model {hmm.num_pdfs}")
    buf = io.BytesIO()
    buf.write(kb.BINARY_HEADER)
    write_transition_model(buf, hmm)
    gmm.write_kaldi(buf)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())


@dataclass
class KaldiModelFile:
    phones: np.ndarray
    phone2idx: np.ndarray
    topology: list  # per entry: list of (forward_pdf_class, self_loop_pdf_class, [(dst, prob), ...])
    tuples: np.ndarray  # (S, 4) phone, hmm_state, forward_pdf, self_loop_pdf
    log_probs: np.ndarray  # (num_tids + 1,)
    gmm: DiagGmmSet


def read_final_mdl(path: str | os.PathLike) -> KaldiModelFile:
    """Parse a binary ``final.mdl`` written by :func:`write_final_mdl` (or Kaldi, for HMM topologies)."""
    r = kb.KaldiReader.open(path)
    r.expect("<TransitionModel>")
    r.expect("<Topology>")
    phones = r.int_vector()
    phone2idx = r.int_vector()
    n = r.int32()
    is_hmm = n != -1
    if not is_hmm:
        n = r.int32()
    topology = []
    for _ in range(n):
        states = []
        for _ in range(r.int32()):
            fpc = r.int32()
            spc = fpc if is_hmm else r.int32()
            trans = [(r.int32(), r.float32()) for _ in range(r.int32())]
            states.append((fpc, spc, trans))
        topology.append(states)
    r.expect("</Topology>")
    r.expect("<Triples>" if is_hmm else "<Tuples>")
    num = r.int32()
    width = 3 if is_hmm else 4
    tup = np.asarray([[r.int32() for _ in range(width)] for _ in range(num)], dtype=np.int32)
    if is_hmm:
        tup = np.concatenate([tup, tup[:, 2:3]], axis=1) if num else np.zeros((0, 4), np.int32)
    r.expect("</Triples>" if is_hmm else "</Tuples>")
    r.expect("<LogProbs>")
    log_probs = r.float_vector()
    r.expect("</LogProbs>")
    r.expect("</TransitionModel>")
    gmm = DiagGmmSet.read_kaldi(r)
    return KaldiModelFile(phones, phone2idx, topology, tup, log_probs, gmm)


def load_hmm(final_mdl: str | os.PathLike, topo, ctx_dep) -> tuple[HmmModel, DiagGmmSet]:
    """Rebuild the ``TransitionModel`` of ``final.mdl`` (same tree + topology; trained log-probs restored)."""
    khg = _khg()
    m = read_final_mdl(final_mdl)
    tm = khg.TransitionModel(ctx_dep, topo)
    state = list(tm.__getstate__())
    tuples = np.asarray([t.__getstate__() for t in state[0]], dtype=np.int32).reshape(-1, 4)
    if not np.array_equal(tuples, m.tuples):
        raise ValueError(f"{final_mdl}: transition model does not match the given tree and topology")
    if len(m.log_probs) != len(state[6]):
        raise ValueError(f"{final_mdl}: {len(m.log_probs)} log-probs, expected {len(state[6])}")
    state[6] = [float(x) for x in m.log_probs]
    # non-self-loop log-probs are derived from log_probs (Kaldi's ComputeDerivedOfProbs)
    state2id = state[2]
    nsl = [0.0] * len(state[7])
    for s in range(1, len(nsl)):  # once per transition state, not per frame
        for t in range(state2id[s], state2id[s + 1]):
            if tm.is_self_loop(t):
                p = float(np.exp(state[6][t]))
                nsl[s] = float(np.log1p(-p)) if p < 1.0 else -1e10
    state[7] = nsl
    out = khg.TransitionModel.__new__(khg.TransitionModel)
    out.__setstate__(tuple(state))
    return HmmModel(topo, ctx_dep, out), m.gmm
