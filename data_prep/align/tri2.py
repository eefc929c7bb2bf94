"""The sub-stages of tri2, Kaldi's ``train_lda_mllt.sh`` (``data-prep align --lda-mllt``), in ``exp/tri2``.

==========  ===============================  ==================================  ====================================
sub-stage   stamp                            options                             inputs
==========  ===============================  ==================================  ====================================
lda         ``exp/tri2/.lda.stamp.json``     ``--splice``, ``--lda-dim``         tri's train alignment and model,
                                                                                 train features, lang dir
tree        ``exp/tri2/.tree.stamp.json``    ``--lda-leaves``,                   tri's train alignment, ``lda.mat``,
                                             ``--tree-min-count``, ``--splice``  train features, lang dir
tri2        ``exp/tri2/.stamp.json``         ``--lda-*``, ``--mllt-iters``,      tree, ``lda.mat``, tri's train
                                             beams, seed                         alignment, train features + text
ali         ``exp/tri2/ali/<s>/.stamp.json`` beams, ``--splice``                 ``final.mdl``, ``final.mat``, tree,
                                                                                 the split's features + text
==========  ===============================  ==================================  ====================================

1. **lda**: the store's (static) features spliced ``+-splice`` frames, classes = the tied states of tri's final
   alignment of the train split, silence frames left out (``acc-lda`` with ``weight-silence-post 0``); the
   ``(lda_dim, (2 splice + 1) D)`` matrix goes to ``lda.mat`` (Kaldi binary, ``transform-feats`` reads it).
2. **tree**: a new tree from tri's alignment, its statistics in the LDA space (``acc-tree-stats``, ``build-tree``).
3. **tri2**: tri's alignment mapped through the new tree (``convert-ali``), one Gaussian per leaf, EM with
   realignment on ``--lda-realign``, mixture splitting up to ``--lda-gauss`` and MLLT on ``--mllt-iters``;
   ``final.mat`` = MLLT x LDA, ``final.mdl``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr_base.io import write_json
from asr_base.stamp import Step
from data_prep.align.front_end import FrontEnd, read_kaldi_matrix, write_kaldi_matrix
from data_prep.align.hmm import HmmModel
from data_prep.align.lda_mllt import LdaStats, estimate_lda
from data_prep.align.split_data import read_frames, utterance_ranges
from data_prep.align.substages import AlignRun, TriSpec, is_up_to_date, run_tree, run_tri

log = logging.getLogger(__name__)


def tri2_dir(run: AlignRun) -> Path:
    return Path(run.cfg.exp) / "tri2"


def tri1_train_ali(run: AlignRun) -> Path:
    return run.tri_dir / "ali" / run.cfg.train_split


def run_lda(run: AlignRun, tri: HmmModel, tri_tids: np.ndarray) -> np.ndarray:
    """``lda.mat`` from tri's final alignment of the train split (see the module docstring)."""
    cfg, train, d = run.cfg, run.train, tri2_dir(run)
    step = Step(d / ".lda.stamp.json", "tri2 lda", config=dict(splice=cfg.splice, lda_dim=cfg.lda_dim),
                inputs={"alignment": tri1_train_ali(run) / "tid.npy", "model": run.tri_dir / "final.mdl",
                        **run.inputs(cfg.train_split, text=False)})
    if is_up_to_date(step, cfg.force, [d / "lda.mat"]):
        return read_kaldi_matrix(d / "lda.mat")
    silence = np.zeros(max(int(tri.tid2phone.max()), *run.lang.silence_phone_ids) + 1, dtype=bool)
    silence[run.lang.silence_phone_ids] = True
    feats = np.load(Path(train.store_dir) / "feats.npy", mmap_mode="r")
    splice = FrontEnd(splice=cfg.splice)
    stats = None
    for lo, hi, rows in tqdm(list(utterance_ranges(train)), desc="lda stats", unit="chunk", leave=False):
        t = tri_tids[lo:hi]
        lab = np.where((t > 0) & ~silence[tri.tid2phone[t]], tri.tid2pdf[t], -1).astype(np.int64)
        x = read_frames(feats, train.starts[rows], train.lengths[rows], splice)
        stats = (stats or LdaStats.zeros(tri.num_pdfs, x.shape[1])).accumulate(x, lab)
    if stats is None:
        raise RuntimeError("no train frames for the LDA statistics")
    m, eig = estimate_lda(stats, cfg.lda_dim)
    write_kaldi_matrix(d / "lda.mat", m)
    kept = float(eig[:cfg.lda_dim].clip(min=0).sum() / max(eig.clip(min=0).sum(), 1e-30))
    write_json(d / "lda.json", {"input_dim": int(m.shape[1]), "dim": int(m.shape[0]), "frames": float(stats.occ.sum()),
                                "classes_seen": int((stats.occ > 0).sum()), "eigenvalues": eig.tolist(),
                                "between_class_kept": kept})
    log.info("tri2 lda: %d -> %d dims from %d non-silence frames of %d tied states; %.1f%% of the between-class "
             "variance kept", m.shape[1], m.shape[0], int(stats.occ.sum()), int((stats.occ > 0).sum()), 100 * kept)
    step.done(dim=int(m.shape[0]))
    return read_kaldi_matrix(d / "lda.mat")  # float32 values, as a rerun reads them


def tri2_spec(run: AlignRun, lda: np.ndarray) -> TriSpec:
    cfg = run.cfg
    leaves, gauss = cfg.budget("tri2")
    front = FrontEnd(splice=cfg.splice, matrix=lda)
    return TriSpec("tri2", tri2_dir(run), tri1_train_ali(run), leaves, cfg.lda_iters, list(cfg.lda_realign), gauss,
                   cfg.seed + 2, front,
                   dict(num_leaves=leaves, tree_min_count=cfg.tree_min_count, **front.stamp()),
                   dict(lda_iters=cfg.lda_iters, lda_realign=cfg.lda_realign, lda_gauss=gauss,
                        mllt_iters=cfg.mllt_iters, beam=cfg.beam, retry_beam=cfg.retry_beam, seed=cfg.seed,
                        max_oov_rate=cfg.max_oov_rate, **front.stamp()),
                   {"lda": tri2_dir(run) / "lda.mat"}, tuple(cfg.mllt_iters))


def run_tri2(run: AlignRun, tri: HmmModel, tri_tids: np.ndarray):
    """lda -> tree -> tri2 (see the module docstring); returns ``(model, GMMs, history, front end)``."""
    spec = tri2_spec(run, run_lda(run, tri, tri_tids))
    tree = run_tree(run, spec, tri, tri_tids)
    return run_tri(run, spec, tree, tri, tri_tids)
