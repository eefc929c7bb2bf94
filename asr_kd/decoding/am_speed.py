"""``asr-kd am-speed``: acoustic-model speed (frames/s) of model dirs on the CPU, for the report's student sizes.

What a decoder pays per frame for the acoustic model: splice the context window, one forward pass, log-softmax
(the priors' subtraction is a vector add and is left out). Each model scores the same ``--max-frames``
frames of ``--feats`` in ``--batch-frames`` batches with ``--threads`` torch threads, after one warm-up
batch, ``--repeats`` times; the best time counts (the machine may be shared). The first model is the
reference: each model's speed is also given relative to it, measured in the same run. ``--models`` takes
model dirs, ensemble dirs (every member) and student sweep dirs (every student), found by
:func:`asr_kd.nn.model_dirs.discover`. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass

import torch

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json
from asr_kd.nn.model import load_model
from asr_kd.nn.model_dirs import discover, FINAL
from asr_kd.training.frame_data import FrameSplit

log = logging.getLogger(__name__)


@dataclass
class AmSpeedConfig:
    models: list[str] = option(help="model / ensemble / student-sweep dirs; the first model is the reference")
    feats: str = option(help="feature store to score (data/fbank/test)")
    out: str = option(help="results JSON (exp/results/am_speed.json)")
    max_frames: int = option(20000, help="frames scored per model and repeat")
    batch_frames: int = option(1024, help="frames per forward pass")
    threads: int = option(1, help="torch CPU threads")
    repeats: int = option(3, help="timed passes per model (the fastest counts)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, AmSpeedConfig)


def main(args: argparse.Namespace) -> int:
    return am_speed(from_args(AmSpeedConfig, args))


@torch.no_grad()
def time_model(model: torch.nn.Module, split: FrameSplit, cfg: AmSpeedConfig) -> tuple[float, int]:
    """Best seconds over ``repeats`` for the scored frames, and the number of frames."""
    c = model.config
    batches = list(split.eval_batches(cfg.batch_frames, cfg.max_frames))
    torch.log_softmax(model(split.windows(batches[0], c.left_context, c.right_context)), dim=-1)  # warm-up
    best = float("inf")
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        for idx in batches:
            torch.log_softmax(model(split.windows(idx, c.left_context, c.right_context)), dim=-1)
        best = min(best, time.perf_counter() - t0)
    return best, sum(int(b.numel()) for b in batches)


def am_speed(cfg: AmSpeedConfig) -> int:
    torch.set_num_threads(cfg.threads)
    split = FrameSplit.load(cfg.feats, device="cpu")
    rows, ref = [], None
    for path in cfg.models:
        _, systems = discover(path)
        for name, d in systems:
            model = load_model(d / FINAL).eval()
            secs, frames = time_model(model, split, cfg)
            fps = frames / secs
            ref = ref or fps
            m = model.config
            rows.append({"name": name, "dir": str(d), "hidden_layers": m.hidden_layers, "hidden_dim": m.hidden_dim,
                         "num_parameters": model.num_parameters(), "frames_per_s": fps, "relative_to_first": fps / ref})
            log.info("%s (%d x %d, %d parameters): %.0f frames/s (%.2fx the first)", name, m.hidden_layers,
                     m.hidden_dim, model.num_parameters(), fps, fps / ref)
    write_json(cfg.out, {"models": rows, "options": asdict(cfg), "device": "cpu", "torch_threads": cfg.threads,
                         "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()})
    return 0
