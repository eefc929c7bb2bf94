"""``compute-fbank``: 40-dim log-mel filterbank features (or, ``--feature-type mfcc``, Kaldi's MFCC for the GMM
aligner) + per-speaker CMVN into a feature store.

Pipeline: utterances (data-dir order) are grouped into batches of ``--batch-seconds`` of audio, computed
by ``--jobs`` worker processes (in order; see :mod:`data_prep.features.fbank_extract`) and written into a
preallocated float16 :class:`~data_prep.features.store.FeatureStoreWriter` (frames per utterance =
1 + (n - 400) // 160 from ``utt2num_samples``). Workers also return each utterance's exact float64 CMVN
statistics; after the pass the per-speaker mean/variance normalisation is applied in place, chunk by
chunk (see :mod:`data_prep.features.cmvn`). Until that pass the store holds utterance-mean-centred values
(the per-utterance means, U x dim floats, are kept in RAM and added back during normalisation): float16
rounding is then relative to the utterance's own spread rather than to the raw log-energy magnitude (~20),
so dims with a small per-speaker spread stay accurate, and the split is never needed in RAM as float32.

Sample rate: ``--sample-frequency`` (default 16000) is the rate the audio must have; features are computed at
that native rate (e.g. 8000 for telephone-band corpora) and it is recorded in ``meta.json`` (``sample_rate``).
A data dir whose ``make_data_dir.json`` says another rate is a clear error before any work; a single file at
another rate is listed in ``skipped.tsv``. Nothing is resampled.

Bad input never stops the stage: unreadable/corrupt audio, multi-channel audio, a wrong sample rate,
audio shorter than one frame, a sample count that disagrees with ``utt2num_samples`` or an utterance
without speaker are listed in ``<out>/skipped.tsv`` (``utt_id<TAB>path<TAB>reason``).

Up to date (``<out>/.stamp.json``, :class:`asr_base.stamp.Step`): a complete store (``meta.json``) whose
fbank options, CMVN mode and data dir tables (``wav.scp``, ``utt2spk``, ``utt2num_samples``) are unchanged
is left alone; otherwise it is recomputed and the log says why (``--force`` recomputes anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json
from asr_base.stamp import STAMP_NAME, Step
from data_prep.corpus.data_dir import DataDir
from data_prep.corpus.skipped import skipped_tsv
from data_prep.features.cmvn import MODES, StatsAccumulator, apply_cmvn_inplace
from data_prep.features.fbank_extract import FbankConfig, iter_results, make_batches
from data_prep.features.store import META, FeatureStore, FeatureStoreWriter

log = logging.getLogger(__name__)

MIN_SECONDS_PER_JOB = 300.0  # audio seconds that justify starting one more worker process
DATA_FILES = ("wav.scp", "utt2spk", "utt2num_samples")  # the data dir tables a store is made from


@dataclass
class ComputeFbankConfig:
    data: str = option(help="Kaldi data dir (wav.scp, utt2spk, utt2num_samples)")
    out: str = option(help="feature store dir to write (e.g. data/fbank/train)")
    fbank: FbankConfig = option(FbankConfig(), cli=False)  # its own options (add_options of FbankConfig)
    cmvn: Literal["speaker_mean_var", "speaker_mean", "none"] = option(
        "speaker_mean_var", help="normalisation applied to the stored features (stats are always saved)")
    jobs: int = option(2, help=f"worker processes (at most one per {MIN_SECONDS_PER_JOB:g} s of audio; "
                                "fewer make small splits faster)")
    batch_seconds: float = option(120.0, help="seconds of audio per batch handed to a worker")
    force: bool = option(False, help="recompute even if a complete store exists")
    min_seconds_per_job: float = option(MIN_SECONDS_PER_JOB,
                                        help="audio seconds per extra worker process (start-up cost)")


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    """sha1 of the data dir tables (recorded in meta.json)."""
    out = {}
    for name in DATA_FILES:
        p = data_dir / name
        out[name] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else ""
    return out


def store_step(cfg: ComputeFbankConfig) -> Step:
    """The up-to-date check of a store: fbank options + CMVN mode, and the data dir tables."""
    return Step(Path(cfg.out) / STAMP_NAME, f"compute-fbank {cfg.out}",
                config={"fbank": cfg.fbank.stamp_config(), "cmvn": cfg.cmvn},
                inputs={name: Path(cfg.data) / name for name in DATA_FILES})


def _expected_samples(d, utts: list[str], skipped: list[tuple[str, str, str]]) -> dict[str, int]:
    """Sample count of every utterance: utt2num_samples, else the audio header (soundfile.info)."""
    import soundfile as sf

    counts: dict[str, int] = {}
    for u in utts:
        if u in d.utt2num_samples:
            counts[u] = int(d.utt2num_samples[u])
            continue
        spec = d.wav[u]
        if spec.rstrip().endswith("|"):
            skipped.append((u, spec, "piped wav.scp entry needs utt2num_samples (cannot size the store)"))
            continue
        try:
            counts[u] = int(sf.info(spec).frames)
        except Exception as e:
            skipped.append((u, spec, f"cannot decode audio: {type(e).__name__}: {str(e).strip()}"))
    return counts


def check_data_dir_rate(data_dir: Path, sample_rate: int) -> None:
    """A data dir made for another sample rate (``make_data_dir.json``: ``config.sample_rate``) is a clear error
    before any work: 8 kHz audio is only ever used on purpose (``--sample-frequency 8000``), never by accident."""
    report = data_dir / "make_data_dir.json"
    if not report.is_file():
        return
    rate = read_json(report).get("config", {}).get("sample_rate")
    if rate is not None and int(rate) != sample_rate:
        raise ValueError(f"{data_dir}: the data dir holds {rate} Hz audio but fbank expects {sample_rate} Hz; pass "
                         f"--sample-frequency {rate} for native {rate} Hz features (no resampling is done)")


def compute_fbank_store(cfg: ComputeFbankConfig):
    """Run the stage; returns the :class:`~data_prep.features.store.FeatureStore` (existing or new)."""
    from tqdm import tqdm

    if cfg.cmvn not in MODES:
        raise ValueError(f"unknown CMVN mode {cfg.cmvn!r}; choose one of {MODES}")
    out = Path(cfg.out)
    step = store_step(cfg)
    if (out / META).is_file() and step.up_to_date(cfg.force):  # meta.json present = a complete store
        return FeatureStore.open(out)
    check_data_dir_rate(Path(cfg.data), cfg.fbank.sample_rate)
    step.digests()  # the inputs as they are now, before the work

    t0 = time.time()
    d = DataDir.load(cfg.data)
    skipped: list[tuple[str, str, str]] = []
    utts = []
    for u in d.utt_ids:
        if u not in d.utt2spk:
            skipped.append((u, d.wav[u], "no speaker in utt2spk"))
        else:
            utts.append(u)
    counts = _expected_samples(d, utts, skipped)
    items = [(u, d.wav[u], counts[u]) for u in utts if u in counts]
    fb = cfg.fbank
    capacity = int(np.sum(fb.num_frames(np.fromiter((n for _, _, n in items), dtype=np.int64, count=len(items)))))
    total_seconds = sum(n for _, _, n in items) / fb.sample_rate
    batches = make_batches(items, fb.sample_rate, cfg.batch_seconds)
    # A worker process costs a second or more to start (torch import) = minutes of audio at ~400x real
    # time: use at most one worker per cfg.min_seconds_per_job of audio.
    jobs = max(1, min(cfg.jobs, len(batches), int(total_seconds // max(cfg.min_seconds_per_job, 1e-9))))
    log.info("%s: %d utterances (%.2f h of audio, <= %d frames) in %d batches, %d job(s) -> %s",
             cfg.data, len(items), total_seconds / 3600, capacity, len(batches), jobs, out)

    acc = StatsAccumulator(fb.dim)
    center = cfg.cmvn != "none"
    offsets: list[np.ndarray] = []  # per-utterance (dim,) means: U x dim floats, never per frame
    done_samples = 0
    with FeatureStoreWriter(out, fb.dim, capacity) as writer:
        total_samples = sum(n for _, _, n in items)
        with tqdm(total=total_samples, unit="s", unit_scale=1.0 / fb.sample_rate, desc=f"fbank {out.name}") as bar:
            for batch, results in zip(batches, iter_results(batches, fb, jobs, center)):
                for (u, spec, n), r in zip(batch, results):
                    if r.reason is not None:
                        skipped.append((u, spec, r.reason))
                        log.warning("skipping %s: %s", u, r.reason)
                    else:
                        writer.add(u, d.utt2spk[u], r.feats)
                        acc.add(d.utt2spk[u], r.stats)
                        if center:
                            offsets.append(r.offset)
                        done_samples += n
                    bar.update(n)  # audio seconds via unit_scale
        if not writer.utt_ids:
            raise ValueError(f"{cfg.data}: no utterance could be processed ({len(skipped)} skipped, "
                             f"first reason: {skipped[0][2] if skipped else 'empty data dir'})")
        cmvn = acc.result()
        if cfg.cmvn != "none":
            lengths = np.asarray(writer.lengths, dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            feats = writer.feats
            apply_cmvn_inplace(feats, starts, lengths, writer.speakers, cmvn,
                               norm_vars=cfg.cmvn == "speaker_mean_var", progress=True,
                               utt_offsets=np.stack(offsets))
            del feats
        done_seconds = done_samples / fb.sample_rate
        meta = {"source": "compute-fbank", "fbank": asdict(fb), "sample_rate": fb.sample_rate, "cmvn": cfg.cmvn,
                "data_dir": str(Path(cfg.data).absolute()), "data_fingerprint": data_fingerprint(Path(cfg.data)),
                "audio_seconds": round(done_seconds, 3), "num_skipped": len(skipped), "speakers": len(cmvn.speakers)}
        store = writer.close(meta, extra_files={"cmvn.npz": cmvn.arrays(), "skipped.tsv": skipped_tsv(skipped)})
    step.done(num_utts=len(store.utt_ids), num_skipped=len(skipped))
    wall = time.time() - t0
    log.info("%s: %d utterances, %d frames, %d speakers, %d skipped (see %s); %.1f s, RTF %.4f "
             "(%.0fx real time)", out, len(store.utt_ids), store.num_frames, len(cmvn.speakers), len(skipped),
             out / "skipped.tsv", wall, wall / max(done_seconds, 1e-9), done_seconds / max(wall, 1e-9))
    return store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compute 40-dim log-mel filterbank features (torchaudio.compliance.kaldi.fbank, Kaldi defaults: "
        "25 ms povey window, 10 ms shift, snip edges) for a Kaldi data dir, apply per-speaker CMVN (Kaldi "
        "stats saved in cmvn.npz) and write a float16 feature store. Dither defaults to 0 (Kaldi's own "
        "default is 1) so features are deterministic. --feature-type mfcc computes Kaldi's MFCC instead "
        "(compute-mfcc-feats; e.g. --num-mel-bins 23 --num-ceps 13 --cmvn speaker_mean for the GMM aligner, as "
        "in Kaldi recipes). Utterances that cannot be used are listed in "
        "<out>/skipped.tsv with the reason. A complete store with the same options and data dir is skipped "
        "unless --force."
    )
    add_options(parser, ComputeFbankConfig)
    add_options(parser, FbankConfig, title="fbank options (Kaldi's compute-fbank-feats)")


def main(args: argparse.Namespace) -> int:
    try:
        compute_fbank_store(from_args(ComputeFbankConfig, args, fbank=from_args(FbankConfig, args)))
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
