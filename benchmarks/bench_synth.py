"""Throughput of the synthetic-corpus pipeline (one process), next to a same-run reference.

Measured: ``synth_chapter`` (TTS sentence by sentence + sox perturbation + noise + FLAC + phone timings)
on a few chapters of the default plan, per engine. Reference: the bare TTS engine on the same sentences
(no perturbation, no FLAC), so the ratio is the cost of everything we add on top of the engine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_synth.py [--utts 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import soundfile as sf

from data_prep.corpus.synth.voices import get_voice, synthesize
from data_prep.corpus.synth.chapters import synth_chapter
from data_prep.corpus.synth.plan import harvest_pool, plan_corpus
from data_prep.corpus.synth.synth_config import SynthConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=12, help="utterances per engine")
    args = ap.parse_args()
    cfg = SynthConfig()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        plan = plan_corpus(cfg, Path(tmp), list(harvest_pool(cfg.min_words, cfg.max_words)[0]))
        print(f"{'engine':10s} {'utts':>5s} {'audio s':>8s} {'pipeline x RT':>14s} {'bare TTS x RT':>14s} {'ratio':>6s}")
        for engine in ("flite", "festival", "espeak"):
            task = next((t for t in plan.chapters if get_voice(t.speaker.voice).engine == engine), None)
            if task is None:
                continue
            utts = [u for t in plan.chapters if t.speaker == task.speaker for u in t.utts][: args.utts]
            task = dataclasses.replace(task, utts=tuple(utts))
            t0 = time.perf_counter()
            res = synth_chapter(task)
            t_pipe = time.perf_counter() - t0
            audio = sum(s for _, _, s in res.ok)
            items = [(f"{u.utt_id}.s{j}", s) for u in utts for j, s in enumerate(u.tts)]
            t0 = time.perf_counter()
            outs = synthesize(get_voice(task.speaker.voice), items, Path(tmp) / f"bare_{engine}")
            t_bare = time.perf_counter() - t0
            bare_audio = sum(sf.info(str(o.wav)).duration for o in outs.values() if o.wav is not None)
            print(f"{engine:10s} {len(res.ok):5d} {audio:8.1f} {audio / t_pipe:14.1f} {bare_audio / t_bare:14.1f} "
                  f"{(bare_audio / t_bare) / (audio / t_pipe):6.2f}")


if __name__ == "__main__":
    main()
