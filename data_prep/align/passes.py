"""Alignment passes: chunks of whole utterances scored, (re)aligned and accumulated in a pool of workers.

:class:`Aligner` runs one pass over a split (Kaldi's ``JOB=1:nj``): the utterances are cut into chunks of
about ``chunk_frames`` frames, and each chunk is scored with the GMMs (torch), Viterbi-aligned with
graphs compiled for the current transition model (:mod:`data_prep.align.hmm`) and accumulated into GMM
statistics and transition counts, in a spawn pool of ``jobs`` processes (or in-process for one job).
Results are combined in chunk order, so the statistics do not depend on the number of jobs.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data_prep.align.front_end import FrontEnd, speaker_frames
from data_prep.align.gmm import DiagGmmSet, GmmStats
from data_prep.align.hmm import AlignOptions, GraphCompiler, HmmModel, graph_pdfs, viterbi_align
from data_prep.align.split_data import SplitData, read_frames


def split_chunks(split: SplitData, rows: np.ndarray, chunk_frames: int) -> list[np.ndarray]:
    """``rows`` in order, cut into chunks of whole utterances of at least ``chunk_frames`` frames (the last: less)."""
    out, cur, n = [], [], 0
    for i in rows:
        cur.append(int(i))
        n += int(split.lengths[i])
        if n >= chunk_frames:
            out.append(np.asarray(cur))
            cur, n = [], 0
    if cur:
        out.append(np.asarray(cur))
    return out


@dataclass
class PassContext:
    """Everything a worker needs for one pass (picklable)."""

    key: str
    gmm: dict
    hmm_state: bytes  # pickle of (topo, ctx_dep, trans_model)
    lang: str
    opts: AlignOptions
    realign: bool
    accumulate: bool
    front: FrontEnd  # what the GMMs score: the store's features, + deltas, or spliced times a matrix
    mllt: bool = False  # accumulate MLLT statistics (DiagGmmSet.accumulate_mllt) instead of GMM statistics
    fmllr: bool = False  # accumulate per-speaker fMLLR statistics (DiagGmmSet.accumulate_fmllr) instead


@dataclass
class ChunkResult:
    rows: list[int]
    tids: list[np.ndarray | None]  # per row: transition ids (realign) or None
    failed: dict[int, str]
    stats: GmmStats | None
    tid_counts: np.ndarray | None
    align_loglik: float = 0.0
    frames: int = 0
    mllt: tuple[torch.Tensor, float] | None = None
    fmllr: dict | None = None  # speaker -> FmllrStats


_WORKER_CACHE: dict = {}
_PASS_IDS = itertools.count(1)  # per process, not per Aligner: a pass's models are cached under its id


def _worker_init() -> None:
    torch.set_num_threads(1)


def _setup(ctx: PassContext):
    if _WORKER_CACHE.get("key") != ctx.key:
        topo, ctx_dep, tm = pickle.loads(ctx.hmm_state)
        hmm = HmmModel(topo, ctx_dep, tm)
        gmm = DiagGmmSet.from_state_dict(ctx.gmm)
        compiler = None
        if ctx.realign:
            from data_prep.lang.lang_dir import LangDir

            lang = _WORKER_CACHE.get("lang")
            if lang is None or _WORKER_CACHE.get("lang_path") != ctx.lang:
                lang = LangDir.load(ctx.lang)
                _WORKER_CACHE["l_fst"] = lang.load_l_fst(disambig=False)
                _WORKER_CACHE["lang"], _WORKER_CACHE["lang_path"] = lang, ctx.lang
            compiler = GraphCompiler(hmm, _WORKER_CACHE["l_fst"], lang.disambig_phone_ids, ctx.opts)
        _WORKER_CACHE.update(key=ctx.key, hmm=hmm, gmm=gmm, compiler=compiler)
    return _WORKER_CACHE["hmm"], _WORKER_CACHE["gmm"], _WORKER_CACHE["compiler"]


def min_frames(hmm: HmmModel, lang, word_ids: list[int]) -> int:
    """Fewest frames any pronunciation of the transcript needs (no optional silence)."""
    names = {v: k for k, v in lang.words.items()}
    total = 0
    for w in word_ids:
        prons = lang.lexicon.get(names.get(w, ""), [()])
        total += min(hmm.min_frames([lang.phones[p] for p in pron]) for pron in prons)
    return total


@dataclass
class UttAlignment:
    """One utterance's forced alignment: transition ids and the log-likelihood of each frame's aligned pdf, or
    the reason it failed."""

    tids: np.ndarray | None
    frame_loglik: np.ndarray | None = None
    reason: str = ""


def align_utterance(compiler: GraphCompiler, hmm: HmmModel, lang, opts: AlignOptions, utt: str,
                    words: list[int] | None, num_frames: int, score) -> UttAlignment:
    """Compile the transcript's training graph, score the pdfs it reaches (``score(pdfs)`` -> (num_frames,
    len(pdfs)) unscaled log-likelihoods: GMMs, or a DNN's posteriors over priors) and Viterbi-align; every
    failure comes back with its reason (never raised)."""
    if words is None:
        return UttAlignment(None, reason="no transcript")
    try:
        graph = compiler.compile(words)
    except Exception as e:  # noqa: BLE001 (listed, never fatal)
        return UttAlignment(None, reason=f"graph compilation failed: {e}")
    pdfs = graph_pdfs(graph, hmm)
    pdf_ll = np.asarray(score(pdfs), dtype=np.float32)
    res = viterbi_align(graph, pdf_ll, hmm, opts, utt, pdfs=pdfs)
    if not res.ok:
        need = min_frames(hmm, lang, words)
        return UttAlignment(None, reason=f"too short: {num_frames} frames < {need} HMM states of the transcript"
                            if num_frames < need else res.reason)
    lab = hmm.tid2pdf[res.tids]
    return UttAlignment(res.tids, pdf_ll[np.arange(num_frames), np.searchsorted(pdfs, lab)])


def _feats(store_dir: str) -> np.ndarray:
    cache = _WORKER_CACHE.setdefault("feats", {})
    if store_dir not in cache:
        cache[store_dir] = np.load(Path(store_dir) / "feats.npy", mmap_mode="r")
    return cache[store_dir]


def process_chunk(ctx: PassContext, store_dir: str, rows: list[int], starts: list[int], lengths: list[int],
                  utt_ids: list[str], words: list[list[int] | None], labels: np.ndarray | None,
                  speakers: list[str] | None = None, front: FrontEnd | None = None) -> ChunkResult:
    """Score, (re)align and accumulate one chunk of utterances (runs in a worker or in-process); ``front``: the
    chunk's own front end (its speakers' transforms), default ``ctx.front``."""
    hmm, gmm, compiler = _setup(ctx)
    feats = _feats(store_dir)
    x = torch.from_numpy(read_frames(feats, starts, lengths, front or ctx.front, speakers))
    offs = np.concatenate([[0], np.cumsum(lengths)])
    failed: dict[int, str] = {}
    tids_out: list[np.ndarray | None] = [None] * len(rows)
    if ctx.realign:  # each utterance scores only the pdfs its training graph reaches
        lab = np.full(x.shape[0], -1, dtype=np.int64)
        frame_ll = np.zeros(x.shape[0], dtype=np.float32)  # of the aligned pdf (final pass report)
        for k, (r, u, w) in enumerate(zip(rows, utt_ids, words)):
            a, b = int(offs[k]), int(offs[k + 1])
            res = align_utterance(compiler, hmm, _WORKER_CACHE["lang"], ctx.opts, u, w, b - a,
                                  lambda pdfs: gmm.log_likelihoods(x[a:b], pdfs).numpy())  # noqa: B023 (called now)
            if res.tids is None:
                failed[r] = res.reason
                continue
            tids_out[k] = res.tids
            lab[a:b] = hmm.tid2pdf[res.tids]
            frame_ll[a:b] = res.frame_loglik
    else:
        lab = np.asarray(labels, dtype=np.int64)
    ll = 0.0
    nfr = 0
    if ctx.realign and not ctx.accumulate:  # per-frame log-likelihood of the alignment (final pass report)
        keep = np.flatnonzero(lab >= 0)
        if keep.size:
            ll = float(frame_ll[keep].astype(np.float64).sum())
            nfr = int(keep.size)
    stats = tid_counts = mllt = fmllr = None
    if ctx.mllt:
        mllt = gmm.accumulate_mllt(x, lab)
    elif ctx.fmllr:  # per speaker, in order of first appearance
        fmllr = {}
        for spk, rows in speaker_frames(speakers, lengths):
            sel = rows[lab[rows] >= 0]
            if sel.size:
                fmllr[spk] = gmm.accumulate_fmllr(x[torch.from_numpy(sel)], lab[sel])
    elif ctx.accumulate:  # scores only the Gaussians of each frame's pdf
        stats = gmm.accumulate(x, lab)
        good = [t for t in tids_out if t is not None]
        if good:
            tid_counts = np.bincount(np.concatenate(good), minlength=hmm.num_tids + 1).astype(np.float64)
    return ChunkResult(list(rows), tids_out, failed, stats, tid_counts, ll, nfr, mllt, fmllr)


def _process_chunk_star(args):
    return process_chunk(*args)


@dataclass
class PassSummary:
    stats: GmmStats | None
    tid_counts: np.ndarray | None
    failed: dict[int, str]
    aligned: int
    seconds: float
    align_loglik: float = 0.0
    align_frames: int = 0
    mllt: tuple[torch.Tensor, float] | None = None  # (G, beta) of an MLLT pass
    fmllr: dict | None = None  # speaker -> FmllrStats of an fMLLR pass


class Aligner:
    """Runs passes over a split with a (possibly multi-process) executor; use as a context manager, which
    stops the worker pool at the end."""

    def __init__(self, lang_dir: str, jobs: int = 2, chunk_frames: int = 20000):
        self.lang_dir = str(lang_dir)
        self.jobs = max(1, int(jobs))
        self.chunk_frames = int(chunk_frames)
        self._pool = None

    def __enter__(self) -> "Aligner":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def run_pass(self, split: SplitData, hmm: HmmModel, gmm: DiagGmmSet, opts: AlignOptions, *, realign: bool,
                 accumulate: bool, labels: np.ndarray | None = None, tids: np.ndarray | None = None,
                 rows: np.ndarray | None = None, desc: str = "pass", front: FrontEnd = FrontEnd(),
                 mllt: bool = False, fmllr: bool = False) -> PassSummary:
        """One pass with the models' front end ``front``. ``labels`` (split frames,) pdf per frame: used when not
        realigning, updated when realigning (with ``tids``); rows not given are processed all. ``mllt``:
        accumulate MLLT statistics from ``labels`` (no realignment) instead of GMM statistics; ``fmllr``: likewise,
        per-speaker fMLLR statistics (of ``front``'s features without its speaker transforms)."""
        if (mllt or fmllr) and realign:
            raise ValueError("an MLLT / fMLLR pass accumulates over a fixed alignment (realign=False)")
        if fmllr:
            front = front.with_speakers(None)
        t0 = time.time()
        ctx = PassContext(f"{os.getpid()}-{next(_PASS_IDS)}", gmm.state_dict(),
                          pickle.dumps((hmm.topo, hmm.ctx_dep, hmm.tm)), self.lang_dir, opts, realign, accumulate,
                          front.with_speakers(None), mllt, fmllr)
        if rows is None:
            rows = np.arange(len(split.utt_ids))
        if not realign:
            rows = np.asarray([r for r in rows if labels is not None
                               and (labels[split.starts[r]:split.starts[r] + split.lengths[r]] >= 0).any()], dtype=int)
        tasks = []
        for ch in split_chunks(split, rows, self.chunk_frames):
            lab = None
            if not realign:
                lab = np.concatenate([labels[split.starts[r]:split.starts[r] + split.lengths[r]] for r in ch])
            spk = [split.speakers[r] for r in ch] if split.speakers else None
            if front.speakers and spk is None:
                raise ValueError(f"{split.name}: speaker transforms need the store's speakers")
            tasks.append((ctx, split.store_dir, ch.tolist(), split.starts[ch].tolist(), split.lengths[ch].tolist(),
                          [split.utt_ids[r] for r in ch], [split.words[r] for r in ch], lab, spk,
                          front.for_speakers(spk) if front.speakers else None))
        if self.jobs > 1 and self._pool is None:  # started by the first pass: a run with nothing to do needs none
            self._pool = mp.get_context("spawn").Pool(self.jobs, initializer=_worker_init)
        it = (self._pool.imap(_process_chunk_star, tasks) if self._pool is not None
              else map(_process_chunk_star, tasks))
        stats = None
        tid_counts = None
        failed: dict[int, str] = {}
        aligned = 0
        ll, nfr = 0.0, 0
        g_mllt, beta = None, 0.0
        fmllr_stats: dict = {}
        for res in tqdm(it, total=len(tasks), desc=desc, unit="chunk", leave=False):
            if res.stats is not None:
                stats = res.stats if stats is None else stats.add_(res.stats)
            if res.tid_counts is not None:
                tid_counts = res.tid_counts if tid_counts is None else tid_counts + res.tid_counts
            for spk, st in (res.fmllr or {}).items():  # chunk order: the sums do not depend on --jobs
                fmllr_stats[spk] = st if spk not in fmllr_stats else fmllr_stats[spk].add_(st)
            if res.mllt is not None:
                g_mllt = res.mllt[0] if g_mllt is None else g_mllt + res.mllt[0]
                beta += res.mllt[1]
            failed.update(res.failed)
            ll += res.align_loglik
            nfr += res.frames
            if realign:
                for r, t in zip(res.rows, res.tids):
                    s, n = int(split.starts[r]), int(split.lengths[r])
                    if t is None:
                        if labels is not None:
                            labels[s:s + n] = -1
                        if tids is not None:
                            tids[s:s + n] = 0
                    else:
                        aligned += 1
                        if labels is not None:
                            labels[s:s + n] = hmm.tid2pdf[t]
                        if tids is not None:
                            tids[s:s + n] = t
            else:
                aligned += len(res.rows) - len(res.failed)
        return PassSummary(stats, tid_counts, failed, aligned, time.time() - t0, ll, nfr,
                           None if g_mllt is None else (g_mllt, beta), fmllr_stats if fmllr else None)
