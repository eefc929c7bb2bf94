"""``import-kaldi-feats``: Kaldi ``feats.scp`` -> feature store (skip our own extraction).

Reads uncompressed Kaldi matrices through kaldi-io (``file:offset`` entries, ranges, ``cmd |`` pipes;
see :mod:`data_prep.features.kaldi_feats`), in C-sorted utterance order like our data dirs, into a float16
:class:`~data_prep.features.store.FeatureStore`. Per-speaker Kaldi CMVN statistics of the imported values
are always saved in ``cmvn.npz``; ``--apply-cmvn`` normalises the stored features with them (or with a
Kaldi ``cmvn.scp`` given by ``--cmvn-scp``), as Kaldi's ``apply-cmvn --utt2spk`` would.

Compressed matrices (``copy-feats --compress=true``, the default of many Kaldi recipes) cannot be read by
kaldi-io on numpy 2.x: the stage stops with an error telling you to run ``copy-feats --compress=false``.
Other bad entries (missing/truncated file, no speaker, wrong dimension, values beyond float16) are listed
in ``<out>/skipped.tsv`` and the rest is imported.

Up to date (``<out>/.stamp.json``, :class:`asr_base.stamp.Step`): a complete store whose CMVN options and
Kaldi tables (feats.scp, utt2spk, cmvn.scp) are unchanged is left alone; otherwise it is re-imported
and the log says why (``--force`` re-imports anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.stamp import STAMP_NAME, Step
from data_prep.corpus.data_dir import c_sorted, read_table
from data_prep.corpus.skipped import skipped_tsv
from data_prep.features.cmvn import SpeakerCmvn, StatsAccumulator, apply_cmvn_inplace, utterance_stats
from data_prep.features.kaldi_feats import CompressedMatrixError, parse_rxspec, peek_matrix_shape, read_matrix, read_scp
from data_prep.features.store import META, FeatureStore, FeatureStoreWriter

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class ImportConfig:
    scp: str = option(help="Kaldi feats.scp")
    out: str = option(help="feature store dir to write")
    utt2spk: str | None = option(None, help="Kaldi utt2spk (default: every utterance is its own speaker)")
    apply_cmvn: bool = option(False, help="apply per-speaker mean (and variance) normalisation to the stored "
                                          "features")
    norm_vars: bool = option(True, help="with --apply-cmvn: normalise variances too (--no-norm-vars: means only)")
    cmvn_scp: str | None = option(None, help="with --apply-cmvn: use these Kaldi CMVN stats (cmvn.scp/ark) "
                                              "instead of computing them from the imported features")
    force: bool = option(False, help="re-import even if the store is up to date")

    @property
    def cmvn_mode(self) -> str:
        if not self.apply_cmvn:
            return "none"
        return "speaker_mean_var" if self.norm_vars else "speaker_mean"


def _sha1(path: str | None) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest() if path is not None else ""


def import_config(cfg: ImportConfig) -> dict:
    """What meta.json records about the source."""
    return {
        "source": "kaldi",
        "kaldi_scp": str(Path(cfg.scp).absolute()),
        "kaldi_fingerprint": {"feats.scp": _sha1(cfg.scp), "utt2spk": _sha1(cfg.utt2spk),
                              "cmvn.scp": _sha1(cfg.cmvn_scp)},
        "cmvn": cfg.cmvn_mode,
    }


def import_step(cfg: ImportConfig) -> Step:
    """The up-to-date check: CMVN mode + the Kaldi tables (feats.scp, utt2spk, cmvn.scp)."""
    return Step(Path(cfg.out) / STAMP_NAME, f"import-kaldi-feats {cfg.out}", config={"cmvn": cfg.cmvn_mode},
                inputs={"feats.scp": cfg.scp, "utt2spk": cfg.utt2spk,
                        "cmvn.scp": cfg.cmvn_scp if cfg.apply_cmvn else None})


def import_kaldi_feats(cfg: ImportConfig):
    """Run the import; returns the :class:`~data_prep.features.store.FeatureStore`."""
    from tqdm import tqdm

    out = Path(cfg.out)
    step = import_step(cfg)
    if (out / META).is_file() and step.up_to_date(cfg.force):  # meta.json present = a complete store
        return FeatureStore.open(out)
    step.digests()  # the inputs as they are now, before the work
    config = import_config(cfg)

    t0 = time.time()
    entries = dict()
    for key, rx in read_scp(cfg.scp):
        if key in entries:
            raise ValueError(f"{cfg.scp}: duplicate key {key!r}")
        entries[key] = rx
    if cfg.utt2spk is not None:
        utt2spk = read_table(cfg.utt2spk)
    else:
        log.warning("no --utt2spk: every utterance is its own speaker (Kaldi's convention)")
        utt2spk = {u: u for u in entries}
    given_cmvn = SpeakerCmvn.read_kaldi(cfg.cmvn_scp) if (cfg.apply_cmvn and cfg.cmvn_scp) else None
    cmvn_speakers = set(given_cmvn.speakers) if given_cmvn is not None else None

    skipped: list[tuple[str, str, str]] = []
    shapes: dict[str, tuple[int, int]] = {}
    dim = None
    for u in tqdm(c_sorted(entries), unit="utt", desc="scan scp"):
        rx = entries[u]
        spk = utt2spk.get(u)
        if spk is None:
            skipped.append((u, rx, "no speaker in utt2spk"))
            continue
        if cmvn_speakers is not None and spk not in cmvn_speakers:
            skipped.append((u, rx, f"speaker {spk} has no stats in {cfg.cmvn_scp}"))
            continue
        try:
            rows, cols = peek_matrix_shape(parse_rxspec(rx))
        except CompressedMatrixError:
            raise
        except Exception as e:
            skipped.append((u, rx, f"cannot read matrix: {type(e).__name__}: {e}"))
            continue
        if dim is None:
            dim = cols
        if cols != dim:
            skipped.append((u, rx, f"dimension {cols}, expected {dim}"))
        elif rows == 0:
            skipped.append((u, rx, "empty matrix (0 frames)"))
        else:
            shapes[u] = (rows, cols)
    if not shapes:
        raise ValueError(f"{cfg.scp}: no usable matrix ({len(skipped)} skipped"
                         + (f", first: {skipped[0][0]}: {skipped[0][2]})" if skipped else ")"))
    if given_cmvn is not None and given_cmvn.dim != dim:
        raise ValueError(f"{cfg.cmvn_scp}: stats of dimension {given_cmvn.dim}, features have {dim}")

    capacity = sum(r for r, _ in shapes.values())
    log.info("%s: importing %d utterances (%d frames, dim %d) -> %s", cfg.scp, len(shapes), capacity, dim, out)
    acc = StatsAccumulator(dim)
    with FeatureStoreWriter(out, dim, capacity) as writer:
        for u in tqdm(list(shapes), unit="utt", desc="import feats"):
            rx = entries[u]
            try:
                mat = np.asarray(read_matrix(rx), dtype=np.float32)
            except CompressedMatrixError:
                raise
            except Exception as e:
                skipped.append((u, rx, f"cannot read matrix: {type(e).__name__}: {e}"))
                continue
            if mat.shape != shapes[u]:
                skipped.append((u, rx, f"matrix shape {mat.shape} differs from its header {shapes[u]}"))
                continue
            if not np.isfinite(mat).all() or np.abs(mat).max() > FLOAT16_MAX:
                skipped.append((u, rx, "non-finite values or values beyond the float16 range"))
                continue
            writer.add(u, utt2spk[u], mat)
            acc.add(utt2spk[u], utterance_stats(mat))
        if not writer.utt_ids:
            raise ValueError(f"{cfg.scp}: no matrix could be imported ({len(skipped)} skipped)")
        cmvn = acc.result()
        if cfg.apply_cmvn:
            lengths = np.asarray(writer.lengths, dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            feats = writer.feats
            apply_cmvn_inplace(feats, starts, lengths, writer.speakers, given_cmvn or cmvn,
                               norm_vars=cfg.norm_vars, progress=True)
            del feats
            if given_cmvn is not None:
                cmvn = given_cmvn
        meta = dict(config, num_skipped=len(skipped), speakers=len(cmvn.speakers),
                    cmvn_stats="kaldi cmvn.scp" if given_cmvn is not None else "imported features")
        store = writer.close(meta, extra_files={"cmvn.npz": cmvn.arrays(), "skipped.tsv": skipped_tsv(skipped)})
    step.done(num_utts=len(store.utt_ids), num_skipped=len(skipped))
    log.info("%s: %d utterances, %d frames, %d skipped; %.1f s", out, len(store.utt_ids), store.num_frames,
             len(skipped), time.time() - t0)
    return store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build a float16 feature store from Kaldi features (feats.scp of uncompressed matrices, read with "
        "kaldi-io), in C-sorted utterance order. Per-speaker CMVN stats of the imported values are saved "
        "in cmvn.npz; --apply-cmvn normalises the stored values. Compressed Kaldi matrices are rejected "
        "with instructions (copy-feats --compress=false). Bad entries are listed in <out>/skipped.tsv."
    )
    add_options(parser, ImportConfig)


def main(args: argparse.Namespace) -> int:
    try:
        import_kaldi_feats(from_args(ImportConfig, args))
    except (FileNotFoundError, ValueError, KeyError) as e:  # CompressedMatrixError is a ValueError
        log.error("%s", e)
        return 1
    return 0
