"""``data-prep export-kaldi-feats``: feature store -> Kaldi ``feats.ark``/``feats.scp``.

``data-prep export-kaldi-feats --store data/fbank/train --out-dir data/kaldi/train`` writes ``feats.ark``,
``feats.scp``, ``utt2spk``, ``spk2utt`` (and with ``--cmvn-ark`` the speakers' CMVN stats as
``cmvn.ark``/``cmvn.scp``). The exported features are the stored, already CMVN-normalised values.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.io import write_text
from asr_base.stamp import Step
from data_prep.corpus.data_dir import c_sorted
from data_prep.features.cmvn import load_store_cmvn
from data_prep.features.kaldi_feats import ark_entry_size, read_scp, write_matrices_ark
from data_prep.features.store import FeatureStore

log = logging.getLogger(__name__)


STAMP = "feats.stamp.json"  # the out dir may be a Kaldi data dir: a stamp named after what it vouches for


@dataclass
class ExportConfig:
    store: str = option(help="feature store dir (e.g. data/fbank/train)")
    out_dir: str = option(help="where feats.ark/feats.scp go")
    cmvn_ark: bool = option(False, help="also write the store's per-speaker CMVN stats (cmvn.npz) as Kaldi "
                                        "cmvn.ark/cmvn.scp")
    force: bool = option(False, help="re-export even if an up-to-date export exists")


def _export_complete(store: FeatureStore, out_dir: Path) -> bool:
    """The export's files are all there and the ark has exactly the size of the store's matrices."""
    scp, ark = out_dir / "feats.scp", out_dir / "feats.ark"
    if not scp.is_file() or not ark.is_file() or not (out_dir / "utt2spk").is_file():
        return False
    try:
        keys = [k for k, _ in read_scp(scp)]
    except (OSError, ValueError):
        return False
    if keys != store.utt_ids:
        return False
    expected = sum(ark_entry_size(u, int(n), store.dim) for u, n in zip(store.utt_ids, store.lengths))
    return ark.stat().st_size == expected


def export_kaldi_feats(cfg: ExportConfig) -> Path:
    """Write a feature store as Kaldi ``feats.ark``/``feats.scp`` (+ utt2spk, spk2utt, optional cmvn.ark)."""
    from tqdm import tqdm

    store = FeatureStore.open(cfg.store)
    out = Path(cfg.out_dir)
    step = Step(out / STAMP, f"export-kaldi-feats {out}", config={"cmvn_ark": cfg.cmvn_ark},
                inputs={"store": store.root})
    if _export_complete(store, out) and step.up_to_date(cfg.force):
        return out / "feats.scp"
    out.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s: %d utterances, %d frames, dim %d -> %s", store.root, len(store.utt_ids),
             store.num_frames, store.dim, out)

    def items():
        for u, s, n in tqdm(zip(store.utt_ids, store.starts, store.lengths), total=len(store.utt_ids),
                            unit="utt", desc="export feats"):
            yield u, np.asarray(store.feats[int(s) : int(s) + int(n)], dtype=np.float32)

    # Kaldi tables are sorted by key; our stores are in data-dir (C-sorted) order already.
    if store.utt_ids != c_sorted(store.utt_ids):
        log.warning("%s: utterances are not in C-sorted order; Kaldi tools may expect sorted scp files",
                    store.root)
    write_matrices_ark(out / "feats.ark", out / "feats.scp", items())
    write_text(out / "utt2spk", "".join(f"{u} {s}\n" for u, s in zip(store.utt_ids, store.speakers)))
    spk2utt: dict[str, list[str]] = {}
    for u, s in zip(store.utt_ids, store.speakers):
        spk2utt.setdefault(s, []).append(u)
    write_text(out / "spk2utt", "".join(f"{s} {' '.join(spk2utt[s])}\n" for s in c_sorted(spk2utt)))
    if cfg.cmvn_ark:
        cmvn_path = store.root / "cmvn.npz"
        if not cmvn_path.is_file():
            raise FileNotFoundError(f"--cmvn-ark: {cmvn_path} does not exist")
        load_store_cmvn(store.root).write_kaldi(out / "cmvn.ark", out / "cmvn.scp")
        log.info("wrote %s (stats of the raw features; feats.ark is already normalised, "
                 "do not apply-cmvn again)", out / "cmvn.ark")
    step.done(utterances=len(store.utt_ids))
    log.info("wrote %s and %s", out / "feats.ark", out / "feats.scp")
    return out / "feats.scp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Export a feature store as Kaldi feats.ark/feats.scp (binary float32 matrices written with "
        "kaldi-io; scp entries are ark byte offsets) plus utt2spk/spk2utt. The exported values are the "
        "stored ones, i.e. already per-speaker CMVN-normalised when the store was made by compute-fbank. "
        "Skipped when --out-dir already holds a complete export of the unchanged store, unless --force."
    )
    add_options(parser, ExportConfig)


def main(args: argparse.Namespace) -> int:
    try:
        export_kaldi_feats(from_args(ExportConfig, args))
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
