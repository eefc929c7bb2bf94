"""``compute-fbank``: 40-dim log-mel filterbank features + per-speaker CMVN into a feature store.

Features are ``torchaudio.compliance.kaldi.fbank`` with Kaldi's defaults (25 ms povey window, 10 ms
shift, pre-emphasis 0.97, DC removal, power spectrum, snip edges), computed on the waveform in Kaldi's
int16 sample range (soundfile reads [-1, 1), we scale by 32768 like Kaldi's wave reader). Audio is read
with ``soundfile`` (torchaudio.load would need torchcodec + FFmpeg); ``wav.scp`` entries may be files or
Kaldi-style ``cmd |`` pipes producing a WAV/FLAC stream.

Pipeline: utterances (data-dir order) are grouped into batches of ``--batch-seconds`` of audio, computed
by ``--jobs`` worker processes (in order) and written into a preallocated float16
:class:`~data_prep.features.store.FeatureStoreWriter` (frames per utterance = 1 + (n - 400) // 160 from
``utt2num_samples``). Workers also return each utterance's exact float64 CMVN statistics; after the
pass the per-speaker mean/variance normalisation is applied in place, chunk by chunk (see
:mod:`data_prep.features.cmvn`). Until that pass the store holds utterance-mean-centred values (the per-utterance
means, U x dim floats, are kept in RAM and added back during normalisation): float16 rounding is then
relative to the utterance's own spread rather than to the raw log-energy magnitude (~20), so dims with a
small per-speaker spread stay accurate, and the split is never needed in RAM as float32.

Bad input never stops the stage: unreadable/corrupt audio, multi-channel audio, a wrong sample rate,
audio shorter than one frame, a sample count that disagrees with ``utt2num_samples`` or an utterance
without speaker are listed in ``<out>/skipped.tsv`` (``utt_id<TAB>path<TAB>reason``).

Resumable: a store whose ``meta.json`` matches the configuration and the data dir is left alone unless
``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import multiprocessing
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

SKIPPED_HEADER = "utt_id\tpath\treason"
MIN_SECONDS_PER_JOB = 300.0  # audio seconds that justify starting one more worker process


@dataclass(frozen=True)
class FbankConfig:
    """Options passed to ``torchaudio.compliance.kaldi.fbank`` (Kaldi names in comments)."""

    num_mel_bins: int = 40  # --num-mel-bins
    frame_length_ms: float = 25.0  # --frame-length
    frame_shift_ms: float = 10.0  # --frame-shift
    dither: float = 0.0  # --dither (Kaldi's default is 1.0; 0 keeps features deterministic)
    sample_rate: int = 16000  # --sample-frequency
    low_freq: float = 20.0  # --low-freq
    high_freq: float = 0.0  # --high-freq (<= 0: offset from Nyquist)
    preemphasis: float = 0.97  # --preemphasis-coefficient
    window_type: str = "povey"  # --window-type
    snip_edges: bool = True  # --snip-edges
    waveform_scale: float = 32768.0  # soundfile's [-1, 1) -> Kaldi's int16 range

    @property
    def window_samples(self) -> int:
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def shift_samples(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    def num_frames(self, num_samples: np.ndarray | int) -> np.ndarray | int:
        """Frames Kaldi makes from ``num_samples`` samples (vectorised)."""
        n = np.asarray(num_samples, dtype=np.int64)
        if self.snip_edges:
            out = np.where(n >= self.window_samples, 1 + (n - self.window_samples) // self.shift_samples, 0)
        else:
            out = (n + self.shift_samples // 2) // self.shift_samples
        return int(out) if out.ndim == 0 else out


@dataclass
class ComputeFbankConfig:
    data: Path
    out: Path
    fbank: FbankConfig = field(default_factory=FbankConfig)
    cmvn: str = "speaker_mean_var"  # one of data_prep.features.cmvn.MODES
    jobs: int = 2
    batch_seconds: float = 120.0
    force: bool = False
    min_seconds_per_job: float = MIN_SECONDS_PER_JOB  # audio per extra worker process (start-up cost)


# ----------------------------------------------------------------------------------------------------
# Audio + features (run inside the worker processes)


class AudioError(Exception):
    """An utterance whose audio cannot be used; the message is the skip reason."""


def read_audio(spec: str) -> tuple[np.ndarray, int]:
    """Read ``(samples (n, channels) float32 in [-1, 1), sample_rate)`` from a path or a ``cmd |`` pipe."""
    import soundfile as sf

    try:
        if spec.rstrip().endswith("|"):
            cmd = spec.rstrip()[:-1]
            proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
            if proc.returncode != 0:
                tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
                raise AudioError(f"command failed with exit code {proc.returncode}: {tail[0]}")
            data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        else:
            data, sr = sf.read(spec, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / OSError / TypeError
        raise AudioError(f"cannot decode audio: {type(e).__name__}: {str(e).strip()}") from None
    return data, int(sr)


def compute_fbank(samples: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """Log-mel fbank ``(frames, num_mel_bins)`` float32 of a mono waveform in [-1, 1)."""
    import torch
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32) * np.float32(cfg.waveform_scale))
    if wav.numel() < cfg.window_samples and cfg.snip_edges:
        return np.zeros((0, cfg.num_mel_bins), dtype=np.float32)
    feats = kaldi.fbank(
        wav[None, :],
        num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        dither=cfg.dither,
        sample_frequency=float(cfg.sample_rate),
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        preemphasis_coefficient=cfg.preemphasis,
        window_type=cfg.window_type,
        snip_edges=cfg.snip_edges,
    )
    return feats.numpy()


@dataclass
class UttResult:
    utt_id: str
    feats: np.ndarray | None  # float16 (frames, dim): log-mel minus ``offset``
    stats: np.ndarray | None  # (2, dim+1) float64 Kaldi stats of the float32 features
    reason: str | None = None
    offset: np.ndarray | None = None  # (dim,) float32 utterance mean subtracted from ``feats`` (or None)


def process_utterance(utt_id: str, spec: str, expected_samples: int | None, cfg: FbankConfig,
                      center: bool = False) -> UttResult:
    """Features of one utterance, or the reason it cannot be used. With ``center`` the float16 values are
    utterance-mean-centred (the mean is returned as ``offset``), keeping float16 precision for CMVN."""
    from data_prep.features.cmvn import utterance_stats

    try:
        data, sr = read_audio(spec)
        if data.shape[1] != 1:
            raise AudioError(f"multi-channel audio ({data.shape[1]} channels), expected mono")
        if sr != cfg.sample_rate:
            raise AudioError(f"sample rate {sr} Hz, expected {cfg.sample_rate} Hz")
        n = data.shape[0]
        if expected_samples is not None and n != expected_samples:
            raise AudioError(f"audio has {n} samples but utt2num_samples says {expected_samples}")
        if cfg.num_frames(n) == 0:
            raise AudioError(f"too short: {n} samples gives no {cfg.frame_length_ms:g} ms frame")
        feats = compute_fbank(data[:, 0], cfg)
        if not np.isfinite(feats).all():
            raise AudioError("non-finite feature values (NaN/inf samples?)")
    except AudioError as e:
        return UttResult(utt_id, None, None, str(e))
    stats = utterance_stats(feats)
    if not center:
        return UttResult(utt_id, feats.astype(np.float16), stats)
    offset = (stats[0, :-1] / stats[0, -1]).astype(np.float32)
    return UttResult(utt_id, (feats - offset).astype(np.float16), stats, offset=offset)


def process_batch(batch: Sequence[tuple[str, str, int | None]], cfg: FbankConfig,
                  center: bool = False) -> list[UttResult]:
    return [process_utterance(u, spec, n, cfg, center) for u, spec, n in batch]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _process_batch_star(args) -> list[UttResult]:
    return process_batch(*args)


# ----------------------------------------------------------------------------------------------------
# The stage


def make_batches(items: Sequence[tuple[str, str, int]], sample_rate: int, batch_seconds: float) -> list[list]:
    """Group consecutive utterances into batches of about ``batch_seconds`` of audio (>= 1 utterance)."""
    batches, cur, cur_samples = [], [], 0
    limit = max(1, int(batch_seconds * sample_rate))
    for item in items:
        cur.append(item)
        cur_samples += item[2]
        if cur_samples >= limit:
            batches.append(cur)
            cur, cur_samples = [], 0
    if cur:
        batches.append(cur)
    return batches


def iter_results(batches: list[list], cfg: FbankConfig, jobs: int, center: bool = False) -> Iterator[list[UttResult]]:
    """Per-batch results, in order, from ``jobs`` worker processes (inline when jobs <= 1)."""
    if jobs <= 1 or len(batches) <= 1:
        _init_worker()
        for b in batches:
            yield process_batch(b, cfg, center)
        return
    # fork: workers start in milliseconds instead of re-importing torch (seconds). The CLI never loads
    # torch in this process (only in the workers); where it is loaded (tests, notebooks) fork is still
    # safe: torch resets its intra-op thread pool in a forked child, as its DataLoader relies on.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(min(jobs, len(batches)), initializer=_init_worker) as pool:
        yield from pool.imap(_process_batch_star, ((b, cfg, center) for b in batches))


def data_fingerprint(data_dir: Path) -> dict[str, str]:
    out = {}
    for name in ("wav.scp", "utt2spk", "utt2num_samples"):
        p = data_dir / name
        out[name] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else ""
    return out


def store_config(cfg: ComputeFbankConfig) -> dict:
    return {
        "source": "compute-fbank",
        "fbank": asdict(cfg.fbank),
        "cmvn": cfg.cmvn,
        "data_dir": str(Path(cfg.data).absolute()),
        "data_fingerprint": data_fingerprint(Path(cfg.data)),
    }


def store_is_complete(out: Path, config: dict) -> bool:
    """True when ``out`` holds a finished store made with exactly this configuration and data dir."""
    from asr_base.io import read_json

    meta_path = out / "meta.json"
    if not meta_path.is_file() or not (out / "feats.npy").is_file():
        return False
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError):
        return False
    return all(meta.get(k) == v for k, v in config.items() if k != "data_dir")


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


def compute_fbank_store(cfg: ComputeFbankConfig):
    """Run the stage; returns the :class:`~data_prep.features.store.FeatureStore` (existing or new)."""
    from tqdm import tqdm

    from data_prep.features.cmvn import MODES, StatsAccumulator, apply_cmvn_inplace
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import FeatureStore, FeatureStoreWriter

    if cfg.cmvn not in MODES:
        raise ValueError(f"unknown CMVN mode {cfg.cmvn!r}; choose one of {MODES}")
    out = Path(cfg.out)
    config = store_config(cfg)
    if not cfg.force and store_is_complete(out, config):
        log.info("%s is complete and matches the configuration; skipping (use --force to recompute)", out)
        return FeatureStore.open(out)

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

    acc = StatsAccumulator(fb.num_mel_bins)
    center = cfg.cmvn != "none"
    offsets: list[np.ndarray] = []  # per-utterance (dim,) means: U x dim floats, never per frame
    done_samples = 0
    with FeatureStoreWriter(out, fb.num_mel_bins, capacity) as writer:
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
        skipped.sort(key=lambda r: r[0].encode("utf-8"))
        report = SKIPPED_HEADER + "\n" + "".join(f"{u}\t{p}\t{r}\n" for u, p, r in skipped)
        done_seconds = done_samples / fb.sample_rate
        meta = dict(config, audio_seconds=round(done_seconds, 3), num_skipped=len(skipped),
                    speakers=len(cmvn.speakers))
        store = writer.close(meta, extra_files={"cmvn.npz": cmvn.arrays(), "skipped.tsv": report})
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
        "default is 1) so features are deterministic. Utterances that cannot be used are listed in "
        "<out>/skipped.tsv with the reason. A complete store with the same configuration is skipped "
        "unless --force."
    )
    d = FbankConfig()
    parser.add_argument("--data", type=Path, required=True, help="Kaldi data dir (wav.scp, utt2spk, utt2num_samples)")
    parser.add_argument("--out", type=Path, required=True, help="feature store dir to write (e.g. data/fbank/train)")
    parser.add_argument("--num-mel-bins", type=int, default=d.num_mel_bins, help="mel bins = feature dim")
    parser.add_argument("--dither", type=float, default=d.dither,
                        help="dithering constant (0 = deterministic; Kaldi's default is 1.0)")
    parser.add_argument("--frame-length", type=float, default=d.frame_length_ms, help="window length in ms")
    parser.add_argument("--frame-shift", type=float, default=d.frame_shift_ms, help="frame shift in ms")
    parser.add_argument("--sample-frequency", type=int, default=d.sample_rate,
                        help="expected sample rate; other rates are skipped (listed in skipped.tsv)")
    parser.add_argument("--low-freq", type=float, default=d.low_freq, help="low cut-off of the mel bins (Hz)")
    parser.add_argument("--high-freq", type=float, default=d.high_freq,
                        help="high cut-off of the mel bins (Hz; <= 0 is an offset from Nyquist)")
    parser.add_argument("--cmvn", choices=["speaker_mean_var", "speaker_mean", "none"], default="speaker_mean_var",
                        help="normalisation applied to the stored features (stats are always saved)")
    parser.add_argument("--jobs", type=int, default=2,
                        help=f"worker processes (at most one per {MIN_SECONDS_PER_JOB:g} s of audio; "
                             "fewer make small splits faster)")
    parser.add_argument("--batch-seconds", type=float, default=120.0,
                        help="seconds of audio per batch handed to a worker")
    parser.add_argument("--force", action="store_true", help="recompute even if a complete store exists")


def main(args: argparse.Namespace) -> int:
    fb = FbankConfig(num_mel_bins=args.num_mel_bins, frame_length_ms=args.frame_length,
                     frame_shift_ms=args.frame_shift, dither=args.dither, sample_rate=args.sample_frequency,
                     low_freq=args.low_freq, high_freq=args.high_freq)
    cfg = ComputeFbankConfig(args.data, args.out, fb, args.cmvn, args.jobs, args.batch_seconds, args.force)
    try:
        compute_fbank_store(cfg)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
