"""``data-prep import-kaldi-ali``: Kaldi pdf alignments (``ali-to-pdf`` output) -> our label arrays.

Reads int-vector archives (binary or text ``ark``, gzipped files, pipes ``"cmd |"``, or an ``scp``) with
``kaldi-io`` and writes, like the aligner (docs/formats.md)::

    <out>/pdf.npy         int32 (num_frames,), 1:1 with the feature store; -1 where there is no label
    <out>/failed.tsv      utt_id <TAB> reason: utterances whose frames are -1 (missing, bad length, ...)
    <out>/adjusted.tsv    utt_id <TAB> reason: length differences within --tolerance (padded/truncated)
    <out>/num_pdfs        the number of pdfs
    <out>/pdf_counts.npy  int64 (num_pdfs,) frames per pdf in this split
    <out>/report.json     counts
    <out>/.stamp.json     options and input digests (asr_base.stamp); written last: a rerun with the same
                          options and unchanged inputs skips the import

With ``--priors`` (default for splits named ``train*``) ``num_pdfs`` and ``pdf_counts.npy`` are also
written to the experiment dir (``<out>/../..`` when ``<out>`` is ``.../ali/<split>``), where training
looks for the state priors.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, save_npy, write_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from data_prep.features.store import FeatureStore

log = logging.getLogger(__name__)

REPORT = "report.json"


@dataclass
class ImportConfig:
    ali: list[str] = option(help="pdf alignments: 'ark:FILE', 'ark,t:FILE', 'ark:gunzip -c ali.1.gz|', 'scp:FILE', or "
                                 "plain paths (*.scp read as scp, *.gz gunzipped); several are concatenated",
                            split=False)
    store: str = option(help="feature store of the split (data/fbank/<split>)")
    num_pdfs: int = option(help="number of pdfs of the Kaldi model (tree)")
    out: str = option(help="output dir, e.g. exp/kaldi_ali/ali/train")
    tolerance: int = option(2, help="length differences up to this many frames are padded with the last label or "
                                    "truncated (listed in adjusted.tsv)")
    priors: bool | None = option(None, help="also write num_pdfs + pdf_counts.npy to the exp dir; none given: "
                                            "only for train* splits")
    force: bool = option(False, help="redo the import even if it is up to date")


def _is_scp(spec: str) -> bool:
    prefix = spec.split(":", 1)[0] if ":" in spec else ""
    return prefix.startswith("scp") or (not prefix and spec.endswith(".scp"))


def iter_alignments(spec: str, errors: list[tuple[str, str]]) -> Iterator[tuple[str, np.ndarray]]:
    """(utt, int vector) pairs from an ark/scp rspecifier or a plain path; read errors go to ``errors``."""
    from asr_base.kaldi_io import kaldi_io

    if _is_scp(spec):
        path = spec.split(":", 1)[1] if spec.startswith("scp") else spec
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split(maxsplit=1)
                if not fields:
                    continue
                if len(fields) != 2:
                    errors.append((f"{path}:{lineno}", "malformed scp line"))
                    continue
                try:
                    yield fields[0], kaldi_io.read_vec_int(fields[1].strip())
                except Exception as e:  # noqa: BLE001 - one bad entry must not stop the import
                    errors.append((fields[0], f"cannot read {fields[1].strip()}: {e}"))
        return
    try:
        for utt, vec in kaldi_io.read_vec_int_ark(spec):
            yield utt, vec
    except Exception as e:  # noqa: BLE001 - keep what was read; the rest is reported as missing
        errors.append((spec, f"archive read error after the last good entry: {type(e).__name__}: {e}"))


def fit_length(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """Pad with the last label or truncate to ``num_frames``."""
    if labels.size >= num_frames:
        return labels[:num_frames]
    return np.concatenate([labels, np.full(num_frames - labels.size, labels[-1], labels.dtype)])


@dataclass
class ReadAlignments:
    """Per-frame arrays 1:1 with a feature store (-1 / 0 where there is no alignment) and what was left out."""

    pdf: np.ndarray  # int32 (num_frames,)
    values: np.ndarray  # int32 (num_frames,): the archive's own integers (transition ids for Kaldi ali.*.gz)
    failed: dict[str, str]  # utterance -> why it has no labels
    adjusted: dict[str, str]  # utterance -> length difference within the tolerance
    extra: list[tuple[str, str]]  # archive entries not used (not in the store, duplicates)
    errors: list[tuple[str, str]]  # read errors


def pdf_checker(num_pdfs: int) -> Callable[[np.ndarray], tuple[np.ndarray | None, str | None]]:
    """Archive values that are pdf ids already (``ali-to-pdf`` output): checked against ``[0, num_pdfs)``."""
    def convert(vec: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        if vec.min() < 0 or vec.max() >= num_pdfs:
            return None, f"pdf ids outside [0, {num_pdfs}): min {vec.min()} max {vec.max()}"
        return vec, None
    return convert


def read_alignments(specs: list[str], fs: FeatureStore, tolerance: int,
                    convert: Callable[[np.ndarray], tuple[np.ndarray | None, str | None]]) -> ReadAlignments:
    """Read int-vector archives into per-frame arrays of the store ``fs``; ``convert`` maps an utterance's vector
    to pdf ids or says why it cannot (the utterance is then listed as failed). Lengths within ``tolerance``
    frames of the store's are padded with the last value or truncated (listed as adjusted)."""
    index = fs.utt_index()
    pdf = np.full(fs.num_frames, -1, np.int32)
    values = np.zeros(fs.num_frames, np.int32)
    done = np.zeros(len(fs.utt_ids), bool)
    out = ReadAlignments(pdf, values, {}, {}, [], [])
    for spec in specs:
        for utt, vec in tqdm(iter_alignments(spec, out.errors), desc=f"reading {spec}", unit="utt", leave=False):
            i = index.get(utt)
            if i is None:
                out.extra.append((utt, "not in the feature store"))
                continue
            if done[i]:
                out.extra.append((utt, "duplicate alignment (first one kept)"))
                continue
            done[i] = True
            n = int(fs.lengths[i])
            vec = np.asarray(vec, dtype=np.int64).ravel()
            if vec.size == 0:
                out.failed[utt] = "empty alignment"
                continue
            labels, why = convert(vec)
            if labels is None:
                out.failed[utt] = why
                continue
            diff = vec.size - n
            if diff:
                if abs(diff) > tolerance:
                    out.failed[utt] = f"length mismatch: {vec.size} labels for {n} frames"
                    continue
                out.adjusted[utt] = (f"{vec.size} labels for {n} frames: "
                                     f"{'truncated' if diff > 0 else 'padded with the last label'}")
                vec, labels = fit_length(vec, n), fit_length(labels, n)
            s = int(fs.starts[i])
            pdf[s:s + n] = labels
            values[s:s + n] = vec
    for i in np.nonzero(~done)[0]:
        out.failed[fs.utt_ids[i]] = "missing from the alignments"
    return out


def write_alignments(out: Path, read: ReadAlignments, num_pdfs: int) -> np.ndarray:
    """``pdf.npy``, ``pdf_counts.npy``, ``num_pdfs``, ``failed.tsv``, ``adjusted.tsv`` (and ``ignored.tsv`` when
    archive entries were not used) into ``out``; returns the pdf counts."""
    counts = np.bincount(read.pdf[read.pdf >= 0], minlength=num_pdfs).astype(np.int64)
    out.mkdir(parents=True, exist_ok=True)
    save_npy(out / "pdf.npy", read.pdf)
    save_npy(out / "pdf_counts.npy", counts)
    write_text(out / "num_pdfs", f"{num_pdfs}\n")
    write_text(out / "failed.tsv", "utt_id\treason\n" + "".join(f"{u}\t{r}\n" for u, r in sorted(read.failed.items())))
    write_text(out / "adjusted.tsv",
               "utt_id\treason\n" + "".join(f"{u}\t{r}\n" for u, r in sorted(read.adjusted.items())))
    if read.extra or read.errors:
        write_text(out / "ignored.tsv", "key\treason\n" + "".join(f"{u}\t{r}\n" for u, r in read.extra + read.errors))
    return counts


def _exp_dir(out: Path) -> Path:
    return out.parent.parent if out.parent.name == "ali" else out


def _step(cfg: ImportConfig) -> Step:
    """The import's up-to-date check: its options (``--force`` aside), the alignment files, the feature store."""
    inputs: dict[str, str] = {"store": cfg.store}
    for i, spec in enumerate(cfg.ali):
        path = re.sub(r"^(ark|scp)[a-z,]*:", "", spec)
        if os.path.isfile(path):  # pipes ("gunzip -c x.gz |") cannot be checked
            inputs[f"ali.{i}"] = path
    config = {k: v for k, v in to_dict(cfg).items() if k != "force"}
    return Step(Path(cfg.out) / STAMP_NAME, f"import-kaldi-ali {cfg.out}", config=config, inputs=inputs)


def import_kaldi_ali(cfg: ImportConfig) -> dict:
    """Import pdf alignments into ``cfg.out`` (see module doc). Returns the report dict."""
    if cfg.num_pdfs <= 0:
        raise ValueError(f"--num-pdfs must be positive, got {cfg.num_pdfs}")
    out = Path(cfg.out)
    step = _step(cfg)
    if (out / REPORT).is_file() and step.up_to_date(cfg.force):
        return read_json(out / REPORT)
    step.invalidate()

    fs = FeatureStore.open(cfg.store)
    read = read_alignments(cfg.ali, fs, cfg.tolerance, pdf_checker(cfg.num_pdfs))
    pdf, failed, adjusted, extra, errors = read.pdf, read.failed, read.adjusted, read.extra, read.errors

    counts = write_alignments(out, read, cfg.num_pdfs)
    priors = cfg.priors if cfg.priors is not None else out.name.startswith("train")
    if priors:
        exp = _exp_dir(out)
        save_npy(exp / "pdf_counts.npy", counts)
        write_text(exp / "num_pdfs", f"{cfg.num_pdfs}\n")
    report = dict(
        config=to_dict(cfg), utterances=len(fs.utt_ids), imported=len(fs.utt_ids) - len(failed),
        failed=len(failed), adjusted=len(adjusted), ignored=len(extra), read_errors=len(errors),
        frames=fs.num_frames, labelled_frames=int((pdf >= 0).sum()), pdfs_used=int((counts > 0).sum()),
        num_pdfs=cfg.num_pdfs, wrote_priors=bool(priors),
    )
    write_json(out / REPORT, report)
    step.done(imported=report["imported"])
    log.info("%s: %d/%d utterances imported (%d failed, %d length-adjusted, %d ignored entries); %d/%d pdfs used",
             out, report["imported"], report["utterances"], report["failed"], report["adjusted"], report["ignored"],
             report["pdfs_used"], cfg.num_pdfs)
    for key, why in errors:
        log.warning("%s: %s", key, why)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ImportConfig)


def main(args: argparse.Namespace) -> int:
    report = import_kaldi_ali(from_args(ImportConfig, args))
    return 0 if report["imported"] > 0 else 1
