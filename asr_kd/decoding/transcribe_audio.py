"""Audio in, normalised features out, for ``asr-kd transcribe``: inputs, fbank and CMVN an unseen speaker has.

* :func:`resolve_inputs` turns command-line inputs (audio files, Kaldi ``wav.scp`` files, directories searched
  recursively for audio) into ``(utt_id, spec)`` pairs; a missing path or a duplicate utterance id is a
  listed skip, not a crash.
* :func:`extract` computes log-mel fbank exactly as ``compute-fbank`` does for training
  (:func:`data_prep.features.fbank_extract.compute_fbank` with the export's fbank options), in ``jobs``
  processes. Unreadable, empty, multi-channel, too short or wrong-rate audio is a listed skip with its
  reason; a wrong rate is resampled (``torchaudio.functional.resample``) only when asked to.
* :func:`normalise` applies the CMVN mode: ``speaker`` (Kaldi stats per speaker over the given files -- the
  training setting when every speaker has enough audio), ``utterance`` (stats of the utterance alone) or
  ``sliding`` (Kaldi's ``apply-cmvn-sliding``: stats over a window of ``window`` frames around/before each
  frame). Mean and variance are normalised as in training (``speaker_mean_var``), means only for a
  ``speaker_mean`` model, nothing for ``none``.

Sliding CMVN is written here with cumulative sums (a few numpy ops per utterance) rather than taken from
``torchaudio.functional.sliding_window_cmn``, which loops over frames in Python; it follows that function's
(= Kaldi's) window rules exactly and a test checks the two agree.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from data_prep.features.cmvn import stats_to_transform, utterance_stats
from data_prep.features.fbank_extract import AudioError, FbankConfig, compute_fbank, read_audio

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph")
CMVN_MODES = ("speaker", "utterance", "sliding")


@dataclass
class Features:
    utt: str
    spec: str
    feats: np.ndarray | None  # float32 (T, dim) raw log-mel, or None with ``reason``
    reason: str = ""
    num_samples: int = 0


def read_scp(path: Path) -> list[tuple[str, str]]:
    """``utt-id spec`` lines of a Kaldi ``wav.scp`` (spec: a path or a ``cmd |`` pipe)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(maxsplit=1)
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected 'utt-id path-or-command', got {line!r}")
        out.append((fields[0], fields[1]))
    return out


def resolve_inputs(inputs: Sequence[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """``(utt, spec)`` pairs in input order and the skips ``(utt, path, reason)``.

    A directory contributes its audio files (by extension, recursively, sorted), a ``*.scp`` file its
    entries, any other file itself; an audio file's utterance id is its name without extension.
    """
    items: list[tuple[str, str]] = []
    skipped: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}

    def add(utt: str, spec: str) -> None:
        if utt in seen:
            skipped.append((utt, spec, f"duplicate utterance id (also {seen[utt]})"))
        else:
            seen[utt] = spec
            items.append((utt, spec))

    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                skipped.append((p.name, arg, f"directory has no audio files ({', '.join(AUDIO_EXTENSIONS)})"))
            for f in files:
                add(f.stem, str(f))
        elif p.is_file() and p.suffix == ".scp":
            for utt, spec in read_scp(p):
                add(utt, spec)
        elif p.is_file():
            add(p.stem, arg)
        else:
            skipped.append((p.stem or arg, arg, "no such file or directory"))
    return items, skipped


def load_features(utt: str, spec: str, fb: FbankConfig, resample: bool = False) -> Features:
    """Raw log-mel features of one input, or the reason it cannot be used."""
    try:
        data, sr = read_audio(spec)
        if data.shape[0] == 0:
            raise AudioError("empty audio (0 samples)")
        if data.shape[1] != 1:
            raise AudioError(f"multi-channel audio ({data.shape[1]} channels), expected mono; mix it down first")
        samples = data[:, 0]
        if sr != fb.sample_rate:
            if not resample:
                raise AudioError(f"sample rate {sr} Hz, the model expects {fb.sample_rate} Hz "
                                 "(pass --resample to resample it)")
            import torch
            import torchaudio.functional as taf

            samples = taf.resample(torch.from_numpy(np.ascontiguousarray(samples)), sr, fb.sample_rate).numpy()
        if fb.num_frames(len(samples)) == 0:
            raise AudioError(f"too short: {len(samples)} samples gives no {fb.frame_length_ms:g} ms frame")
        feats = compute_fbank(samples, fb)
        if not np.isfinite(feats).all():
            raise AudioError("non-finite feature values (NaN/inf samples?)")
    except AudioError as e:
        return Features(utt, spec, None, str(e))
    return Features(utt, spec, feats.astype(np.float32), "", len(samples))


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _load_star(args) -> Features:
    return load_features(*args)


def extract(items: Sequence[tuple[str, str]], fb: FbankConfig, resample: bool = False, jobs: int = 1) -> Iterable[Features]:
    """Features of ``items`` in order, from ``jobs`` worker processes (inline when ``jobs <= 1``)."""
    args = ((u, s, fb, resample) for u, s in items)
    if jobs <= 1 or len(items) <= 1:
        yield from map(_load_star, args)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(jobs, len(items)), initializer=_init_worker) as pool:
        yield from pool.imap(_load_star, args, chunksize=1)


def sliding_cmvn(x: np.ndarray, window: int = 600, min_window: int = 100, center: bool = True,
                 norm_vars: bool = True) -> np.ndarray:
    """Kaldi's ``apply-cmvn-sliding`` (torchaudio's ``sliding_window_cmn``) with cumulative sums."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    t = np.arange(n)
    if center:
        start = t - window // 2
        end = start + window
    else:
        start = t - window
        end = t + 1
    end = np.where(start < 0, end - start, end)
    start = np.maximum(start, 0)
    if not center:
        end = np.maximum(t + 1, min_window)  # after the shift above, end > t always holds
    over = end > n
    start = np.maximum(np.where(over, start - (end - n), start), 0)
    end = np.minimum(end, n)
    count = (end - start)[:, None].astype(np.float64)
    cs = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    mean = (cs[end] - cs[start]) / count
    out = x - mean
    if norm_vars:
        cs2 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])
        var = (cs2[end] - cs2[start]) / count - mean**2
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(count > 1, out / np.sqrt(np.maximum(var, 1e-20)), 0.0)
    return out.astype(np.float32)


def normalise(feats: Mapping[str, np.ndarray], mode: str, train_cmvn: str = "speaker_mean_var",
              utt2spk: Mapping[str, str] | None = None, window: int = 600, center: bool = True) -> dict[str, np.ndarray]:
    """CMVN of every utterance in ``mode`` (see module doc); ``train_cmvn`` is the export's training mode."""
    if mode not in CMVN_MODES:
        raise ValueError(f"unknown CMVN mode {mode!r}; choose one of {CMVN_MODES}")
    if train_cmvn == "none":
        return {u: np.asarray(x, np.float32) for u, x in feats.items()}
    if train_cmvn not in ("speaker_mean_var", "speaker_mean"):
        raise ValueError(f"the export was trained with an unknown CMVN mode {train_cmvn!r}")
    norm_vars = train_cmvn == "speaker_mean_var"
    if mode == "sliding":
        return {u: sliding_cmvn(x, window, center=center, norm_vars=norm_vars) for u, x in feats.items()}
    stats = {u: utterance_stats(x) for u, x in feats.items()}
    if mode == "speaker":  # one speaker for all inputs unless utt2spk says otherwise
        spk = {u: (utt2spk or {}).get(u, "all") for u in feats}
        per_spk: dict[str, np.ndarray] = {}
        for u, s in spk.items():
            per_spk[s] = per_spk.get(s, 0) + stats[u]
        stats = {u: per_spk[spk[u]] for u in feats}
    out = {}
    for u, x in feats.items():
        mean, scale = stats_to_transform(stats[u][None], norm_vars)
        out[u] = ((x - mean[0]) * scale[0]).astype(np.float32)
    return out


def read_utt2spk(path: str | os.PathLike) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            out[fields[0]] = fields[1]
    return out
