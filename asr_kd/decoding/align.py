"""``asr-kd align``: forced alignment with a trained DNN (or an ensemble, or an export dir), Kaldi's
``steps/nnet3/align.sh``.

The GMM system's HMMs, tree and transition model (``--gmm-dir``, e.g. ``exp/tri``) stay; only the emission
scores change, from the GMMs' to the network's pseudo-log-likelihoods ``log p(s|x) - log p(s)`` (the priors of
the labels it was trained on), with Kaldi's alignment scales (acoustic 0.1, transition 1.0, self-loop 0.1).
One split per call, like Kaldi's script per data dir. The output dir is a system dir in the GMM's layout, so
every later stage can read it in place of ``exp/tri``:

* ``<out>/ali/<split>/``: ``pdf.npy`` (1:1 with the feature store, -1 where not aligned), ``tid.npy``,
  ``phones.ctm``, ``failed.tsv`` (with the reason for each utterance), ``done.json`` (with the boundary agreement
  when ``--reference-timings`` has the split);
* ``final.mdl``, ``tree`` and ``num_pdfs``: copies of the GMM system's (the labels are its tied states);
* with ``--counts`` (the train split): ``pdf_counts.npy`` and ``occupancy.png``, the priors of models trained on
  the new labels;
* ``report.json`` (``final_system``, ``splits``, ``by_stage``: every split's boundary agreement under the GMM system
  and under this alignment), ``boundary_offsets.png``: rewritten after every split.

Each split is redone only when an option or input (checkpoints, priors, features, transcripts, lang, GMM system,
reference timings) changed (``--force`` redoes it). Utterances are scored by the model in batches (torch), then
Viterbi-aligned one at a time by Kaldi's aligner (:func:`data_prep.align.passes.align_utterance`, as the GMM
passes do).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, save_npy, write_json
from asr_base.stamp import STAMP_NAME, Step
from asr_kd.decoding.model_source import ScoringConfig, add_model_choice, make_scorer

log = logging.getLogger(__name__)

SYSTEM_FILES = ("final.mdl", "tree", "num_pdfs")  # copied from the GMM system


@dataclass(kw_only=True)
class NnetAlignConfig:
    """One split aligned by a network on a GMM system's HMMs. ``scoring`` holds the model, priors and features."""

    gmm_dir: str = option(help="the GMM system the network's outputs are the tied states of (exp/tri): final.mdl, "
                               "tree, num_pdfs, report.json")
    lang: str = option(help="lang dir the GMM system aligned with (data/lang)")
    data: str = option(help="data dir with the split's transcripts (data/train)")
    out: str = option(help="system dir to write (exp/tri_dnn); the split goes to <out>/ali/<split>")
    split: str | None = option(None, help="the split's name (default: the feature store's dir name)")
    counts: bool = option(False, help="the train split: also write <out>/pdf_counts.npy (the priors of models "
                                      "trained on these labels) and occupancy.png")
    reference_timings: str | None = option(None, help="dir of reference phone timings per split "
                                                      "(data/corpus/phone_timings): boundary agreement in done.json")
    beam: float = option(10.0, help="Viterbi beam")
    retry_beam: float = option(40.0, help="beam of the second try when the first finds no path")
    max_oov_rate: float = option(0.5, help="utterances with more out-of-vocabulary words are listed, not aligned "
                                           "(as data-prep align)")
    force: bool = option(False, help="redo even if up to date")
    scoring: ScoringConfig = option(cli=False)

    @property
    def split_name(self) -> str:
        return self.split or Path(self.scoring.feats).name


def align_step(cfg: NnetAlignConfig, refs: Path | None) -> Step:
    """The up-to-date check of one split: every option that can change the alignment and every input file."""
    s = cfg.scoring
    config = to_dict(dataclasses.replace(cfg, force=False))
    for speed_only in ("batch_frames", "device"):
        config["scoring"].pop(speed_only)
    gmm = Path(cfg.gmm_dir)
    inputs: dict[str, str | Path | None] = {f"model{i}": p for i, p in enumerate(s.checkpoints())}
    inputs.update(priors=s.priors, export=Path(s.export) / "manifest.json" if s.export else None,
                  feats=Path(s.feats) / "feats.npy", feats_index=Path(s.feats) / "index.tsv",
                  text=Path(cfg.data) / "text", l_fst=Path(cfg.lang) / "L.fst", words=Path(cfg.lang) / "words.txt",
                  model=gmm / "final.mdl", tree=gmm / "tree", reference_timings=refs)
    return Step(Path(cfg.out) / "ali" / cfg.split_name / STAMP_NAME, f"align {cfg.out} {cfg.split_name}",
                config=config, inputs=inputs)


def align_split(cfg: NnetAlignConfig) -> dict:
    """Align one split with the network (skipped while up to date); returns its ``done.json``."""
    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401  (import order)
    from asr_base.kaldi import load_context_dependency
    from data_prep.align.hmm import AlignOptions, GraphCompiler, load_hmm
    from data_prep.align.outputs import SPLIT_OUTPUTS, write_split_alignment
    from data_prep.align.passes import align_utterance
    from data_prep.align.split_data import load_split
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import FeatureStore
    from data_prep.lang.lang_dir import LangDir, load_topology

    out, gmm, name = Path(cfg.out), Path(cfg.gmm_dir), cfg.split_name
    missing = [str(gmm / f) for f in SYSTEM_FILES if not (gmm / f).is_file()]
    if missing:
        raise FileNotFoundError(f"--gmm-dir is not a GMM system dir: missing {', '.join(missing)}")
    refs = Path(cfg.reference_timings) / name if cfg.reference_timings else None
    refs = refs if refs is not None and refs.is_dir() else None
    d = out / "ali" / name
    step = align_step(cfg, refs)
    extra = [out / "pdf_counts.npy"] if cfg.counts else []
    if all((d / f).is_file() for f in SPLIT_OUTPUTS) and all(p.is_file() for p in extra) and step.up_to_date(cfg.force):
        log.info("%s: up to date", d)
        return read_json(d / "done.json")
    step.invalidate()
    t0 = time.time()
    lang = LangDir.load(cfg.lang)
    hmm, _ = load_hmm(gmm / "final.mdl", load_topology(lang), load_context_dependency(gmm / "tree"))
    store = FeatureStore.open(cfg.scoring.feats)
    split = load_split(name, cfg.scoring.feats, DataDir.load(cfg.data).text, lang, cfg.max_oov_rate)
    scorer = make_scorer(cfg.scoring, store)
    if scorer.num_pdfs != hmm.num_pdfs:
        raise ValueError(f"the model has {scorer.num_pdfs} outputs, {gmm}/final.mdl {hmm.num_pdfs} tied states")
    opts = AlignOptions(beam=cfg.beam, retry_beam=cfg.retry_beam)
    compiler = GraphCompiler(hmm, lang.load_l_fst(disambig=False), lang.disambig_phone_ids, opts)
    row = {u: r for r, u in enumerate(split.utt_ids)}
    tids = np.zeros(split.num_frames, np.int32)
    failed: dict[int, str] = {}
    ll, frames = 0.0, 0
    for utt, m in tqdm(scorer, total=len(split.utt_ids), desc=f"align {name}", unit="utt"):
        r = row.pop(utt)
        a, n = int(split.starts[r]), int(split.lengths[r])
        if not np.isfinite(m).all():  # NaN features: listed, the rest aligned
            failed[r] = "non-finite log-likelihoods (NaN or inf in the features?)"
            continue
        res = align_utterance(compiler, hmm, lang, opts, utt, split.words[r], n,
                              lambda pdfs: m[:, pdfs])  # noqa: B023 (called now)
        if res.tids is None:
            failed[r] = res.reason
            continue
        tids[a:a + n] = res.tids
        ll += float(res.frame_loglik.astype(np.float64).sum())
        frames += n
    failed.update({r: "not scored by the model" for r in row.values()})  # none expected: never dropped silently
    out.mkdir(parents=True, exist_ok=True)
    for f in SYSTEM_FILES:  # the system the labels belong to, beside them
        if not (out / f).is_file() or (out / f).read_bytes() != (gmm / f).read_bytes():
            tmp = out / f".{f}.tmp"
            shutil.copyfile(gmm / f, tmp)
            tmp.replace(out / f)
    info = write_split_alignment(d, split, tids, hmm, lang, failed, refs, seconds=time.time() - t0,
                                 loglik=(ll, frames))
    if cfg.counts:
        from data_prep.align.report import write_occupancy_png

        pdf = np.load(d / "pdf.npy")
        counts = np.bincount(pdf[pdf >= 0], minlength=hmm.num_pdfs).astype(np.int64)
        save_npy(out / "pdf_counts.npy", counts)
        write_occupancy_png(out / "occupancy.png", counts)
    step.done(aligned=info["aligned"], failed=info["failed"])
    b = (info["sanity"].get("boundaries") or {}).get("nearest_within_tol")
    log.info("%s: aligned %d / %d utterances (%d failed, listed in failed.tsv)%s", name, info["aligned"],
             info["utterances"], info["failed"], f"; {100 * b:.2f}% of reference boundaries within 20 ms" if b else "")
    write_system_report(out, gmm)
    return info


def write_system_report(out: Path, gmm: Path) -> dict:
    """``<out>/report.json`` over the splits aligned so far: their ``done.json``, and ``by_stage``: each split's
    figures under the GMM system (its own ``by_stage``, else its splits) and under this alignment."""
    from data_prep.align.report import stage_summary, write_boundary_offsets_png

    splits = {p.parent.name: read_json(p) for p in sorted((out / "ali").glob("*/done.json"))}
    base = read_json(gmm / "report.json") if (gmm / "report.json").is_file() else {}
    by_stage = base.get("by_stage") or ({gmm.name: stage_summary(base["splits"])} if base.get("splits") else {})
    report = {k: v for k, v in base.items() if k not in ("splits", "by_stage", "states_used")}
    report.update(final_system=out.name, gmm_system=str(gmm), splits=splits,
                  by_stage={**by_stage, out.name: stage_summary(splits)})
    if (out / "pdf_counts.npy").is_file():
        report["states_used"] = int((np.load(out / "pdf_counts.npy") > 0).sum())
    write_boundary_offsets_png(out / "boundary_offsets.png", splits)
    write_json(out / "report.json", report)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_choice(parser)
    add_options(parser, ScoringConfig)
    add_options(parser, NnetAlignConfig)


def main(args: argparse.Namespace) -> int:
    align_split(from_args(NnetAlignConfig, args, scoring=from_args(ScoringConfig, args)))
    return 0
