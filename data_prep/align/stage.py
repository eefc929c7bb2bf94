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
   -> :class:`data_prep.align.tree.stats.TreeStats` -> :func:`data_prep.align.tree.build.build_tree`.
3. **tri** (``exp/tri``): triphone transition model from the tree; one Gaussian per tied state from the
   mono alignment mapped through the tree (Kaldi's ``convert-ali`` + ``gmm-init-model``), then
   ``--tri-iters`` iterations with realignment on ``--tri-realign`` and splitting up to ``--tri-gauss``.
4. **ali** (``exp/tri/ali/<split>``): final Viterbi alignment of every split with the triphone model:
   ``pdf.npy`` (1:1 with the feature store, -1 where not aligned), ``tid.npy`` (transition ids),
   ``phones.ctm``, ``failed.tsv``; ``pdf_counts.npy``, ``report.json`` and ``occupancy.png``.

Emission scores and statistics are computed in torch over chunks of whole utterances
(:mod:`data_prep.align.gmm`); the Viterbi is Kaldi's (:mod:`data_prep.align.hmm`). Chunks run in a spawn pool
of ``--jobs`` processes, each scoring, aligning and accumulating its chunk (Kaldi's ``JOB=1:nj``;
:mod:`data_prep.align.passes`); the schedule of every system is :mod:`data_prep.align.training`.
Graphs are compiled per pass with the current transition model (like ``gmm-align``), so the trained
transition probabilities are used with Kaldi's alignment scales (transition 1.0, self-loop 0.1,
acoustic 0.1).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, save_npy, write_json
from data_prep.align.hmm import AlignOptions, HmmModel, load_hmm
from data_prep.align.outputs import write_ctm, write_failed
from data_prep.align.passes import Aligner
from data_prep.align.split_data import FRAME_SHIFT, SplitData, contexts_range, load_split
from data_prep.align.training import flat_start_labels, init_gmm, save_system, shortest_rows, train_system

log = logging.getLogger(__name__)


@dataclass
class AlignStageConfig:
    lang: str = option("data/lang", help="lang dir (data-prep prepare-lang)")
    fbank_dir: str = option("data/fbank", help="feature stores: <fbank-dir>/<split>")
    data_dir: str = option("data", help="Kaldi data dirs: <data-dir>/<split>/text")
    exp: str = option("exp", help="writes <exp>/mono and <exp>/tri")
    train_split: str = option("train", help="split the models are trained on")
    splits: list[str] = option(["train", "dev", "test"], help="splits to align with the final model")
    mono_subset: int = option(1000, group="monophones",
                              help="train the monophones on the N shortest train utterances (0 = all); the tree "
                                   "statistics come from aligning the whole train split with the final monophones")
    mono_iters: int = option(25, group="monophones", help="monophone training iterations")
    mono_realign: list[int] = option([1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 23], group="monophones",
                                     help="monophone iterations with Viterbi realignment (space/comma separated)")
    mono_gauss: int = option(1000, group="monophones", help="total monophone Gaussians")
    num_leaves: int = option(800, group="decision tree", help="tied states (decision-tree leaves)")
    tree_min_count: float = option(100.0, group="decision tree", help="min frames per tree leaf")
    tri_iters: int = option(15, group="triphones", help="triphone training iterations")
    tri_realign: list[int] = option([4, 8, 12], group="triphones",
                                    help="triphone iterations with Viterbi realignment (space/comma separated)")
    tri_gauss: int = option(4000, group="triphones", help="total triphone Gaussians")
    beam: float = option(10.0, group="alignment", help="Viterbi beam (Kaldi's --beam)")
    retry_beam: float = option(40.0, group="alignment",
                               help="beam of the second try for an utterance that fails at --beam (Kaldi's --retry-beam)")
    jobs: int = option(2, group="resources", help="alignment/accumulation processes")
    chunk_frames: int = option(20000, group="resources", help="frames per work chunk")
    seed: int = option(0, help="seed of the mixture-splitting perturbations (the triphones use seed + 1)")
    reference_timings: str | None = option(None, help="optional reference phone timings <dir>/<split>/<utt>.txt "
                                                      "(start end phone, flite names); boundary agreement of the "
                                                      "final alignment goes into report.json")
    force: bool = option(False, help="redo every sub-stage")


# ---------------------------------------------------------------------------------------------- stage


def _stage_done(d: Path) -> bool:
    return (d / "done.json").is_file()


def run_align(cfg: AlignStageConfig) -> dict:
    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order)
    from data_prep.align.report import boundary_agreement, ctm_sanity, read_ctm, write_occupancy_png
    from data_prep.corpus.data_dir import DataDir
    from data_prep.align.tree.build import build_tree
    from data_prep.align.tree.event_map import TiedStateTree
    from data_prep.align.tree.stats import TreeStats
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
    report: dict = {"config": to_dict(cfg)}
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
            gmm = init_gmm(train, labels, mono.num_pdfs)
            gmm, mono_tids, mono_hist = train_system(aligner, train, mono, gmm, labels, cfg.mono_iters,
                                                     cfg.mono_realign, cfg.mono_gauss, opts, "mono", cfg.seed,
                                                     rows=mono_rows)
            # final mono alignment with the final model (feeds the tree)
            labels = np.full(train.num_frames, -1, np.int32)
            summ = aligner.run_pass(train, mono, gmm, opts, realign=True, accumulate=False, labels=labels,
                                    tids=mono_tids, desc="mono final align")
            save_system(mono_dir, mono, gmm, mono_hist)
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
                ctx = contexts_range(train, mono_tids, mono, lo, hi)
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
            ctx = contexts_range(train, mono_tids, mono, 0, train.num_frames)
            labels = np.full(train.num_frames, -1, np.int32)
            ok = ctx[:, 1] > 0
            labels[ok] = tree.lookup(ctx[ok])
            gmm = init_gmm(train, labels, tri.num_pdfs)
            gmm, _tids, tri_hist = train_system(aligner, train, tri, gmm, labels, cfg.tri_iters, cfg.tri_realign,
                                                cfg.tri_gauss, opts, "tri", cfg.seed + 1)
            save_system(tri_dir, tri, gmm, tri_hist)
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


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, AlignStageConfig)


def main(args: argparse.Namespace) -> int:
    run_align(from_args(AlignStageConfig, args))
    return 0
