"""``asr-kd regularizer``: soft targets as a regularizer (paper section 6, Table 5).

Two models of the baseline's architecture are trained on the same small random fraction of the training
utterances (default 3%): one on the hard labels, one on the soft targets of the model trained on the
full data (``--teacher``, e.g. exp/baseline; an ensemble dir works too). Both are one stacked model fed
the same frames, so they differ only in the targets. Reports train (on the fraction they saw) and test
frame accuracy for both and for the full-data model, in ``report.json``; model dirs ``hard/``, ``soft/``.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json
from asr_kd.nn.losses import distillation_loss, hard_ce
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.model_dirs import member_dirs
from asr_kd.nn.soft_targets import TeacherEnsemble
from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.stage import (add_stage_options, data_info, finish_stack, run_trainer, stage_options,
                                   StageOptions, start_training, teacher_inputs, training_step)
from asr_kd.training.trainer import Trainer

log = logging.getLogger(__name__)

NAMES = ["hard", "soft"]
TRAIN_DEFAULTS = {"epochs": 30, "seed": 11}


@dataclass
class RegularizerConfig:
    teacher: str = option(help="the full-data model (exp/baseline) or an ensemble dir")
    test_feats: str = option(help="test feature store")
    test_labels: str = option(help="test pdf.npy")
    out: str = option(help="output directory (exp/regularizer)")
    fraction: float = option(0.03, help="fraction of training utterances (paper: 3%%)")
    temperature: float = option(1.0, help="temperature of the soft targets")
    hard_weight: float = option(0.0, help="weight of the hard term in the soft model's loss (0: soft targets only)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser, TRAIN_DEFAULTS)
    add_options(parser, RegularizerConfig)


def main(args: argparse.Namespace) -> int:
    return run_regularizer(stage_options(args, TRAIN_DEFAULTS), from_args(RegularizerConfig, args))


@dataclass
class RegularizerObjective:
    teachers: TeacherEnsemble
    temperature: float
    hard_weight: float

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        hard = hard_ce(logits[0], labels[0])
        soft = distillation_loss(logits[1], self.teachers.probs(x, self.temperature), labels[0], self.temperature,
                                 self.hard_weight)
        return torch.stack([hard, soft])


def run_regularizer(opts: StageOptions, cfg: RegularizerConfig) -> int:
    out = Path(cfg.out)
    teacher_dirs = member_dirs(cfg.teacher)
    own = {k: v for k, v in asdict(cfg).items() if k != "out"}
    step = training_step(out, "regularizer", opts, own, teacher_inputs(teacher_dirs)
                         | {"test_feats": cfg.test_feats, "test_labels": cfg.test_labels})
    state_dir = out / "train_state"
    ctx = start_training(opts, [step], (out / "report.json").is_file(), state_dir)
    if ctx is None:
        return 0
    tcfg, seed = opts.train, opts.train.seed
    subset = ctx.train.utterance_subset(cfg.fraction, seed)
    log.info("training on %.1f%% of the utterances: %d of %d usable frames", 100 * cfg.fraction, subset.num_usable,
             ctx.train.num_usable)
    teachers = TeacherEnsemble.load(teacher_dirs, ctx.device, "arithmetic", amp=tcfg.amp, compile=tcfg.compile)
    model = StackedDNN.init_from_seeds(opts.model, [seed, seed]).to(ctx.device)
    # an epoch as long as the full-data models' (--epoch-frames), made of passes over the small subset: newbob's
    # per-epoch gain thresholds then mean what they mean there (with one pass per epoch, a 3% subset's epochs
    # are ~30x shorter, each gains < --halving-start points, and the learning rate is halved from epoch 3 on)
    passes = max(1, math.ceil(tcfg.epoch_frames / subset.num_usable)) if tcfg.epoch_frames else 1
    log.info("an epoch: %d passes over the subset", passes)
    sampler = FrameSampler([subset.usable], [seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world, passes)
    trainer = Trainer(model, RegularizerObjective(teachers, cfg.temperature, cfg.hard_weight), subset, ctx.dev,
                      sampler, tcfg, state_dir, NAMES, ctx.rank, ctx.world)
    if not run_trainer(trainer, opts.run.resume):
        return 0
    if ctx.rank != 0:
        return 0
    info = {"role": "regularizer", "train": asdict(tcfg), "data": data_info(opts),
            "fraction": cfg.fraction, "subset_frames": subset.num_usable, "teacher": cfg.teacher}
    finish_stack(trainer, [out / n for n in NAMES], info,
                 [{"targets": "hard"}, {"targets": "soft", "temperature": cfg.temperature,
                                        "hard_weight": cfg.hard_weight}])
    test = FrameSplit.load(cfg.test_feats, cfg.test_labels, ctx.num_pdfs, ctx.device, name="test")
    rows = report_rows(cfg, [out / n for n in NAMES], teacher_dirs, ctx.train, subset, test, tcfg.eval_batch_size)
    write_json(out / "report.json", {"frame_acc": rows, "fraction": cfg.fraction, "temperature": cfg.temperature,
                                     "passes_per_epoch": passes, "epochs_run": trainer.epoch,
                                     "hard_weight": cfg.hard_weight, "teacher": cfg.teacher,
                                     "note": "train accuracy is on the frames each model was trained on"})
    step.done()
    for name, r in rows.items():
        log.info("%-22s train %.2f%%  test %.2f%%", name, r["train"], r["test"])
    return 0


def report_rows(cfg: RegularizerConfig, small: list[Path], teacher_dirs: list[Path], train: FrameSplit,
                subset: FrameSplit, test: FrameSplit, batch_size: int) -> dict[str, dict]:
    """Train and test frame accuracy of the full-data model and the two small-data models."""
    ens = len(teacher_dirs) > 1

    def acc(dirs, split, with_ensemble=False):
        # reported numbers use every frame (eval_max_frames only thins the per-epoch dev check)
        return stack_accuracy(dirs, split, batch_size, None, with_ensemble)

    tr_small, te_small = acc(small, subset), acc(small, test)
    tr_full, te_full = acc(teacher_dirs, train, ens), acc(teacher_dirs, test, ens)
    key = "ensemble_arithmetic" if ens else str(teacher_dirs[0])
    return {
        "baseline_full_data": {"train": tr_full[key], "test": te_full[key], "train_frames": train.num_usable},
        f"hard_{cfg.fraction:g}": {"train": tr_small[str(small[0])], "test": te_small[str(small[0])],
                                   "train_frames": subset.num_usable},
        f"soft_{cfg.fraction:g}": {"train": tr_small[str(small[1])], "test": te_small[str(small[1])],
                                   "train_frames": subset.num_usable},
    }
