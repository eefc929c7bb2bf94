#!/usr/bin/env python
"""Benchmark: feature extraction real-time factor and context-window batch throughput on CPU.

Each number is printed next to a same-run reference:

1. ``compute-fbank`` (our whole stage: FLAC decode with soundfile, torchaudio Kaldi fbank, per-speaker
   CMVN, float16 store writes, worker processes) on a few minutes of synthetic audio, against plain
   ``torchaudio.compliance.kaldi.fbank`` calls on the same waveforms already in memory.
2. ``asr_kd.nn.context_window.splice`` (26 x 40 windows from a float16 store of ~1M frames, utterance-edge
   clamping) for batches of 1024 and 8192 random frames, against a bare ``index_select`` gather of the
   same rows precomputed outside the timing (so the ratio is the cost of the utterance lookup + clamping);
   plain advanced indexing ``feats[rows]`` is shown too.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_features.py [--minutes 3] [--jobs 1]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _synth_corpus(root: Path, minutes: float, utt_seconds: float = 10.0, sr: int = 16000):
    import soundfile as sf

    from data_prep.corpus.data_dir import DataDir

    rng = np.random.default_rng(0)
    d = DataDir()
    waves = []
    n_utts = max(1, int(round(minutes * 60 / utt_seconds)))
    for i in range(n_utts):
        n = int(utt_seconds * sr)
        t = np.arange(n) / sr
        f0 = 100 + 30 * (i % 7)
        x = sum(0.1 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8)) + 0.01 * rng.standard_normal(n)
        x = (x * np.hanning(n) ** 0.1).astype(np.float32)
        u = f"{100 + i % 4}-1-{i:04d}"
        path = root / f"{u}.flac"
        sf.write(path, x, sr, subtype="PCM_16")
        waves.append(sf.read(path, dtype="float32")[0])
        d.wav[u], d.utt2spk[u], d.utt2num_samples[u] = str(path), u.split("-")[0], n
    d.write(root / "data")
    return root / "data", waves


def bench_fbank(minutes: float, jobs: int) -> None:
    import torch
    import torchaudio.compliance.kaldi as kaldi

    from data_prep.features.fbank import ComputeFbankConfig, compute_fbank_store

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, waves = _synth_corpus(root, minutes)
        audio_s = sum(len(w) for w in waves) / 16000
        # reference: torchaudio on in-memory waveforms (after one warm-up call)
        kaldi.fbank(torch.from_numpy(waves[0] * 32768)[None], num_mel_bins=40, dither=0.0)
        t0 = time.perf_counter()
        for w in waves:
            kaldi.fbank(torch.from_numpy(w * 32768)[None], num_mel_bins=40, dither=0.0)
        ref_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = compute_fbank_store(ComputeFbankConfig(data, root / "fbank", jobs=jobs, min_seconds_per_job=0))
        wall = time.perf_counter() - t0
        assert store.num_frames > 0
    print(f"fbank: {audio_s:.0f} s of audio ({len(waves)} utterances)")
    print(f"  compute-fbank stage (jobs={jobs}, incl. decode, CMVN, store, worker start): "
          f"{audio_s / wall:8.1f}x real time (RTF {wall / audio_s:.4f}, {wall:.2f} s)")
    print(f"  reference: bare torchaudio fbank on in-memory audio, 1 thread:       "
          f"{audio_s / ref_wall:8.1f}x real time (RTF {ref_wall / audio_s:.4f}, {ref_wall:.2f} s)")
    print(f"  ratio stage/reference speed: {ref_wall / wall:.2f}")


def _timeit(fn, min_seconds: float = 1.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return dt / n


def bench_splice(num_frames: int, batch_sizes: list[int], seconds: float) -> None:
    import torch

    from asr_kd.nn.context_window import splice, utterance_bounds
    from data_prep.features.store import FeatureStore, FeatureStoreWriter

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    lengths = rng.integers(300, 1700, size=num_frames // 1000 + 1)
    lengths = lengths[np.cumsum(lengths) <= num_frames]
    total = int(lengths.sum())
    with tempfile.TemporaryDirectory() as tmp:
        with FeatureStoreWriter(Path(tmp) / "store", 40, total) as w:
            step = 1 << 18
            block = rng.standard_normal((step, 40)).astype(np.float16)
            for i, n in enumerate(lengths):
                w.add(f"u{i:06d}", "s", block[: int(n)])
            w.close({})
        store = FeatureStore.open(Path(tmp) / "store")
        feats = torch.from_numpy(np.array(store.feats))
    starts = torch.from_numpy(store.starts)
    lens = torch.from_numpy(store.lengths)
    print(f"context windows: float16 store of {total:,} frames x 40, {len(lengths)} utterances, 26-frame windows, "
          f"1 thread")
    g = torch.Generator().manual_seed(0)
    for b in batch_sizes:
        idx = torch.randint(0, total, (b,), generator=g)
        # the reference gathers exactly the rows splice gathers (precomputed, outside the timing)
        first, last = utterance_bounds(starts, lens, idx)
        rows = (idx[:, None] + torch.arange(-20, 6)[None, :]).clamp(first[:, None], last[:, None]).reshape(-1)
        t_splice = _timeit(lambda: splice(feats, starts, lens, idx), seconds)
        t_ref = _timeit(lambda: feats.index_select(0, rows).reshape(b, -1), seconds)
        t_adv = _timeit(lambda: feats[rows.reshape(b, 26)].reshape(b, -1), seconds)
        assert torch.equal(splice(feats, starts, lens, idx), feats.index_select(0, rows).reshape(b, -1))
        print(f"  batch {b:5d}: splice {b / t_splice:12,.0f} frames/s | reference bare index_select of the same rows "
              f"{b / t_ref:12,.0f} frames/s | ratio {t_ref / t_splice:.2f} | (advanced indexing feats[rows]: "
              f"{b / t_adv:,.0f} frames/s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="minutes of synthetic audio for the fbank benchmark")
    p.add_argument("--jobs", type=int, default=1, help="compute-fbank worker processes")
    p.add_argument("--frames", type=int, default=1_000_000, help="frames in the context-window store")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 8192])
    p.add_argument("--seconds", type=float, default=2.0, help="minimum timing per measurement")
    p.add_argument("--skip-fbank", action="store_true")
    p.add_argument("--skip-splice", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.skip_fbank:
        bench_fbank(args.minutes, args.jobs)
    if not args.skip_splice:
        bench_splice(args.frames, args.batch_sizes, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
