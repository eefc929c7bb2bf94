"""``asr-kd regularizer``: soft targets as a regularizer (paper section 6, Table 5).

Two models of the baseline's architecture are trained on the same small random fraction of the training
utterances (default 3%): one on the hard labels, one on the soft targets of the model trained on the
full data (``--teacher``, e.g. exp/baseline; an ensemble dir works too). Both are one stacked model fed
the same frames, so they differ only in the targets. Reports train (on the fraction they saw) and test
frame accuracy for both and for the full-data model, in ``report.json``; model dirs ``hard/``, ``soft/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import torch

from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_base.io import write_json
from asr_kd.nn.losses import distillation_loss, hard_ce
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.model_dirs import member_dirs
from asr_kd.nn.soft_targets import TeacherEnsemble
from asr_kd.training.train import (run_trainer, add_data_arguments, add_model_arguments, add_train_arguments, data_info, finish_stack,
                          model_config_from_args, prepare_out_dir, setup_run, train_config_from_args)
from asr_kd.training.trainer import Trainer

log = logging.getLogger(__name__)

NAMES = ["hard", "soft"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_train_arguments(parser, epochs=30)
    parser.set_defaults(seed=11)
    parser.add_argument("--teacher", required=True, help="the full-data model (exp/baseline) or an ensemble dir")
    parser.add_argument("--fraction", type=float, default=0.03, help="fraction of training utterances (paper: 3%%)")
    parser.add_argument("--temperature", type=float, default=1.0, help="temperature of the soft targets")
    parser.add_argument("--hard-weight", type=float, default=0.0,
                        help="weight of the hard term in the soft model's loss (0: soft targets only)")
    parser.add_argument("--test-feats", required=True, help="test feature store")
    parser.add_argument("--test-labels", required=True, help="test pdf.npy")
    parser.add_argument("--out", required=True, help="output directory (exp/regularizer)")


@dataclasses.dataclass
class RegularizerObjective:
    teachers: TeacherEnsemble
    temperature: float
    hard_weight: float

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        hard = hard_ce(logits[0], labels[0])
        soft = distillation_loss(logits[1], self.teachers.probs(x, self.temperature), labels[0], self.temperature,
                                 self.hard_weight)
        return torch.stack([hard, soft])


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not args.force and (out / "report.json").is_file():
        log.info("%s: report.json exists, skipping (use --force to redo)", out)
        return 0
    state_dir = out / "train_state"
    prepare_out_dir(state_dir, args.resume, True)
    ctx = setup_run(args)
    subset = ctx.train.utterance_subset(args.fraction, args.seed)
    log.info("training on %.1f%% of the utterances: %d of %d usable frames", 100 * args.fraction, subset.num_usable,
             ctx.train.num_usable)
    teachers = TeacherEnsemble.load(args.teacher, ctx.device, "arithmetic", amp=not args.no_amp)
    mcfg = model_config_from_args(args, ctx.num_pdfs, ctx.train.feat_dim)
    tcfg = train_config_from_args(args)
    model = StackedDNN.init_from_seeds(mcfg, [args.seed, args.seed]).to(ctx.device)
    sampler = FrameSampler([subset.usable], [args.seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
    trainer = Trainer(model, RegularizerObjective(teachers, args.temperature, args.hard_weight), subset, ctx.dev,
                      sampler, tcfg, state_dir, NAMES, ctx.rank, ctx.world)
    if not run_trainer(trainer, args.resume):
        return 0
    if ctx.rank != 0:
        return 0
    info = {"role": "regularizer", "train": dataclasses.asdict(tcfg), "data": data_info(args, ctx.num_pdfs),
            "fraction": args.fraction, "subset_frames": subset.num_usable, "teacher": args.teacher}
    finish_stack(trainer, [out / n for n in NAMES], info,
                 [{"targets": "hard"}, {"targets": "soft", "temperature": args.temperature,
                                        "hard_weight": args.hard_weight}])
    test = FrameSplit.load(args.test_feats, args.test_labels, ctx.num_pdfs, ctx.device, name="test")
    teacher_dirs = member_dirs(args.teacher)
    small = [out / n for n in NAMES]
    ens = len(teacher_dirs) > 1

    def acc(dirs, split, with_ensemble=False):
        # reported numbers use every frame (eval_max_frames only thins the per-epoch dev check)
        return stack_accuracy(dirs, split, tcfg.eval_batch_size, None, with_ensemble)

    tr_small, te_small = acc(small, subset), acc(small, test)
    tr_full, te_full = acc(teacher_dirs, ctx.train, ens), acc(teacher_dirs, test, ens)
    key = "ensemble_arithmetic" if ens else str(teacher_dirs[0])
    rows = {
        "baseline_full_data": {"train": tr_full[key], "test": te_full[key], "train_frames": ctx.train.num_usable},
        f"hard_{args.fraction:g}": {"train": tr_small[str(small[0])], "test": te_small[str(small[0])],
                                    "train_frames": subset.num_usable},
        f"soft_{args.fraction:g}": {"train": tr_small[str(small[1])], "test": te_small[str(small[1])],
                                    "train_frames": subset.num_usable},
    }
    write_json(out / "report.json", {"frame_acc": rows, "fraction": args.fraction, "temperature": args.temperature,
                                     "hard_weight": args.hard_weight, "teacher": args.teacher,
                                     "note": "train accuracy is on the frames each model was trained on"})
    for name, r in rows.items():
        log.info("%-22s train %.2f%%  test %.2f%%", name, r["train"], r["test"])
    return 0
