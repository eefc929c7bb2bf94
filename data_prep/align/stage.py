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
   ``phones.ctm``, ``failed.tsv``, ``done.json``; then ``pdf_counts.npy`` (train split), ``occupancy.png``,
   ``boundary_offsets.png`` (with reference timings)
   and ``report.json`` (stamp ``exp/tri/.report.stamp.json``). CTM times and real-time factors use the
   feature store's frame shift.

5. **tri2** (``--lda-mllt``, ``exp/tri2``): Kaldi's ``train_lda_mllt.sh`` on tri's alignment of the train split
   (:mod:`data_prep.align.tri2`): spliced static features, LDA, a new tree, MLLT; every split is aligned again,
   into ``exp/tri2/ali/<split>``, and the report (with ``by_stage``: every split's boundary agreement and
   log-likelihood under tri and tri2) goes to ``exp/tri2``, the system the later stages then use.
6. **tri3** (``--sat``, ``exp/tri3``): Kaldi's ``train_sat.sh`` on tri2's alignment (:mod:`data_prep.align.tri3`):
   per-speaker fMLLR, a new tree, speaker-adaptive training; every split is aligned as ``align_fmllr.sh`` does, into
   ``exp/tri3/ali/<split>`` (with its speakers' transforms), and the report goes to ``exp/tri3``.

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
from pathlib import Path

import numpy as np

from asr_base.config import add_options, from_args, to_dict
from asr_base.io import read_json, save_npy, write_json
from asr_base.stamp import Step
from data_prep.align.config import AlignStageConfig
from data_prep.align.passes import Aligner
from data_prep.align.report import stage_summary
from data_prep.align.substages import (AlignRun, read_split, run_mono, run_split_alignment, run_tree, run_tri,
                                       tri1_spec)

log = logging.getLogger(__name__)


def run_align(cfg: AlignStageConfig) -> dict:
    """Run every sub-stage that is not up to date (see :mod:`data_prep.align.substages` and, with ``--lda-mllt`` /
    ``--sat``, :mod:`data_prep.align.tri2` / :mod:`data_prep.align.tri3`); returns the final system's report.json."""
    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order)
    from data_prep.lang.lang_dir import LangDir, load_topology

    t_start = time.time()
    lang = LangDir.load(cfg.lang)
    train = read_split(cfg, cfg.train_split, lang)
    log.info("train: %d utterances, %d frames (%.2f h)", len(train.utt_ids), train.num_frames,
             train.num_frames * train.frame_shift / 3600)
    systems: dict[str, dict] = {}  # stage -> its model summary and the alignments of every split
    seconds: dict[str, float] = {}  # wall time of every sub-stage in this run (~0 when it was up to date)

    def timed(name, fn, *args):
        t0 = time.time()
        out = fn(*args)
        seconds[name] = round(seconds.get(name, 0.0) + time.time() - t0, 1)
        return out

    with Aligner(cfg.lang, cfg.jobs, cfg.chunk_frames) as aligner:
        run = AlignRun(cfg, lang, load_topology(lang), aligner, train)
        mono, mono_tids, mono_hist = timed("mono", run_mono, run)
        spec = tri1_spec(run)
        tree = timed("tree", run_tree, run, spec, mono, mono_tids)
        tri, gmm, tri_hist, _ = timed("tri", run_tri, run, spec, tree, mono, mono_tids)
        tri_splits = cfg.splits + ([cfg.train_split] if cfg.lda_mllt and cfg.train_split not in cfg.splits else [])
        splits = {name: timed("tri ali", run_split_alignment, run, name, tri, gmm) for name in tri_splits}
        systems["tri"] = {"iterations": tri_hist, "num_pdfs": tri.num_pdfs, "num_gauss": gmm.num_gauss,
                          "splits": splits}
        final, final_dir = tri, run.tri_dir
        if cfg.lda_mllt:
            from data_prep.align.tri2 import run_tri2, tri1_train_ali, tri2_dir

            tri2, gmm2, tri2_hist, front2 = timed("tri2 (lda, tree, training)", run_tri2, run, tri,
                                                  np.load(tri1_train_ali(run) / "tid.npy"))
            final, final_dir = tri2, tri2_dir(run)
            tri2_splits = cfg.splits + ([cfg.train_split] if cfg.sat and cfg.train_split not in cfg.splits else [])
            splits = {name: timed("tri2 ali", run_split_alignment, run, name, tri2, gmm2, final_dir, front2)
                      for name in tri2_splits}
            systems["tri2"] = {"iterations": tri2_hist, "num_pdfs": tri2.num_pdfs, "num_gauss": gmm2.num_gauss,
                               "lda": read_json(final_dir / "lda.json"), "splits": splits}
        if cfg.sat:
            from data_prep.align.tri3 import run_sat_alignment, run_tri3, tri2_ali, tri3_dir

            tri3, gmm3, tri3_hist, front3 = timed("tri3 (fmllr, tree, training)", run_tri3, run, tri2, gmm2, front2,
                                                  np.load(tri2_ali(run, cfg.train_split) / "tid.npy"))
            final, final_dir = tri3, tri3_dir(run)
            splits = {name: timed("tri3 ali", run_sat_alignment, run, name, tri2, tri3, gmm3, front3)
                      for name in cfg.splits}
            systems["tri3"] = {"iterations": tri3_hist, "num_pdfs": tri3.num_pdfs, "num_gauss": gmm3.num_gauss,
                               "splits": splits}
    inputs = {"mono_history": run.mono_dir / "history.json",
              **{f"{k}_history": Path(cfg.exp) / k / "history.json" for k in systems},
              "model": final_dir / "final.mdl",
              **{f"ali_{'' if k == 'tri' else k + '_'}{n}": Path(cfg.exp) / k / "ali" / n / "done.json"
                 for k, v in systems.items() for n in v["splits"]}}
    refs = Path(cfg.reference_timings) / cfg.train_split if cfg.reference_timings else None
    if refs is not None and refs.is_dir():  # the monophones' boundaries too (they align the train split only)
        inputs.update(mono_alignment=run.mono_ali / "tid.npy", reference_timings=refs)
    step = Step(final_dir / ".report.stamp.json", "report", config=dict(splits=cfg.splits, train_split=cfg.train_split),
                inputs=inputs)
    if (final_dir / "report.json").is_file() and step.up_to_date(cfg.force):
        return read_json(final_dir / "report.json")
    step.invalidate()
    report: dict = {"config": to_dict(cfg), "mono": {"iterations": mono_hist, "num_pdfs": mono.num_pdfs},
                    **{k: {f: v for f, v in s.items() if f != "splits"} for k, s in systems.items()},
                    "final_system": final_dir.name, "splits": {n: s for n, s in splits.items() if n in cfg.splits}}
    by_stage = {k: stage_summary(s["splits"]) for k, s in systems.items()}  # what each stage changed
    if "mono_alignment" in inputs:
        by_stage = {"mono": mono_boundaries(run, mono, mono_tids, refs), **by_stage}
    if len(by_stage) > 1:
        report["by_stage"] = by_stage
    from data_prep.align.report import write_boundary_offsets_png, write_occupancy_png

    if cfg.train_split in cfg.splits:
        train_pdf = np.load(final_dir / "ali" / cfg.train_split / "pdf.npy")
        counts = np.bincount(train_pdf[train_pdf >= 0], minlength=final.num_pdfs).astype(np.int64)
        save_npy(final_dir / "pdf_counts.npy", counts)
        write_occupancy_png(final_dir / "occupancy.png", counts)
        report["states_used"] = int((counts > 0).sum())
    write_boundary_offsets_png(final_dir / "boundary_offsets.png", report["splits"])
    report["oov_rate"] = {n: s.get("oov", {}).get("oov_rate") for n, s in splits.items()}
    report["num_tied_states"] = final.num_pdfs
    report["seconds"] = round(time.time() - t_start, 1)
    report["stage_seconds"] = seconds
    write_json(final_dir / "report.json", report)
    step.done(num_tied_states=final.num_pdfs)
    return report


def mono_boundaries(run: AlignRun, mono, mono_tids: np.ndarray, refs: Path) -> dict[str, dict]:
    """The monophones' final train alignment against the reference timings (``exp/mono/ali/<train>/phones.ctm``)."""
    from data_prep.align.outputs import write_ctm
    from data_prep.align.report import boundary_agreement, read_ctm

    ctm = run.mono_ali / "phones.ctm"
    write_ctm(ctm, run.train, mono_tids, mono, run.lang)
    aligned = np.unique(np.searchsorted(run.train.starts, np.flatnonzero(mono_tids > 0), side="right") - 1).size
    return stage_summary({run.cfg.train_split: {"fraction_aligned": aligned / max(len(run.train.utt_ids), 1),
                                                "sanity": {"boundaries": boundary_agreement(read_ctm(ctm), refs)}}})


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, AlignStageConfig)


def main(args: argparse.Namespace) -> int:
    run_align(from_args(AlignStageConfig, args))
    return 0
