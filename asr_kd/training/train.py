"""``asr-kd train``: the baseline -- one DNN acoustic model trained on hard labels (frame-level CE).

Writes a model directory (docs/formats.md): ``config.json``, ``checkpoint.pt`` (latest, for ``--resume``),
``final.pt`` (``save_model`` format), ``train_log.jsonl``, ``curves.png``, ``eval.json`` and ``.stamp.json``
(the up-to-date check: a finished model is retrained only when an option or an input changed, or with
``--force``; see :mod:`asr_kd.training.stage`).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.model_dirs import FINAL
from asr_kd.training.frame_data import FrameSampler
from asr_kd.training.stage import (add_stage_options, data_info, finish_stack, run_trainer, stage_options,
                                   StageOptions, start_training, training_step)
from asr_kd.training.trainer import Trainer, hard_objective

log = logging.getLogger(__name__)


@dataclass
class BaselineConfig:
    out: str = option(help="model directory (exp/baseline)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser)
    add_options(parser, BaselineConfig)


def main(args: argparse.Namespace) -> int:
    return train_baseline(stage_options(args), from_args(BaselineConfig, args))


def train_baseline(opts: StageOptions, cfg: BaselineConfig) -> int:
    out = Path(cfg.out)
    step = training_step(out, "train", opts)
    ctx = start_training(opts, [step], (out / FINAL).is_file(), out)
    if ctx is None:
        return 0
    tcfg, seed = opts.train, opts.train.seed
    model = StackedDNN.init_from_seeds(opts.model, [seed]).to(ctx.device)
    log.info("baseline: %d hidden x %d, %d parameters", opts.model.hidden_layers, opts.model.hidden_dim,
             model.member(0).num_parameters())
    sampler = FrameSampler([ctx.train.usable], [seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
    trainer = Trainer(model, hard_objective, ctx.train, ctx.dev, sampler, tcfg, out, [out.name], ctx.rank, ctx.world)
    if not run_trainer(trainer, opts.run.resume):
        return 0
    info = {"role": "baseline", "train": asdict(tcfg), "data": data_info(opts), "seed": seed}
    finish_stack(trainer, [out], info)
    if ctx.rank == 0:
        step.done(best_dev_acc=trainer.best_acc[0])
    log.info("baseline done: best dev frame accuracy %.2f%%", trainer.best_acc[0])
    return 0
