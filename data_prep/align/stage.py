"""``data-prep align``: flat-start HMM-GMM training, decision tree, forced alignment to tied states.

Pipeline (each sub-stage writes its outputs atomically; a rerun skips it while its options and inputs are
unchanged, :mod:`data_prep.align.substages` lists which, and ``--force`` redoes all):

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
   ``phones.ctm``, ``failed.tsv``, ``done.json``; then ``pdf_counts.npy`` (train split), ``occupancy.png``
   and ``report.json`` (stamp ``exp/tri/.report.stamp.json``). CTM times and real-time factors use the
   feature store's frame shift.

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

import numpy as np

from asr_base.config import add_options, from_args, to_dict
from asr_base.io import read_json, save_npy, write_json
from asr_base.stamp import Step
from data_prep.align.config import AlignStageConfig
from data_prep.align.passes import Aligner
from data_prep.align.substages import (AlignRun, read_split, run_mono, run_split_alignment, run_tree, run_tri)

log = logging.getLogger(__name__)


def run_align(cfg: AlignStageConfig) -> dict:
    """Run every sub-stage that is not up to date (see :mod:`data_prep.align.substages`); returns report.json."""
    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order)
    from data_prep.lang.lang_dir import LangDir, load_topology

    t_start = time.time()
    lang = LangDir.load(cfg.lang)
    train = read_split(cfg, cfg.train_split, lang)
    log.info("train: %d utterances, %d frames (%.2f h)", len(train.utt_ids), train.num_frames,
             train.num_frames * train.frame_shift / 3600)
    with Aligner(cfg.lang, cfg.jobs, cfg.chunk_frames, cfg.deltas) as aligner:
        run = AlignRun(cfg, lang, load_topology(lang), aligner, train)
        mono, mono_tids, mono_hist = run_mono(run)
        tree = run_tree(run, mono, mono_tids)
        tri, gmm, tri_hist = run_tri(run, tree, mono, mono_tids)
        splits = {name: run_split_alignment(run, name, tri, gmm) for name in cfg.splits}
    tri_dir = run.tri_dir
    step = Step(tri_dir / ".report.stamp.json", "report", config=dict(splits=cfg.splits, train_split=cfg.train_split),
                inputs={"mono_history": run.mono_dir / "history.json", "tri_history": tri_dir / "history.json",
                        "model": tri_dir / "final.mdl", **{f"ali_{n}": tri_dir / "ali" / n / "done.json" for n in splits}})
    if (tri_dir / "report.json").is_file() and step.up_to_date(cfg.force):
        return read_json(tri_dir / "report.json")
    step.invalidate()
    report: dict = {"config": to_dict(cfg), "mono": {"iterations": mono_hist, "num_pdfs": mono.num_pdfs},
                    "tri": {"iterations": tri_hist, "num_pdfs": tri.num_pdfs, "num_gauss": gmm.num_gauss},
                    "splits": splits}
    if cfg.train_split in cfg.splits:
        from data_prep.align.report import write_occupancy_png

        train_pdf = np.load(tri_dir / "ali" / cfg.train_split / "pdf.npy")
        counts = np.bincount(train_pdf[train_pdf >= 0], minlength=tri.num_pdfs).astype(np.int64)
        save_npy(tri_dir / "pdf_counts.npy", counts)
        write_occupancy_png(tri_dir / "occupancy.png", counts)
        report["states_used"] = int((counts > 0).sum())
    report["oov_rate"] = {n: s.get("oov", {}).get("oov_rate") for n, s in splits.items()}
    report["num_tied_states"] = tri.num_pdfs
    report["seconds"] = round(time.time() - t_start, 1)
    write_json(tri_dir / "report.json", report)
    step.done(num_tied_states=tri.num_pdfs)
    return report


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, AlignStageConfig)


def main(args: argparse.Namespace) -> int:
    run_align(from_args(AlignStageConfig, args))
    return 0
