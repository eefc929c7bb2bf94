"""``data-prep import-kaldi-system``: a Kaldi GMM system (alignments, tree, ``final.mdl``, lang dir) -> ``exp/tri``.

A Kaldi user starts from ``exp/tri4b_ali_*`` / ``exp/tri6b_ali_*`` (``steps/align_fmllr.sh`` output: ``ali.*.gz``
of transition ids, ``final.mdl``, ``tree``) and the ``data/lang`` they were built with (word-position-dependent
phones, Kaldi's ``topo``, ``L_disambig.fst``, ``phones/align_lexicon.txt``). This stage writes what our own aligner
writes, so the training, graph, decoding and export stages that follow run unchanged::

    <out>/tree, <out>/final.mdl       Kaldi's own (copied; make-graph and export read Kaldi's binary formats)
    <out>/lang/                       Kaldi's lang dir (copied), plus lexicon.txt from phones/align_lexicon.txt
    <out>/num_pdfs, pdf_counts.npy    the tree's pdfs; frames per pdf in the train split (state priors)
    <out>/ali/<split>/pdf.npy         int32, 1:1 with data/fbank/<split>; -1 where an utterance has no alignment
    <out>/ali/<split>/tid.npy         int32 transition ids (0 = none), as the aligner writes them
    <out>/ali/<split>/failed.tsv      utterances without labels and why; adjusted.tsv: lengths padded/truncated
    <out>/report.json                 per split: utterances, imported, failed, pdfs used

Inputs: ``<ali-root>/<split>/ali.*.gz`` for every split (e.g. symlinks ``kaldi_ali/train ->
.../exp/tri6b_ali_train_960``); the tree and model are the train split's dir's (``--tree`` / ``--model``
override), and every other split's dir that has its own must hold the same tree and transition model.
Everything is checked before any work: missing files (all of them listed), a ``final.mdl`` that does not
belong to the tree and the lang dir's ``topo`` (the transition model is rebuilt from both and compared),
topology phones missing from ``phones.txt``. An utterance whose alignment is missing, has transition ids
outside the model or a length more than ``--tolerance`` frames off the feature store's is listed in its
``failed.tsv``, never fatal. Up to date (``<out>/.stamp.json``): options and every input unchanged.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, save_npy, write_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from data_prep.align.kaldi_ali import read_alignments, write_alignments
from data_prep.features.store import FeatureStore

log = logging.getLogger(__name__)

LANG_FILES = ("phones.txt", "words.txt", "topo", "oov.txt", "L_disambig.fst", "phones/disambig.txt",
              "phones/silence.txt", "phones/nonsilence.txt", "phones/optional_silence.txt")


@dataclass
class ImportSystemConfig:
    ali_root: str = option(help="one Kaldi alignment dir per split: <ali-root>/<split>/ali.*.gz (steps/align_si.sh or "
                                "align_fmllr.sh output; symlinks to exp/tri6b_ali_<set> are fine)")
    kaldi_lang: str = option(help="the Kaldi lang dir the system was built with (phones.txt, words.txt, topo, "
                                  "L_disambig.fst, oov.txt, phones/: word-position-dependent phones are fine)")
    splits: list[str] = option(["train", "dev", "test"], help="splits to import (each needs <ali-root>/<split>)")
    train_split: str = option("train", help="split whose pdf counts become the state priors")
    fbank_dir: str = option("data/fbank", help="feature stores: <fbank-dir>/<split>")
    tree: str | None = option(None, help="Kaldi tree (default: <ali-root>/<train-split>/tree)")
    model: str | None = option(None, help="Kaldi final.mdl (default: <ali-root>/<train-split>/final.mdl)")
    out: str = option("exp/tri", help="system dir to write (what data-prep align writes)")
    tolerance: int = option(2, help="alignment lengths up to this many frames off the feature store's are padded "
                                    "with the last label or truncated (listed in adjusted.tsv)")
    force: bool = option(False, help="redo the import even if it is up to date")

    @property
    def tree_path(self) -> Path:
        return Path(self.tree) if self.tree else Path(self.ali_root) / self.train_split / "tree"

    @property
    def model_path(self) -> Path:
        return Path(self.model) if self.model else Path(self.ali_root) / self.train_split / "final.mdl"


def ali_files(d: Path) -> list[Path]:
    """``ali.1.gz``, ``ali.2.gz``, ..., ``ali.10.gz`` in job order (Kaldi's ``JOB=1:nj``)."""
    found = [p for p in d.glob("ali.*.gz") if re.fullmatch(r"ali\.\d+\.gz", p.name)]
    return sorted(found, key=lambda p: int(p.name.split(".")[1]))


def check_inputs(cfg: ImportSystemConfig) -> None:
    """Every missing input listed in one clear error, before any work."""
    missing = []
    if cfg.train_split not in cfg.splits:
        raise ValueError(f"--train-split {cfg.train_split} is not among --splits {cfg.splits}")
    lang = Path(cfg.kaldi_lang)
    missing += [str(lang / n) for n in LANG_FILES if not (lang / n).is_file()]
    if not (lang / "lexicon.txt").is_file() and not (lang / "phones/align_lexicon.txt").is_file():
        missing.append(f"{lang}/phones/align_lexicon.txt (the lexicon of the lang dir)")
    missing += [str(p) for p in (cfg.tree_path, cfg.model_path) if not p.is_file()]
    for s in cfg.splits:
        d = Path(cfg.ali_root) / s
        if not ali_files(d):
            missing.append(f"{d}/ali.*.gz")
        if not (Path(cfg.fbank_dir) / s / "feats.npy").is_file():
            missing.append(f"{Path(cfg.fbank_dir) / s} (feature store)")
    if missing:
        raise FileNotFoundError("import-kaldi-system: missing inputs:\n  " + "\n  ".join(missing))


def load_system(cfg: ImportSystemConfig):
    """The Kaldi tree + ``final.mdl`` + lang dir as one :class:`~data_prep.align.hmm.HmmModel`; a model that does
    not belong to the tree and topology, or another split's dir with a different system, is a clear error."""
    from asr_base.kaldi import load_context_dependency
    from data_prep.align.hmm import load_hmm, read_final_mdl
    from data_prep.lang.lang_dir import LangDir, load_topology

    lang = LangDir.load(cfg.kaldi_lang)
    topo = load_topology(lang)
    unknown = sorted(set(int(p) for p in topo.phones) - set(lang.phones.values()))
    if unknown:
        raise ValueError(f"{cfg.kaldi_lang}/topo has phones {unknown[:10]} that phones.txt does not list")
    ctx_dep = load_context_dependency(cfg.tree_path)
    try:
        hmm, _gmm = load_hmm(cfg.model_path, topo, ctx_dep)
    except ValueError as e:
        raise ValueError(f"{cfg.model_path} does not belong to {cfg.tree_path} and {cfg.kaldi_lang}/topo: {e}") from None
    tree_bytes = cfg.tree_path.read_bytes()
    tuples = None  # the model's transition table, read once when another split's dir has its own final.mdl
    for s in cfg.splits:
        d = Path(cfg.ali_root) / s
        if (d / "tree").is_file() and (d / "tree").read_bytes() != tree_bytes:
            raise ValueError(f"{d}/tree differs from {cfg.tree_path}: the splits were aligned with different systems")
        if (d / "final.mdl").is_file() and d / "final.mdl" != cfg.model_path:
            tuples = read_final_mdl(cfg.model_path).tuples if tuples is None else tuples
            if not np.array_equal(read_final_mdl(d / "final.mdl").tuples, tuples):
                raise ValueError(f"{d}/final.mdl has another transition model than {cfg.model_path}")
    return lang, hmm


def tid_converter(hmm):
    """Transition ids (``ali.*.gz``) -> pdf ids through the model's transition table; ids outside it: a reason."""
    tid2pdf = np.asarray(hmm.tid2pdf, dtype=np.int64)
    n = tid2pdf.size - 1

    def convert(vec: np.ndarray):
        if vec.min() < 1 or vec.max() > n:
            return None, f"transition ids outside [1, {n}] of the model: min {vec.min()} max {vec.max()}"
        return tid2pdf[vec], None
    return convert


def copy_lang(src: Path, dst: Path, lexicon: dict) -> None:
    """Kaldi's lang dir into ``dst`` (atomically), with a ``lexicon.txt`` (what export ships) when it has none."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, symlinks=False)
    if not (tmp / "lexicon.txt").is_file():
        write_text(tmp / "lexicon.txt", "".join(f"{w} {' '.join(p)}\n" for w, prons in lexicon.items() for p in prons))
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def _step(cfg: ImportSystemConfig) -> Step:
    inputs: dict[str, Path] = {"tree": cfg.tree_path, "model": cfg.model_path, "lang": Path(cfg.kaldi_lang)}
    for s in cfg.splits:
        inputs[f"ali_{s}"] = Path(cfg.ali_root) / s
        inputs[f"features_{s}"] = Path(cfg.fbank_dir) / s
    config = {k: v for k, v in to_dict(cfg).items() if k != "force"}
    return Step(Path(cfg.out) / STAMP_NAME, f"import-kaldi-system {cfg.out}", config=config, inputs=inputs)


def import_kaldi_system(cfg: ImportSystemConfig) -> dict:
    """Run the import (see the module doc); returns ``report.json``."""
    out = Path(cfg.out)
    step = _step(cfg)
    if (out / "report.json").is_file() and step.up_to_date(cfg.force):
        return read_json(out / "report.json")
    check_inputs(cfg)
    lang, hmm = load_system(cfg)
    step.invalidate()
    step.digests()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cfg.tree_path, out / "tree")
    shutil.copyfile(cfg.model_path, out / "final.mdl")
    copy_lang(Path(cfg.kaldi_lang), out / "lang", lang.lexicon)
    convert = tid_converter(hmm)
    splits = {}
    for s in cfg.splits:
        fs = FeatureStore.open(Path(cfg.fbank_dir) / s)
        read = read_alignments([str(p) for p in ali_files(Path(cfg.ali_root) / s)], fs, cfg.tolerance, convert)
        d = out / "ali" / s
        counts = write_alignments(d, read, hmm.num_pdfs)
        save_npy(d / "tid.npy", read.values)
        info = dict(utterances=len(fs.utt_ids), imported=len(fs.utt_ids) - len(read.failed), failed=len(read.failed),
                    adjusted=len(read.adjusted), ignored=len(read.extra), read_errors=len(read.errors),
                    frames=fs.num_frames, labelled_frames=int((read.pdf >= 0).sum()),
                    pdfs_used=int((counts > 0).sum()))
        write_json(d / "done.json", info)
        splits[s] = info
        for key, why in read.errors:
            log.warning("%s: %s", key, why)
        log.info("%s: %d / %d utterances imported (%d failed, see %s; %d length-adjusted), %d / %d pdfs used", s,
                 info["imported"], info["utterances"], info["failed"], d / "failed.tsv", info["adjusted"],
                 info["pdfs_used"], hmm.num_pdfs)
        if s == cfg.train_split:
            save_npy(out / "pdf_counts.npy", counts)
    write_text(out / "num_pdfs", f"{hmm.num_pdfs}\n")
    report = {"config": to_dict(cfg), "source": "kaldi", "num_tied_states": hmm.num_pdfs,
              "num_transition_ids": int(len(hmm.tid2pdf) - 1), "splits": splits}
    write_json(out / "report.json", report)
    step.done(num_tied_states=hmm.num_pdfs)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0].strip("`")
    add_options(parser, ImportSystemConfig)


def main(args: argparse.Namespace) -> int:
    try:
        report = import_kaldi_system(from_args(ImportSystemConfig, args))
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    train = report["splits"].get(report["config"]["train_split"], {})
    return 0 if train.get("imported", 0) > 0 else 1
