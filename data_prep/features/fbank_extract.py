"""Log-mel filterbank features of utterances, computed in worker processes (``compute-fbank``'s engine).

Features are ``torchaudio.compliance.kaldi.fbank`` with Kaldi's defaults (25 ms povey window, 10 ms
shift, pre-emphasis 0.97, DC removal, power spectrum, snip edges), computed on the waveform in Kaldi's
int16 sample range (soundfile reads [-1, 1), we scale by 32768 like Kaldi's wave reader). Audio is read
with ``soundfile`` (torchaudio.load would need torchcodec + FFmpeg); ``wav.scp`` entries may be files or
Kaldi-style ``cmd |`` pipes producing a WAV/FLAC stream.

Utterances are grouped into batches of about ``batch_seconds`` of audio (:func:`make_batches`) and
computed in order by worker processes (:func:`iter_results`). A worker returns each utterance's float16
features, its exact float64 Kaldi CMVN statistics and, with ``center``, its mean (subtracted from the
stored values to keep float16 precision; see :mod:`data_prep.features.fbank`), or the reason it cannot be
used.
"""

from __future__ import annotations

import io
import multiprocessing
import subprocess
from dataclasses import asdict, dataclass
from typing import Iterator, Literal, Sequence

import numpy as np

from asr_base.config import option
from data_prep.features.cmvn import utterance_stats


@dataclass(frozen=True)
class FbankConfig:
    """Options passed to ``torchaudio.compliance.kaldi.fbank`` (Kaldi's option names as flags where they differ)."""

    num_mel_bins: int = option(40, help="mel bins = feature dim")
    frame_length_ms: float = option(25.0, flag="--frame-length", help="window length in ms")
    frame_shift_ms: float = option(10.0, flag="--frame-shift", help="frame shift in ms")
    dither: float = option(0.0, help="dithering constant (0 = deterministic; Kaldi's default is 1.0)")
    sample_rate: int = option(16000, flag="--sample-frequency",
                              help="expected sample rate; other rates are skipped (listed in skipped.tsv)")
    low_freq: float = option(20.0, help="low cut-off of the mel bins (Hz)")
    high_freq: float = option(0.0, help="high cut-off of the mel bins (Hz; <= 0 is an offset from Nyquist)")
    preemphasis: float = option(0.97, flag="--preemphasis-coefficient", help="pre-emphasis coefficient")
    window_type: Literal["povey", "hamming", "hanning", "rectangular", "blackman"] = option(
        "povey", help="analysis window")
    snip_edges: bool = option(True, help="only frames that fit in the audio (--no-snip-edges: pad the ends)")
    waveform_scale: float = option(32768.0, cli=False)  # soundfile's [-1, 1) -> Kaldi's int16 range
    feature_type: Literal["fbank", "mfcc"] = option(
        "fbank", help="fbank: log-mel (the DNNs' input); mfcc: Kaldi's compute-mfcc-feats (torchaudio "
                      "compliance.kaldi.mfcc), the GMM aligner's input in Kaldi recipes (with --num-mel-bins 23)")
    num_ceps: int = option(13, help="mfcc: cepstral coefficients kept, C0 included (= the feature dim)")
    cepstral_lifter: float = option(22.0, help="mfcc: cepstral liftering coefficient")
    use_energy: bool = option(False, help="mfcc: C0 replaced by the log energy (Kaldi's default is true, its "
                                          "LibriSpeech conf/mfcc.conf sets false)")

    MFCC_FIELDS = ("feature_type", "num_ceps", "cepstral_lifter", "use_energy")

    @property
    def dim(self) -> int:
        return self.num_ceps if self.feature_type == "mfcc" else self.num_mel_bins

    def stamp_config(self) -> dict:
        """The options that shape the features; the MFCC ones only for MFCC (fbank stores made before they existed
        stay up to date)."""
        out = asdict(self)
        if self.feature_type == "fbank":
            for k in self.MFCC_FIELDS:
                out.pop(k)
        return out

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
    """Log-mel fbank ``(frames, num_mel_bins)`` (or MFCC ``(frames, num_ceps)``, ``cfg.feature_type``) float32 of
    a mono waveform in [-1, 1)."""
    import torch
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32) * np.float32(cfg.waveform_scale))
    if wav.numel() < cfg.window_samples and cfg.snip_edges:
        return np.zeros((0, cfg.dim), dtype=np.float32)
    extra = {}
    if cfg.feature_type == "mfcc":
        extra = dict(num_ceps=cfg.num_ceps, cepstral_lifter=cfg.cepstral_lifter, use_energy=cfg.use_energy)
    feats = (kaldi.mfcc if cfg.feature_type == "mfcc" else kaldi.fbank)(
        wav[None, :],
        **extra,
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
