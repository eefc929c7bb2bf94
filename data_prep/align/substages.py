"""The sub-stages of ``data-prep align``: each one an :class:`asr_base.stamp.Step` with exactly the options
and inputs it depends on, so a rerun redoes what changed and everything downstream of it, and nothing else.

==========  ===============================  ==================================  ====================================
sub-stage   stamp                            options                             inputs
==========  ===============================  ==================================  ====================================
mono        ``exp/mono/.stamp.json``         train split, ``--mono-*``, beams,   train features + text, lang dir
                                             seed
tree        ``exp/tri/.tree.stamp.json``     ``--num-leaves``,                   mono alignment (``tid.npy``), train
                                             ``--tree-min-count``                features, lang dir
tri         ``exp/tri/.stamp.json``          ``--tri-*``, beams, seed            tree, mono alignment, train
                                                                                 features + text, lang dir
ali         ``exp/tri/ali/<s>/.stamp.json``  beams                               ``final.mdl``, tree, the split's
                                                                                 features + text, lang dir, reference
                                                                                 timings
==========  ===============================  ==================================  ====================================

tri2 (``--lda-mllt``) and tri3 (``--sat``) reuse the tree, training and alignment steps with their own options:
:mod:`data_prep.align.tri2`, :mod:`data_prep.align.tri3`. (The report's step is in :mod:`data_prep.align.stage`.)
``--jobs`` and ``--chunk-frames`` only change the speed, so no step depends on them. A step that is rebuilt
drops its stamp first, so a run that dies half-way never leaves outputs that look complete. ``--max-oov-rate``
(which utterances have a usable transcript) is an option of mono, tri and every ali step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asr_base.io import read_json, save_npy, write_json
from asr_base.stamp import STAMP_NAME, Step
from data_prep.align.config import AlignStageConfig
from data_prep.align.fmllr import read_transforms, write_transforms
from data_prep.align.front_end import FrontEnd, read_kaldi_matrix, write_kaldi_matrix
from data_prep.align.gmm import DiagGmmSet
from data_prep.align.hmm import AlignOptions, HmmModel, load_hmm
from data_prep.align.outputs import SPLIT_OUTPUTS, write_failed, write_split_alignment
from data_prep.align.passes import Aligner
from data_prep.align.split_data import (SplitData, contexts_range, load_split, read_frames, split_speakers,
                                       utterance_ranges)
from data_prep.align.training import flat_start_labels, init_gmm, save_system, shortest_rows, train_system
from data_prep.align.tree.build import build_tree
from data_prep.align.tree.event_map import TiedStateTree
from data_prep.align.tree.stats import TreeStats

log = logging.getLogger(__name__)


@dataclass
class AlignRun:
    """What the sub-stages share: the options, the lang dir and its topology, the worker pool, the train split."""

    cfg: AlignStageConfig
    lang: Any  # data_prep.lang.lang_dir.LangDir
    topo: Any  # kaldi_hmm_gmm.HmmTopology
    aligner: Aligner
    train: SplitData

    @property
    def opts(self) -> AlignOptions:
        return AlignOptions(beam=self.cfg.beam, retry_beam=self.cfg.retry_beam)

    @property
    def front(self) -> FrontEnd:
        """The front end of mono and tri (the store's features, with ``--deltas``)."""
        return FrontEnd(deltas=self.cfg.deltas)

    @property
    def feature_options(self) -> dict:
        """The feature options of mono's and tri's stamps; ``--deltas 0`` is left out, so systems built before the
        option existed stay up to date."""
        return self.front.stamp()

    @property
    def mono_dir(self) -> Path:
        return Path(self.cfg.exp) / "mono"

    @property
    def tri_dir(self) -> Path:
        return Path(self.cfg.exp) / "tri"

    @property
    def mono_ali(self) -> Path:
        return self.mono_dir / "ali" / self.cfg.train_split

    def split(self, name: str) -> SplitData:
        return self.train if name == self.cfg.train_split else read_split(self.cfg, name, self.lang)

    def inputs(self, split: str, text: bool = True) -> dict[str, Path | str]:
        """The inputs every sub-stage has: the split's feature store (and transcripts) and the lang dir."""
        out: dict[str, Path | str] = {"features": Path(self.cfg.fbank_dir) / split, "lang": self.cfg.lang}
        if text:
            out["text"] = Path(self.cfg.data_dir) / split / "text"
        return out


def read_split(cfg: AlignStageConfig, name: str, lang) -> SplitData:
    from data_prep.corpus.data_dir import DataDir

    return load_split(name, Path(cfg.fbank_dir) / name, DataDir.load(Path(cfg.data_dir) / name).text, lang,
                      cfg.max_oov_rate)


def is_up_to_date(step: Step, force: bool, outputs: list[Path]) -> bool:
    """The step's stamp says so and its outputs are all there; otherwise its stamp is dropped (rebuild)."""
    missing = [p for p in outputs if not p.is_file()]
    if missing:
        if step.stamp.is_file() and not force:
            log.info("%s: rebuilding, output missing: %s", step.name, missing[0])
    elif step.up_to_date(force):
        return True
    if not step.stamp.is_file():
        log.info("%s: building", step.name)
    step.invalidate()
    return False


def run_mono(run: AlignRun) -> tuple[HmmModel, np.ndarray, list[dict]]:
    """Monophones: flat start on the shortest utterances, EM, then a final alignment of the whole train split."""
    cfg, train, d = run.cfg, run.train, run.mono_dir
    mono = HmmModel.monophone(run.topo)
    step = Step(d / STAMP_NAME, "mono", inputs=run.inputs(cfg.train_split),
                config=dict(train_split=cfg.train_split, mono_subset=cfg.mono_subset, mono_iters=cfg.mono_iters,
                            mono_realign=cfg.mono_realign, mono_gauss=cfg.mono_gauss, beam=cfg.beam,
                            retry_beam=cfg.retry_beam, seed=cfg.seed, max_oov_rate=cfg.max_oov_rate, **run.feature_options))
    outputs = [d / "final.mdl", d / "history.json", run.mono_ali / "tid.npy"]
    if is_up_to_date(step, cfg.force, outputs):
        mono, _ = load_hmm(d / "final.mdl", run.topo, mono.ctx_dep)
        return mono, np.load(run.mono_ali / "tid.npy"), read_json(d / "history.json")
    mono_rows = shortest_rows(train, cfg.mono_subset)
    labels, skipped = flat_start_labels(train, mono, run.lang, mono_rows)
    log.info("monophone subset: %d of %d utterances (%.2f h); flat start: %d equally aligned, %d skipped",
             len(mono_rows), len(train.utt_ids), train.lengths[mono_rows].sum() * train.frame_shift / 3600,
             len(mono_rows) - len(skipped), len(skipped))
    gmm = init_gmm(train, labels, mono.num_pdfs, run.front)
    gmm, mono_tids, history, _ = train_system(run.aligner, train, mono, gmm, labels, cfg.mono_iters,
                                              cfg.mono_realign, cfg.mono_gauss, run.opts, "mono", cfg.seed,
                                              rows=mono_rows, front=run.front)
    # final mono alignment with the final model (feeds the tree)
    labels = np.full(train.num_frames, -1, np.int32)
    summ = run.aligner.run_pass(train, mono, gmm, run.opts, realign=True, accumulate=False, labels=labels,
                                tids=mono_tids, desc="mono final align", front=run.front)
    save_system(d, mono, gmm, history)
    save_npy(run.mono_ali / "tid.npy", mono_tids)
    save_npy(run.mono_ali / "pdf.npy", labels)
    write_failed(run.mono_ali / "failed.tsv", train, train.failure_reasons(summ.failed))
    write_json(d / "done.json", {"aligned": summ.aligned, "failed": len(summ.failed)})
    step.done(aligned=summ.aligned, failed=len(summ.failed))
    return mono, mono_tids, history


@dataclass
class TriSpec:
    """One triphone system: where it goes, the alignment it starts from and its options (those its stamps
    record, under the names of the options that set them, so the stamps of existing systems stay valid)."""

    name: str  # "tri" (deltas, Kaldi's tri1), "tri2" (LDA+MLLT) or "tri3" (SAT)
    dir: Path
    prev_ali: Path  # the previous system's train alignment (tid.npy): contexts for the tree, labels to start from
    num_leaves: int
    iters: int
    realign: list[int]
    gauss: int
    seed: int
    front: FrontEnd
    tree_config: dict
    train_config: dict
    extra_inputs: dict  # e.g. the LDA matrix
    mllt_iters: tuple[int, ...] = ()
    fmllr_iters: tuple[int, ...] = ()  # SAT: the front end's speaker transforms are re-estimated on these


def tri1_spec(run: AlignRun) -> TriSpec:
    cfg = run.cfg
    return TriSpec("tri", run.tri_dir, run.mono_ali, cfg.num_leaves, cfg.tri_iters, list(cfg.tri_realign),
                   cfg.tri_gauss, cfg.seed + 1, run.front,
                   dict(num_leaves=cfg.num_leaves, tree_min_count=cfg.tree_min_count, **run.feature_options),
                   dict(tri_iters=cfg.tri_iters, tri_realign=cfg.tri_realign, tri_gauss=cfg.tri_gauss, beam=cfg.beam,
                        retry_beam=cfg.retry_beam, seed=cfg.seed, max_oov_rate=cfg.max_oov_rate, **run.feature_options),
                   {})


def run_tree(run: AlignRun, spec: TriSpec, prev: HmmModel, prev_tids: np.ndarray) -> TiedStateTree:
    """The decision tree from the triphone contexts of the previous system's alignment of the whole train split,
    with the statistics of ``spec``'s features."""
    cfg, train, path = run.cfg, run.train, spec.dir / "tree"
    step = Step(spec.dir / ".tree.stamp.json", f"{spec.name} tree", config=spec.tree_config,
                inputs={"mono_alignment" if spec.name == "tri" else "alignment": spec.prev_ali / "tid.npy",
                        **spec.extra_inputs, **run.inputs(cfg.train_split, text=False)})
    if is_up_to_date(step, cfg.force, [path]):
        return TiedStateTree.read(path)
    feats = np.load(Path(train.store_dir) / "feats.npy", mmap_mode="r")
    stats = None
    for lo, hi, rows in tqdm(list(utterance_ranges(train)), desc="tree stats", unit="chunk", leave=False):
        if not (prev_tids[lo:hi] > 0).any():
            continue
        ctx = contexts_range(train, prev_tids, prev, lo, hi)
        keep = ctx[:, 1] > 0
        x = read_frames(feats, train.starts[rows], train.lengths[rows], spec.front, split_speakers(train, rows))
        st = TreeStats.from_frames(ctx[keep, 0], ctx[keep, 1], ctx[keep, 2], ctx[keep, 3], x[keep])
        stats = st if stats is None else stats.merge(st)
    if stats is None:
        raise RuntimeError("no aligned frames for tree statistics")
    tree = build_tree(stats, run.lang, num_leaves=spec.num_leaves, min_count=cfg.tree_min_count)
    tree.write(path)
    log.info("%s tree: %d tied states from %d seen triphone states", spec.name, tree.num_pdfs, len(stats))
    step.done(num_pdfs=tree.num_pdfs)
    return tree


def run_tri(run: AlignRun, spec: TriSpec, tree: TiedStateTree, prev: HmmModel,
            prev_tids: np.ndarray) -> tuple[HmmModel, DiagGmmSet, list[dict], FrontEnd]:
    """Triphones: the previous alignment mapped through the tree, one Gaussian per tied state, EM (with MLLT on
    ``spec.mllt_iters``). Returns the model and the front end it was trained with."""
    cfg, train, d = run.cfg, run.train, spec.dir
    ctx_dep = tree.to_context_dependency()
    step = Step(d / STAMP_NAME, spec.name,
                inputs={"tree": d / "tree", "mono_alignment" if spec.name == "tri" else "alignment":
                        spec.prev_ali / "tid.npy", **spec.extra_inputs, **run.inputs(cfg.train_split)},
                config=spec.train_config)
    trans = d / f"trans.{cfg.train_split}"  # the train speakers' transforms (SAT)
    outputs = ([d / "final.mdl", d / "history.json"] + ([d / "final.mat"] if spec.front.matrix is not None else [])
               + ([trans] if spec.front.speakers is not None else []))
    if is_up_to_date(step, cfg.force, outputs):
        tri, gmm = load_hmm(d / "final.mdl", run.topo, ctx_dep)
        front = spec.front.with_matrix(read_kaldi_matrix(d / "final.mat")) if spec.front.matrix is not None \
            else spec.front
        if spec.front.speakers is not None:
            front = front.with_speakers(read_transforms(trans))
        return tri, gmm, read_json(d / "history.json"), front
    tri = HmmModel(run.topo, ctx_dep)
    labels = convert_alignment(train, prev_tids, prev, tree)
    gmm = init_gmm(train, labels, tri.num_pdfs, spec.front)
    gmm, _tids, history, front = train_system(run.aligner, train, tri, gmm, labels, spec.iters, spec.realign,
                                              spec.gauss, run.opts, spec.name, spec.seed, front=spec.front,
                                              mllt_iters=spec.mllt_iters, fmllr_iters=spec.fmllr_iters)
    if front.matrix is not None:
        write_kaldi_matrix(d / "final.mat", front.matrix)
    if front.speakers is not None:
        write_transforms(trans, front.speakers)
    save_system(d, tri, gmm, history)
    write_json(d / "done.json", {"num_pdfs": tri.num_pdfs, "num_gauss": gmm.num_gauss})
    step.done(num_pdfs=tri.num_pdfs, num_gauss=gmm.num_gauss)
    return tri, gmm, history, front


def convert_alignment(split: SplitData, tids: np.ndarray, prev: HmmModel, tree: TiedStateTree) -> np.ndarray:
    """The pdfs of ``tree`` for an alignment by another system (its transition ids; Kaldi's ``convert-ali``):
    per frame, -1 where not aligned."""
    ctx = contexts_range(split, tids, prev, 0, split.num_frames)
    labels = np.full(split.num_frames, -1, np.int32)
    ok = ctx[:, 1] > 0
    labels[ok] = tree.lookup(ctx[ok])
    return labels


def run_split_alignment(run: AlignRun, name: str, tri: HmmModel, gmm: DiagGmmSet, sys_dir: Path | None = None,
                        front: FrontEnd | None = None, split_front=None, extra_inputs: dict | None = None) -> dict:
    """Alignment of one split with a triphone system (default: tri in ``exp/tri`` with the deltas front end) into
    ``<sys_dir>/ali/<split>``; returns (and writes) its ``done.json``. ``split_front(split, out_dir)``, when given,
    makes the split's own front end first (SAT: its speakers' transforms) from ``extra_inputs``."""
    sys_dir = run.tri_dir if sys_dir is None else sys_dir
    front = run.front if front is None else front
    cfg, d = run.cfg, sys_dir / "ali" / name
    refs = Path(cfg.reference_timings) / name if cfg.reference_timings else None
    refs = refs if refs is not None and refs.is_dir() else None
    matrix = {"transform": sys_dir / "final.mat"} if front.matrix is not None else {}
    matrix.update(extra_inputs or {})
    step = Step(d / STAMP_NAME, f"ali {name}", config=dict(beam=cfg.beam, retry_beam=cfg.retry_beam,
                                                           max_oov_rate=cfg.max_oov_rate, **front.stamp()),
                inputs={"model": sys_dir / "final.mdl", "tree": sys_dir / "tree", **matrix, **run.inputs(name),
                        "reference_timings": refs})
    if is_up_to_date(step, cfg.force, [d / f for f in SPLIT_OUTPUTS]):
        return read_json(d / "done.json")
    sp = run.split(name)
    if split_front is not None:
        front = split_front(sp, d)
    tids = np.zeros(sp.num_frames, np.int32)
    summ = run.aligner.run_pass(sp, tri, gmm, run.opts, realign=True, accumulate=False, tids=tids,
                                desc=f"align {name}", front=front)
    info = write_split_alignment(d, sp, tids, tri, run.lang, summ.failed, refs, seconds=summ.seconds,
                                 loglik=(summ.align_loglik, summ.align_frames))
    step.done(aligned=summ.aligned, failed=len(summ.failed))
    log.info("%s: aligned %d / %d utterances (%.1f%%), avg loglik %.3f, RTF %.4f; OOV rate %.2f%%, %d utterances "
             "left out for OOVs", name, summ.aligned, len(sp.utt_ids), 100 * info["fraction_aligned"],
             info["avg_loglik"], info["rtf"], 100 * sp.oov["oov_rate"], sp.oov["utterances_left_out"])
    return info
