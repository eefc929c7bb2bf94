"""Check the audio of a data dir's utterances in worker processes: header, sample rate, channels, decode.

``check_audio`` never raises: an unreadable, corrupt, truncated, empty, multi-channel, wrong-rate or too
short file comes back with a ``kind`` (summary category) and a ``reason`` (for ``skipped.tsv``).
Decode checks: ``full`` decodes every sample, ``ends`` only the first and last block, ``header`` trusts
``soundfile.info``.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass

from tqdm import tqdm

from data_prep.corpus.skipped import clean

DECODE_CHECKS = ("full", "ends", "header")
# libsndfile reports this frame count when a FLAC header does not declare its length (e.g. 0 samples).
_UNKNOWN_FRAMES = 2**62
_BLOCK = 1 << 20  # frames per read in the decode check (bounds memory on long files)
# Leading bytes of a well-formed file per extension. libsndfile probes other formats (even MPEG) on
# garbage, which can "succeed" on random bytes; checking the magic first gives a clear reason instead.
_MAGIC = {".flac": (b"fLaC", b"ID3"), ".wav": (b"RIFF", b"RF64")}


@dataclass
class AudioCheck:
    """Result of checking one audio file (returned from the worker processes)."""

    utt_id: str
    path: str
    num_samples: int = 0
    sample_rate: int = 0
    kind: str = ""  # empty when the file is good
    reason: str = ""


def _decode_count(f, frames: int, mode: str) -> int:
    """Decode (part of) an open SoundFile; returns the number of samples decoded in ``full`` mode."""
    if mode == "full" or frames >= _UNKNOWN_FRAMES:
        n = 0
        while True:
            block = f.read(_BLOCK, dtype="int16")
            if len(block) == 0:
                return n
            n += len(block)
    # "ends": first and last block only
    f.read(min(frames, 4096), dtype="int16")
    if frames > 4096:
        f.seek(frames - 4096)
        got = len(f.read(4096, dtype="int16"))
        if got != 4096:
            raise ValueError(f"last block decoded {got} of 4096 samples")
    return frames


def check_audio(utt: str, path: str, sample_rate: int, min_samples: int, mode: str) -> AudioCheck:
    """Header + decode check of one file. Never raises: problems come back in ``kind``/``reason``."""
    import soundfile as sf

    res = AudioCheck(utt, path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        res.kind, res.reason = "unreadable-audio", f"cannot stat audio file: {e.strerror or e}"
        return res
    if size == 0:
        res.kind, res.reason = "empty-audio", "empty audio file (0 bytes)"
        return res
    magic = _MAGIC.get(os.path.splitext(path)[1].lower())
    if magic:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            res.kind, res.reason = "unreadable-audio", f"cannot read audio file: {e.strerror or e}"
            return res
        if not head.startswith(magic):
            res.kind, res.reason = "unreadable-audio", (
                f"unreadable audio: not a {os.path.splitext(path)[1][1:].upper()} file (starts with {head!r})")
            return res
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile raises its own error types for corrupt / unknown formats
        res.kind, res.reason = "unreadable-audio", f"unreadable audio: {clean(e)}"
        return res
    res.sample_rate = int(info.samplerate)
    if info.channels != 1:
        res.kind, res.reason = "multi-channel", f"multi-channel audio ({info.channels} channels), expected mono"
        return res
    if info.samplerate != sample_rate:
        res.kind, res.reason = "sample-rate", f"sample rate {info.samplerate} != {sample_rate}"
        return res
    frames = int(info.frames)
    if frames == 0:
        res.kind, res.reason = "empty-audio", "empty audio (0 samples)"
        return res
    if mode != "header" or frames >= _UNKNOWN_FRAMES:
        decoded = 0
        try:
            with sf.SoundFile(path) as f:
                decoded = _decode_count(f, frames, mode)
        except Exception as e:
            if frames >= _UNKNOWN_FRAMES and decoded == 0:
                res.kind, res.reason = "empty-audio", (
                    f"empty audio (header declares no length, no samples decode: {clean(e)})")
            else:
                res.kind, res.reason = "corrupt-audio", f"corrupt audio, decoding failed: {clean(e)}"
            return res
        if frames >= _UNKNOWN_FRAMES:
            frames = decoded
        elif decoded != frames:
            res.kind, res.reason = "corrupt-audio", f"truncated audio: decoded {decoded} of {frames} samples"
            return res
        if frames == 0:
            res.kind, res.reason = "empty-audio", "empty audio (0 samples)"
            return res
    res.num_samples = frames
    if frames < min_samples:
        res.kind, res.reason = "too-short", (
            f"audio shorter than one frame ({frames} samples < {min_samples} = "
            f"{min_samples / sample_rate * 1000:g} ms)")
    return res


def _check_star(args) -> AudioCheck:
    return check_audio(*args)


def _init_worker() -> None:
    # Workers only decode audio: keep any numeric library single-threaded.
    os.environ["OMP_NUM_THREADS"] = "1"


def check_all_audio(items: list[tuple[str, str]], sample_rate: int, min_duration: float, decode_check: str,
                    jobs: int, desc: str = "checking audio") -> list[AudioCheck]:
    """Check ``[(utt, path)]`` with a pool of ``jobs`` processes; results in input order."""
    min_samples = max(1, int(round(min_duration * sample_rate)))
    tasks = [(u, p, sample_rate, min_samples, decode_check) for u, p in items]
    bar = dict(total=len(tasks), desc=desc, unit="file", mininterval=1.0)
    if jobs <= 1 or len(tasks) < 64:
        return [_check_star(t) for t in tqdm(tasks, **bar)]
    # spawn: never fork a parent whose torch/OpenMP threads may already be running. An executor (not
    # multiprocessing.Pool) so a worker that dies raises BrokenProcessPool instead of hanging forever.
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    chunk = max(1, min(256, len(tasks) // (jobs * 8)))
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker) as pool:
        return list(tqdm(pool.map(_check_star, tasks, chunksize=chunk), **bar))
