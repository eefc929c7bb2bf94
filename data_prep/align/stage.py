"""``data-prep align``: flat-start HMM-GMM training, decision tree, forced alignment to tied states.

Pipeline (each sub-stage writes its outputs atomically and is skipped on rerun when complete):

1. **mono** (``exp/mono``): monophone HMMs (lang topology: 3-state phones, 5-state silence) with diagonal
   GMMs. Flat start = equal split of every utterance's frames over the HMM states of its transcript
   (first pronunciation of each word, ``SIL`` at both ends) and one Gaussian per state from it (Kaldi's
   ``gmm-init-mono`` + ``align-equal-compiled`` + first update). Then ``--mono-iters`` iterations of
   (Viterbi realignment on the iterations of ``--mono-realign``, statistics, M-step, transition update,
   mixture splitting up to ``--mono-gauss`` Gaussians), Kaldi's ``train_mono.sh`` schedule.
   Kaldi's flat start aligns equally along a random path of the compiled graph; the split over the
   transcript's states is the same without optional silences, which the first realignment adds.
2. **tree** (``exp/tri/tree``): ``(left, center, right, pdf class)`` of every frame of the mono alignment
   -> :class:`data_prep.align.decision_tree.TreeStats` -> :func:`data_prep.align.decision_tree.build_tree`.
3. **tri** (``exp/tri``): triphone transition model from the tree; one Gaussian per tied state from the
   mono alignment mapped through the tree (Kaldi's ``convert-ali`` + ``gmm-init-model``), then
   ``--tri-iters`` iterations with realignment on ``--tri-realign`` and splitting up to ``--tri-gauss``.
4. **ali** (``exp/tri/ali/<split>``): final Viterbi alignment of every split with the triphone model:
   ``pdf.npy`` (1:1 with the feature store, -1 where not aligned), ``tid.npy`` (transition ids),
   ``phones.ctm``, ``failed.tsv``; ``pdf_counts.npy``, ``report.json`` and ``occupancy.png``.

Emission scores and statistics are computed in torch over chunks of whole utterances
(:mod:`data_prep.align.gmm`); the Viterbi is Kaldi's (:mod:`data_prep.align.hmm`). Chunks run in a spawn pool
of ``--jobs`` processes, each scoring, aligning and accumulating its chunk (Kaldi's ``JOB=1:nj``).
Graphs are compiled per pass with the current transition model (like ``gmm-align``), so the trained
transition probabilities are used with Kaldi's alignment scales (transition 1.0, self-loop 0.1,
acoustic 0.1).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from asr_base.io import read_json, save_npy, write_json, write_text
from data_prep.align.gmm import DiagGmmSet, GmmStats, GmmUpdateConfig, single_gaussian_stats
from data_prep.align.hmm import (AlignOptions, GraphCompiler, HmmModel, equal_align_states, frame_contexts,
                                 load_hmm, phone_segments, viterbi_align, write_final_mdl)

log = logging.getLogger(__name__)

FRAME_SHIFT = 0.01


@dataclass
class AlignStageConfig:
    lang: str = "data/lang"
    fbank_dir: str = "data/fbank"
    data_dir: str = "data"
    exp: str = "exp"
    train_split: str = "train"
    splits: list[str] = field(default_factory=lambda: ["train", "dev", "test"])
    mono_subset: int = 1000
    mono_iters: int = 25
    mono_realign: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 23])
    mono_gauss: int = 1000
    num_leaves: int = 800
    tree_min_count: float = 100.0
    tri_iters: int = 15
    tri_realign: list[int] = field(default_factory=lambda: [4, 8, 12])
    tri_gauss: int = 4000
    beam: float = 10.0
    retry_beam: float = 40.0
    jobs: int = 2
    chunk_frames: int = 20000
    seed: int = 0
    reference_timings: str | None = None  # <dir>/<split>/<utt>.txt reference phone timings (synthetic corpora)
    force: bool = False


# ---------------------------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """Utterances of one split: store rows, word ids (None when there is no transcript)."""

    name: str
    store_dir: str
    utt_ids: list[str]
    starts: np.ndarray
    lengths: np.ndarray
    words: list[list[int] | None]
    word_strs: list[list[str] | None]

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


def load_split(name: str, store_dir: str | os.PathLike, text: dict[str, str], lang) -> SplitData:
    from data_prep.features.store import FeatureStore
    from data_prep.lang.lexicon import map_oov

    store = FeatureStore.open(store_dir)
    words, strs = [], []
    for u in store.utt_ids:
        t = text.get(u)
        if t is None:
            words.append(None)
            strs.append(None)
            continue
        ws = map_oov(t.split(), lang.lexicon, lang.oov)
        words.append([lang.words[w] for w in ws])
        strs.append(ws)
    return SplitData(name, str(store_dir), list(store.utt_ids), store.starts.copy(), store.lengths.copy(), words, strs)


def _chunks(split: SplitData, rows: np.ndarray, chunk_frames: int) -> list[np.ndarray]:
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


# ---------------------------------------------------------------------------------------------- passes


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


@dataclass
class ChunkResult:
    rows: list[int]
    tids: list[np.ndarray | None]  # per row: transition ids (realign) or None
    failed: dict[int, str]
    stats: GmmStats | None
    tid_counts: np.ndarray | None
    align_loglik: float = 0.0
    frames: int = 0


_WORKER_CACHE: dict = {}


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


def _min_frames(hmm: HmmModel, word_ids: list[int]) -> int:
    """Fewest frames any pronunciation of the transcript needs (no optional silence)."""
    lang = _WORKER_CACHE["lang"]
    names = _WORKER_CACHE.setdefault("id2word", {v: k for k, v in lang.words.items()})
    total = 0
    for w in word_ids:
        prons = lang.lexicon.get(names.get(w, ""), [()])
        total += min(hmm.min_frames([lang.phones[p] for p in pron]) for pron in prons)
    return total


def _feats(store_dir: str) -> np.ndarray:
    cache = _WORKER_CACHE.setdefault("feats", {})
    if store_dir not in cache:
        cache[store_dir] = np.load(Path(store_dir) / "feats.npy", mmap_mode="r")
    return cache[store_dir]


def process_chunk(ctx: PassContext, store_dir: str, rows: list[int], starts: list[int], lengths: list[int],
                  utt_ids: list[str], words: list[list[int] | None], labels: np.ndarray | None) -> ChunkResult:
    """Score, (re)align and accumulate one chunk of utterances (runs in a worker or in-process)."""
    hmm, gmm, compiler = _setup(ctx)
    feats = _feats(store_dir)
    x = torch.from_numpy(np.concatenate([np.asarray(feats[s:s + n], dtype=np.float32)
                                         for s, n in zip(starts, lengths)]))
    offs = np.concatenate([[0], np.cumsum(lengths)])
    failed: dict[int, str] = {}
    tids_out: list[np.ndarray | None] = [None] * len(rows)
    pdf_ll = None
    if ctx.realign:  # full scoring (every pdf) only where the Viterbi needs it
        pdf_ll = gmm.log_likelihoods(x).numpy()
        lab = np.full(x.shape[0], -1, dtype=np.int64)
        for k, (r, u, w) in enumerate(zip(rows, utt_ids, words)):
            if w is None:
                failed[r] = "no transcript"
                continue
            a, b = int(offs[k]), int(offs[k + 1])
            try:
                graph = compiler.compile(w)
            except Exception as e:  # noqa: BLE001 (listed, never fatal)
                failed[r] = f"graph compilation failed: {e}"
                continue
            res = viterbi_align(graph, pdf_ll[a:b], hmm, ctx.opts, u)
            if not res.ok:
                need = _min_frames(hmm, w)
                failed[r] = (f"too short: {b - a} frames < {need} HMM states of the transcript" if b - a < need
                             else res.reason)
                continue
            tids_out[k] = res.tids
            lab[a:b] = hmm.tid2pdf[res.tids]
    else:
        lab = np.asarray(labels, dtype=np.int64)
    stats = tid_counts = None
    if ctx.accumulate:  # scores only the Gaussians of each frame's pdf
        stats = gmm.accumulate(x, lab)
        good = [t for t in tids_out if t is not None]
        if good:
            tid_counts = np.bincount(np.concatenate(good), minlength=hmm.num_tids + 1).astype(np.float64)
    ll = 0.0
    nfr = 0
    if ctx.realign and not ctx.accumulate:  # per-frame log-likelihood of the alignment (final pass report)
        keep = np.flatnonzero(lab >= 0)
        if keep.size:
            ll = float(pdf_ll[keep, lab[keep]].astype(np.float64).sum())
            nfr = int(keep.size)
    return ChunkResult(list(rows), tids_out, failed, stats, tid_counts, ll, nfr)


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


class Aligner:
    """Runs passes over a split with a (possibly multi-process) executor."""

    def __init__(self, lang_dir: str, jobs: int = 2, chunk_frames: int = 20000):
        self.lang_dir = str(lang_dir)
        self.jobs = max(1, int(jobs))
        self.chunk_frames = int(chunk_frames)
        self._pool = None
        self._counter = 0

    def __enter__(self) -> "Aligner":
        if self.jobs > 1:
            self._pool = mp.get_context("spawn").Pool(self.jobs, initializer=_worker_init)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def run_pass(self, split: SplitData, hmm: HmmModel, gmm: DiagGmmSet, opts: AlignOptions, *, realign: bool,
                 accumulate: bool, labels: np.ndarray | None = None, tids: np.ndarray | None = None,
                 rows: np.ndarray | None = None, desc: str = "pass") -> PassSummary:
        """One pass. ``labels`` (split frames,) pdf per frame: used when not realigning, updated when
        realigning (with ``tids``); rows not given are processed all."""
        t0 = time.time()
        self._counter += 1
        ctx = PassContext(f"{os.getpid()}-{self._counter}", gmm.state_dict(),
                          pickle.dumps((hmm.topo, hmm.ctx_dep, hmm.tm)), self.lang_dir, opts, realign, accumulate)
        if rows is None:
            rows = np.arange(len(split.utt_ids))
        if not realign:
            rows = np.asarray([r for r in rows if labels is not None
                               and (labels[split.starts[r]:split.starts[r] + split.lengths[r]] >= 0).any()], dtype=int)
        tasks = []
        for ch in _chunks(split, rows, self.chunk_frames):
            lab = None
            if not realign:
                lab = np.concatenate([labels[split.starts[r]:split.starts[r] + split.lengths[r]] for r in ch])
            tasks.append((ctx, split.store_dir, ch.tolist(), split.starts[ch].tolist(), split.lengths[ch].tolist(),
                          [split.utt_ids[r] for r in ch], [split.words[r] for r in ch], lab))
        it = (self._pool.imap(_process_chunk_star, tasks) if self._pool is not None
              else map(_process_chunk_star, tasks))
        stats = None
        tid_counts = None
        failed: dict[int, str] = {}
        aligned = 0
        ll, nfr = 0.0, 0
        for res in tqdm(it, total=len(tasks), desc=desc, unit="chunk", leave=False):
            if res.stats is not None:
                stats = res.stats if stats is None else stats.add_(res.stats)
            if res.tid_counts is not None:
                tid_counts = res.tid_counts if tid_counts is None else tid_counts + res.tid_counts
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
        return PassSummary(stats, tid_counts, failed, aligned, time.time() - t0, ll, nfr)


# ---------------------------------------------------------------------------------------------- training


def flat_start_labels(split: SplitData, hmm: HmmModel, lang,
                      rows: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Equal alignment of each utterance over the monophone states of ``SIL words SIL`` (pdf per frame).

    Only ``rows`` (default: all) are labelled; every other frame is -1."""
    labels = np.full(split.num_frames, -1, dtype=np.int32)
    skipped: dict[int, str] = {}
    sil = lang.phones[lang.optional_silence]
    rows = range(len(split.utt_ids)) if rows is None else [int(r) for r in rows]
    for r in rows:  # per utterance; the frames of one are split vectorised
        ws = split.word_strs[r]
        if ws is None:
            skipped[r] = "no transcript"
            continue
        phones = [sil] + [lang.phones[p] for w in ws for p in lang.lexicon[w][0]] + [sil]
        pdfs = np.asarray([hmm.pdf_of(p, c) for p in phones for c in range(lang.num_pdf_classes(p))], dtype=np.int32)
        n = int(split.lengths[r])
        if n < pdfs.size:
            skipped[r] = f"too short for flat start ({n} frames < {pdfs.size} states)"
            continue
        s = int(split.starts[r])
        labels[s:s + n] = pdfs[equal_align_states(n, pdfs.size)]
    return labels, skipped


def shortest_rows(split: SplitData, n: int) -> np.ndarray:
    """Rows of the ``n`` shortest utterances that have a transcript (Kaldi's ``subset_data_dir.sh --shortest``),
    in store order; ``n <= 0`` or ``n >=`` the number of utterances: all of them."""
    has_text = np.asarray([w is not None for w in split.words], dtype=bool)
    cand = np.flatnonzero(has_text)
    if n <= 0 or n >= cand.size:
        return np.arange(len(split.utt_ids))
    return np.sort(cand[np.argsort(split.lengths[cand], kind="stable")[:n]])


def _init_gmm(split: SplitData, labels: np.ndarray, num_pdfs: int, chunk: int = 1 << 18) -> DiagGmmSet:
    feats = np.load(Path(split.store_dir) / "feats.npy", mmap_mode="r")
    stats = None
    for s in range(0, split.num_frames, chunk):
        st = single_gaussian_stats(np.asarray(feats[s:s + chunk], dtype=np.float32), labels[s:s + chunk], num_pdfs)
        stats = st if stats is None else stats.add_(st)
    return DiagGmmSet.from_single_stats(stats)


def train_system(aligner: Aligner, split: SplitData, hmm: HmmModel, gmm: DiagGmmSet, labels: np.ndarray,
                 iters: int, realign_iters: Sequence[int], target_gauss: int, opts: AlignOptions, name: str,
                 seed: int = 0, rows: np.ndarray | None = None) -> tuple[DiagGmmSet, np.ndarray, list[dict]]:
    """Kaldi-style training iterations. Returns the model, the transition ids of the last alignment and
    per-iteration records (average per-frame log-likelihood, Gaussians, aligned/failed counts).

    ``rows`` restricts training to those utterances (e.g. the monophone subset); ``labels`` must be -1
    outside them."""
    gen = torch.Generator().manual_seed(seed)
    tids = np.zeros(split.num_frames, dtype=np.int32)
    inc_iters = max(1, int(iters * 0.75))  # grow Gaussians over the first 3/4 of the iterations
    start_g = gmm.num_gauss
    history = []
    have_tids = False
    upd = GmmUpdateConfig()
    for it in range(1, iters + 1):
        realign = it in set(realign_iters)
        if realign:
            opts_it = opts
            summ = aligner.run_pass(split, hmm, gmm, opts_it, realign=True, accumulate=True, labels=labels, tids=tids,
                                    rows=rows, desc=f"{name} it{it} align+acc")
            have_tids = True
        else:
            summ = aligner.run_pass(split, hmm, gmm, opts, realign=False, accumulate=True, labels=labels,
                                    desc=f"{name} it{it} acc")
        if summ.stats is None:
            raise RuntimeError(f"{name} iteration {it}: no utterance could be used (all failed)")
        ll = summ.stats.avg_loglik
        gmm = gmm.update(summ.stats, upd)
        trans_objf = None
        if realign and summ.tid_counts is not None:
            trans_objf = hmm.update_transitions(summ.tid_counts)
        if it <= inc_iters:
            target = start_g + int(round((target_gauss - start_g) * it / inc_iters))
            pdf_occ = torch.zeros(gmm.num_pdfs, dtype=torch.float64).index_add_(0, gmm.gauss2pdf, summ.stats.occ)
            gmm = gmm.split(target, pdf_occ, upd, gen)
        rec = dict(iter=it, realigned=realign, avg_loglik=ll, frames=summ.stats.frames, num_gauss=gmm.num_gauss,
                   aligned=summ.aligned, failed=len(summ.failed), seconds=round(summ.seconds, 2))
        if trans_objf is not None:
            rec["transition_objf_per_frame"] = trans_objf
        history.append(rec)
        log.info("%s iter %d: avg loglik/frame %.4f over %d frames, %d Gaussians%s", name, it, ll,
                 summ.stats.frames, gmm.num_gauss,
                 f", realigned {summ.aligned} ok / {len(summ.failed)} failed" if realign else "")
    if not have_tids:
        raise RuntimeError(f"{name}: no realignment iteration (need at least one in the realign list)")
    return gmm, tids, history


# ---------------------------------------------------------------------------------------------- outputs


def write_ctm(path: Path, split: SplitData, tids: np.ndarray, hmm: HmmModel, lang) -> None:
    ok = tids > 0
    lines = []
    if ok.any():
        frame_rows = np.repeat(np.arange(len(split.utt_ids)), split.lengths)
        idx = np.flatnonzero(ok)
        utt_starts = np.flatnonzero(np.diff(np.concatenate([[-1], frame_rows[idx]])) != 0)
        phone, starts, lengths, _ = phone_segments(tids[idx], hmm, utt_starts)
        g = idx[starts]
        rows = frame_rows[g]
        local = g - split.starts[rows]
        for r, st, ln, p in zip(rows.tolist(), local.tolist(), lengths.tolist(), phone.tolist()):
            lines.append(f"{split.utt_ids[r]} 1 {st * FRAME_SHIFT:.2f} {ln * FRAME_SHIFT:.2f} {lang.phone_names[p]}\n")
    write_text(path, "".join(lines))


def write_failed(path: Path, split: SplitData, failed: dict[int, str]) -> None:
    write_text(path, "utt_id\treason\n" + "".join(f"{split.utt_ids[r]}\t{failed[r]}\n" for r in sorted(failed)))


def _stage_done(d: Path) -> bool:
    return (d / "done.json").is_file()


def _save_system(d: Path, hmm: HmmModel, gmm: DiagGmmSet, history: list[dict], extra: dict | None = None) -> None:
    write_final_mdl(d / "final.mdl", hmm, gmm)
    write_text(d / "num_pdfs", f"{hmm.num_pdfs}\n")
    write_json(d / "history.json", history)


# ---------------------------------------------------------------------------------------------- stage


def run_align(cfg: AlignStageConfig) -> dict:
    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order)
    from data_prep.align.report import boundary_agreement, ctm_sanity, read_ctm, write_occupancy_png
    from data_prep.corpus.data_dir import DataDir
    from data_prep.align.decision_tree import TiedStateTree, TreeStats, build_tree
    from data_prep.lang.lang_dir import LangDir, load_topology

    t_start = time.time()
    exp = Path(cfg.exp)
    mono_dir, tri_dir = exp / "mono", exp / "tri"
    lang = LangDir.load(cfg.lang)
    topo = load_topology(lang)
    opts = AlignOptions(beam=cfg.beam, retry_beam=cfg.retry_beam)

    def split_data(name: str) -> SplitData:
        text = DataDir.load(Path(cfg.data_dir) / name).text
        return load_split(name, Path(cfg.fbank_dir) / name, text, lang)

    train = split_data(cfg.train_split)
    log.info("train: %d utterances, %d frames (%.2f h)", len(train.utt_ids), train.num_frames,
             train.num_frames * FRAME_SHIFT / 3600)
    report: dict = {"config": asdict(cfg)}
    with Aligner(cfg.lang, cfg.jobs, cfg.chunk_frames) as aligner:
        # ---------------- mono
        mono = HmmModel.monophone(topo)
        if _stage_done(mono_dir) and not cfg.force:
            log.info("%s is complete; skipping monophone training", mono_dir)
            mono, _ = load_hmm(mono_dir / "final.mdl", topo, mono.ctx_dep)
            mono_tids = np.load(mono_dir / "ali" / cfg.train_split / "tid.npy")
            mono_hist = read_json(mono_dir / "history.json")
        else:
            mono_rows = shortest_rows(train, cfg.mono_subset)
            labels, skipped = flat_start_labels(train, mono, lang, mono_rows)
            log.info("monophone subset: %d of %d utterances (%.2f h); flat start: %d equally aligned, %d skipped",
                     len(mono_rows), len(train.utt_ids), train.lengths[mono_rows].sum() * FRAME_SHIFT / 3600,
                     len(mono_rows) - len(skipped), len(skipped))
            gmm = _init_gmm(train, labels, mono.num_pdfs)
            gmm, mono_tids, mono_hist = train_system(aligner, train, mono, gmm, labels, cfg.mono_iters,
                                                     cfg.mono_realign, cfg.mono_gauss, opts, "mono", cfg.seed,
                                                     rows=mono_rows)
            # final mono alignment with the final model (feeds the tree)
            labels = np.full(train.num_frames, -1, np.int32)
            summ = aligner.run_pass(train, mono, gmm, opts, realign=True, accumulate=False, labels=labels,
                                    tids=mono_tids, desc="mono final align")
            _save_system(mono_dir, mono, gmm, mono_hist)
            save_npy(mono_dir / "ali" / cfg.train_split / "tid.npy", mono_tids)
            save_npy(mono_dir / "ali" / cfg.train_split / "pdf.npy", labels)
            write_failed(mono_dir / "ali" / cfg.train_split / "failed.tsv", train, summ.failed)
            write_json(mono_dir / "done.json", {"aligned": summ.aligned, "failed": len(summ.failed)})
        report["mono"] = {"iterations": mono_hist, "num_pdfs": mono.num_pdfs}

        # ---------------- tree
        tree_path = tri_dir / "tree"
        if tree_path.is_file() and not cfg.force:
            log.info("%s exists; skipping tree building", tree_path)
            tree = TiedStateTree.read(tree_path)
        else:
            feats = np.load(Path(train.store_dir) / "feats.npy", mmap_mode="r")
            stats = None
            step = 1 << 18
            for s in tqdm(range(0, train.num_frames, step), desc="tree stats", unit="chunk", leave=False):
                t = mono_tids[s:s + step]
                ok = t > 0
                if not ok.any():
                    continue
                # contexts need whole utterances: use the utterance starts inside this chunk
                lo, hi = s, min(s + step, train.num_frames)
                ctx = _contexts_range(train, mono_tids, mono, lo, hi)
                keep = ctx[:, 1] > 0
                st = TreeStats.from_frames(ctx[keep, 0], ctx[keep, 1], ctx[keep, 2], ctx[keep, 3],
                                           np.asarray(feats[lo:hi], dtype=np.float32)[keep])
                stats = st if stats is None else stats.merge(st)
            if stats is None:
                raise RuntimeError("no aligned frames for tree statistics")
            tree = build_tree(stats, lang, num_leaves=cfg.num_leaves, min_count=cfg.tree_min_count)
            tree.write(tree_path)
            log.info("tree: %d tied states from %d seen triphone states", tree.num_pdfs, len(stats))
        ctx_dep = tree.to_context_dependency()

        # ---------------- tri
        tri = HmmModel(topo, ctx_dep)
        if _stage_done(tri_dir) and not cfg.force:
            log.info("%s is complete; skipping triphone training", tri_dir)
            tri, gmm = load_hmm(tri_dir / "final.mdl", topo, ctx_dep)
            tri_hist = read_json(tri_dir / "history.json")
        else:
            ctx = _contexts_range(train, mono_tids, mono, 0, train.num_frames)
            labels = np.full(train.num_frames, -1, np.int32)
            ok = ctx[:, 1] > 0
            labels[ok] = tree.lookup(ctx[ok])
            gmm = _init_gmm(train, labels, tri.num_pdfs)
            gmm, _tids, tri_hist = train_system(aligner, train, tri, gmm, labels, cfg.tri_iters, cfg.tri_realign,
                                                cfg.tri_gauss, opts, "tri", cfg.seed + 1)
            _save_system(tri_dir, tri, gmm, tri_hist)
            write_json(tri_dir / "done.json", {"num_pdfs": tri.num_pdfs, "num_gauss": gmm.num_gauss})
        report["tri"] = {"iterations": tri_hist, "num_pdfs": tri.num_pdfs, "num_gauss": gmm.num_gauss}

        # ---------------- final alignments
        report["splits"] = {}
        for name in cfg.splits:
            d = tri_dir / "ali" / name
            if (d / "done.json").is_file() and not cfg.force:
                log.info("%s is complete; skipping", d)
                report["splits"][name] = read_json(d / "done.json")
                continue
            sp = train if name == cfg.train_split else split_data(name)
            labels = np.full(sp.num_frames, -1, np.int32)
            tids = np.zeros(sp.num_frames, np.int32)
            summ = aligner.run_pass(sp, tri, gmm, opts, realign=True, accumulate=False, labels=labels, tids=tids,
                                    desc=f"align {name}")
            save_npy(d / "pdf.npy", labels)
            save_npy(d / "tid.npy", tids)
            write_ctm(d / "phones.ctm", sp, tids, tri, lang)
            write_failed(d / "failed.tsv", sp, summ.failed)
            ctm = read_ctm(d / "phones.ctm")
            sanity = ctm_sanity(ctm)
            if cfg.reference_timings and (Path(cfg.reference_timings) / name).is_dir():
                sanity["boundaries"] = boundary_agreement(ctm, Path(cfg.reference_timings) / name)
            audio_s = sp.num_frames * FRAME_SHIFT
            info = {"utterances": len(sp.utt_ids), "aligned": summ.aligned, "failed": len(summ.failed),
                    "fraction_aligned": summ.aligned / max(len(sp.utt_ids), 1),
                    "avg_loglik": summ.align_loglik / max(summ.align_frames, 1),
                    "frames": sp.num_frames, "aligned_frames": summ.align_frames,
                    "seconds": round(summ.seconds, 2), "rtf": summ.seconds / max(audio_s, 1e-9), "sanity": sanity}
            write_json(d / "done.json", info)
            report["splits"][name] = info
            log.info("%s: aligned %d / %d utterances (%.1f%%), avg loglik %.3f, RTF %.4f", name, summ.aligned,
                     len(sp.utt_ids), 100 * info["fraction_aligned"], info["avg_loglik"], info["rtf"])

    train_pdf = np.load(tri_dir / "ali" / cfg.train_split / "pdf.npy") if cfg.train_split in cfg.splits else None
    if train_pdf is not None:
        counts = np.bincount(train_pdf[train_pdf >= 0], minlength=tri.num_pdfs).astype(np.int64)
        save_npy(tri_dir / "pdf_counts.npy", counts)
        write_occupancy_png(tri_dir / "occupancy.png", counts)
        report["states_used"] = int((counts > 0).sum())
    report["num_tied_states"] = tri.num_pdfs
    report["seconds"] = round(time.time() - t_start, 1)
    write_json(tri_dir / "report.json", report)
    return report


def _contexts_range(split: SplitData, tids: np.ndarray, hmm: HmmModel, lo: int, hi: int) -> np.ndarray:
    """(hi-lo, 4) contexts of frames lo..hi (whole utterances around them are used); center 0 = unaligned."""
    r0 = int(np.searchsorted(split.starts, lo, side="right") - 1)
    r1 = int(np.searchsorted(split.starts, hi, side="left"))
    a, b = int(split.starts[r0]), int(split.starts[r1 - 1] + split.lengths[r1 - 1])
    t = tids[a:b]
    out = np.zeros((b - a, 4), np.int32)
    ok = t > 0
    if ok.any():
        idx = np.flatnonzero(ok)
        rows = np.repeat(np.arange(r0, r1), split.lengths[r0:r1])[idx]
        utt_starts = np.flatnonzero(np.diff(np.concatenate([[-1], rows])) != 0)
        out[idx] = frame_contexts(t[idx], hmm, utt_starts)
    return out[lo - a: hi - a]


# ---------------------------------------------------------------------------------------------- CLI


def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.replace(",", " ").split()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = AlignStageConfig()
    parser.add_argument("--lang", default=d.lang, help="lang dir (data-prep prepare-lang)")
    parser.add_argument("--fbank-dir", default=d.fbank_dir, help="feature stores: <fbank-dir>/<split>")
    parser.add_argument("--data-dir", default=d.data_dir, help="Kaldi data dirs: <data-dir>/<split>/text")
    parser.add_argument("--exp", default=d.exp, help="writes <exp>/mono and <exp>/tri")
    parser.add_argument("--train-split", default=d.train_split, help="split the models are trained on")
    parser.add_argument("--splits", nargs="+", default=d.splits, help="splits to align with the final model")
    parser.add_argument("--mono-subset", type=int, default=d.mono_subset,
                        help="train the monophones on the N shortest train utterances (0 = all); the tree "
                             "statistics come from aligning the whole train split with the final monophones")
    parser.add_argument("--mono-iters", type=int, default=d.mono_iters)
    parser.add_argument("--mono-realign", type=_int_list, default=d.mono_realign,
                        help="iterations with Viterbi realignment (space/comma separated)")
    parser.add_argument("--mono-gauss", type=int, default=d.mono_gauss, help="total monophone Gaussians")
    parser.add_argument("--num-leaves", type=int, default=d.num_leaves, help="tied states (decision-tree leaves)")
    parser.add_argument("--tree-min-count", type=float, default=d.tree_min_count, help="min frames per tree leaf")
    parser.add_argument("--tri-iters", type=int, default=d.tri_iters)
    parser.add_argument("--tri-realign", type=_int_list, default=d.tri_realign)
    parser.add_argument("--tri-gauss", type=int, default=d.tri_gauss, help="total triphone Gaussians")
    parser.add_argument("--beam", type=float, default=d.beam)
    parser.add_argument("--retry-beam", type=float, default=d.retry_beam)
    parser.add_argument("--jobs", type=int, default=d.jobs, help="alignment/accumulation processes")
    parser.add_argument("--chunk-frames", type=int, default=d.chunk_frames, help="frames per work chunk")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--reference-timings", default=None,
                        help="optional reference phone timings <dir>/<split>/<utt>.txt (start end phone, flite "
                             "names); boundary agreement of the final alignment goes into report.json")
    parser.add_argument("--force", action="store_true", help="redo every sub-stage")


def main(args: argparse.Namespace) -> int:
    cfg = AlignStageConfig(**{k: getattr(args, k) for k in AlignStageConfig.__dataclass_fields__})
    run_align(cfg)
    return 0
