"""The sub-stages of tri3, Kaldi's ``train_sat.sh`` + ``align_fmllr.sh`` (``data-prep align --lda-mllt --sat``), in
``exp/tri3``.

============  =================================  ==============================  ==================================
sub-stage     stamp                              options                         inputs
============  =================================  ==============================  ==================================
fmllr init    ``exp/tri3/.trans0.stamp.json``    --                              tri2's model, ``final.mat`` and
                                                                                 train alignment, train features
tree          ``exp/tri3/.tree.stamp.json``      ``--sat-leaves``,               tri2's train alignment, its
                                                 ``--tree-min-count``            ``final.mat``, ``trans.0``
tri3          ``exp/tri3/.stamp.json``           ``--sat-*``, ``--fmllr-iters``,  tree, ``final.mat``, ``trans.0``,
                                                 beams, seed                     tri2's train alignment
ali           ``exp/tri3/ali/<s>/.stamp.json``   beams, ``--splice``             ``final.mdl``, ``final.mat``, tree,
                                                                                 tri2's alignment of the split
============  =================================  ==============================  ==================================

1. **fmllr init**: every train speaker's fMLLR transform from tri2's model and alignment (``gmm-est-fmllr``) ->
   ``trans.0`` (Kaldi archive, speaker -> ``[A b]``).
2. **tree**: a new tree from tri2's alignment, its statistics in the adapted space (tri2's ``final.mat``, then
   ``trans.0``).
3. **tri3**: tri2's alignment mapped through the new tree, one Gaussian per leaf, EM with realignment on
   ``--sat-realign``, splitting up to ``--sat-gauss`` and the speakers' transforms re-estimated on
   ``--fmllr-iters`` (speaker-adaptive training); ``final.mdl``, ``final.mat`` (tri2's), ``trans.<train>``.
4. **ali** (``align_fmllr.sh``): for every split, the transforms of its speakers from tri2's alignment of it
   (mapped to tri3's states) and tri3's model, then a Viterbi alignment of the adapted features; ``trans.<split>``
   beside the usual outputs. Kaldi's first pass uses a speaker-independent ``final.alimdl`` instead; with the
   transcripts known, tri2's alignment is that first pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from asr_base.stamp import Step
from data_prep.align.fmllr import read_transforms, write_transforms
from data_prep.align.front_end import FrontEnd
from data_prep.align.gmm import DiagGmmSet
from data_prep.align.hmm import HmmModel
from data_prep.align.substages import (AlignRun, TriSpec, convert_alignment, is_up_to_date, run_split_alignment,
                                       run_tree, run_tri)
from data_prep.align.training import update_speaker_transforms

log = logging.getLogger(__name__)


def tri3_dir(run: AlignRun) -> Path:
    return Path(run.cfg.exp) / "tri3"


def tri2_ali(run: AlignRun, split: str) -> Path:
    return Path(run.cfg.exp) / "tri2" / "ali" / split


def run_fmllr_init(run: AlignRun, tri2: HmmModel, gmm2: DiagGmmSet, front2: FrontEnd,
                   tri2_tids: np.ndarray) -> dict[str, np.ndarray]:
    """``trans.0``: every train speaker's transform from tri2's model and alignment."""
    cfg, train, d = run.cfg, run.train, tri3_dir(run)
    tri2_dir = Path(cfg.exp) / "tri2"
    step = Step(d / ".trans0.stamp.json", "tri3 fmllr init", config={},  # no options: tri2's files decide
                inputs={"alignment": tri2_ali(run, cfg.train_split) / "tid.npy", "model": tri2_dir / "final.mdl",
                        "transform": tri2_dir / "final.mat", **run.inputs(cfg.train_split, text=False)})
    if is_up_to_date(step, cfg.force, [d / "trans.0"]):
        return read_transforms(d / "trans.0")
    labels = np.where(tri2_tids > 0, tri2.tid2pdf[tri2_tids], -1).astype(np.int32)
    front, gain, _ = update_speaker_transforms(run.aligner, train, tri2, gmm2, run.opts, labels,
                                               front2.with_speakers(None), "tri3 fmllr init")
    write_transforms(d / "trans.0", front.speakers)
    step.done(speakers=len(front.speakers), objf_gain_per_frame=gain)
    return read_transforms(d / "trans.0")


def tri3_spec(run: AlignRun, front: FrontEnd) -> TriSpec:
    cfg = run.cfg
    leaves, gauss = cfg.budget("tri3")
    d, tri2_dir = tri3_dir(run), Path(cfg.exp) / "tri2"
    return TriSpec("tri3", d, tri2_ali(run, cfg.train_split), leaves, cfg.sat_iters, list(cfg.sat_realign), gauss,
                   cfg.seed + 3, front,
                   dict(num_leaves=leaves, tree_min_count=cfg.tree_min_count, **front.stamp()),
                   dict(sat_iters=cfg.sat_iters, sat_realign=cfg.sat_realign, sat_gauss=gauss,
                        fmllr_iters=cfg.fmllr_iters, beam=cfg.beam, retry_beam=cfg.retry_beam, seed=cfg.seed,
                        max_oov_rate=cfg.max_oov_rate, **front.stamp()),
                   {"transform": tri2_dir / "final.mat", "trans0": d / "trans.0"}, (), tuple(cfg.fmllr_iters))


def run_tri3(run: AlignRun, tri2: HmmModel, gmm2: DiagGmmSet, front2: FrontEnd, tri2_tids: np.ndarray):
    """fmllr init -> tree -> tri3 (see the module docstring); returns ``(model, GMMs, history, front end)``, the
    front end holding the train speakers' transforms."""
    trans0 = run_fmllr_init(run, tri2, gmm2, front2, tri2_tids)
    spec = tri3_spec(run, front2.with_speakers(trans0))
    tree = run_tree(run, spec, tri2, tri2_tids)
    return run_tri(run, spec, tree, tri2, tri2_tids)


def run_sat_alignment(run: AlignRun, name: str, tri2: HmmModel, tri3: HmmModel, gmm3: DiagGmmSet,
                      front3: FrontEnd) -> dict:
    """One split as ``align_fmllr.sh`` aligns it: its speakers' transforms from tri2's alignment of it, then tri3's
    Viterbi on the adapted features (see the module docstring)."""
    from data_prep.align.tree.event_map import TiedStateTree

    d = tri3_dir(run)
    tree = TiedStateTree.read(d / "tree")

    def split_front(sp, out_dir: Path) -> FrontEnd:
        labels = convert_alignment(sp, np.load(tri2_ali(run, name) / "tid.npy"), tri2, tree)
        front, gain, _ = update_speaker_transforms(run.aligner, sp, tri3, gmm3, run.opts, labels,
                                                   front3.with_speakers(None), f"tri3 fmllr {name}")
        write_transforms(out_dir / "trans", front.speakers)
        return front

    return run_split_alignment(run, name, tri3, gmm3, d, front3.with_speakers(None), split_front=split_front,
                               extra_inputs={"si_alignment": tri2_ali(run, name) / "tid.npy"})
