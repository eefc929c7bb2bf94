"""``asr-kd distill``: students for every temperature in one run, sharing the teachers' forward pass.

Per batch the teacher ensemble runs once (one stacked pass for all members, no autograd); the ensemble
distribution is formed at each temperature and each student -- one member of a stacked student model --
minimises ``T^2 * CE(p_teacher(T), q(T)) + hard_weight * CE(y, q(1))`` (``--loss kd``, paper: weight 0.5),
or only the soft term (``--loss soft-only``), or matches zero-mean logits (``--loss logit-matching``, the
high-temperature limit; one student). All students start from the same initialisation and see the same
frames, so they differ only in T. The best student on dev frame accuracy is recorded in ``best.json``;
students are used at T = 1.

Writes ``exp/students/T1``, ``T2``, ... (model dirs), ``best.json`` and ``train_state/`` (stack checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import torch

from asr_kd.training.frame_data import FrameSampler
from asr_base.io import write_json
from asr_kd.nn.losses import distillation_loss
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.soft_targets import MEANS, TeacherEnsemble, TopKCache, ensemble_centered_logits
from asr_kd.training.train import (run_trainer, add_data_arguments, add_model_arguments, add_train_arguments, data_info, finish_stack,
                          model_config_from_args, prepare_out_dir, setup_run, train_config_from_args)
from asr_kd.training.trainer import Trainer

log = logging.getLogger(__name__)

LOSSES = ("kd", "soft-only", "logit-matching")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_train_arguments(parser)
    parser.set_defaults(seed=7)
    parser.add_argument("--teachers", nargs="+", required=True, help="teacher ensemble dir(s) (exp/teachers)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--hard-weight", type=float, default=0.5, help="weight of the hard-label CE (paper: 0.5)")
    parser.add_argument("--ensemble-mean", choices=MEANS, default="arithmetic")
    parser.add_argument("--loss", choices=LOSSES, default="kd",
                        help="kd: soft + hard; soft-only: hard weight 0; logit-matching: MSE on zero-mean logits")
    parser.add_argument("--topk-cache", type=int, default=0,
                        help="precompute top-k ensemble targets per training frame (small corpora; 0: on the fly)")
    parser.add_argument("--out", required=True, help="students directory (exp/students)")


def student_name(t: float) -> str:
    return f"T{t:g}"


@dataclasses.dataclass
class DistillObjective:
    """Per-student losses of one batch from one shared teacher pass."""

    teachers: TeacherEnsemble
    temperatures: list[float]
    hard_weight: float
    loss: str = "kd"
    cache: TopKCache | None = None

    def __post_init__(self):
        self._t = torch.tensor(self.temperatures, dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.loss == "logit-matching":
            teacher = ensemble_centered_logits(self.teachers.logits(x))
        elif self.cache is not None:
            teacher = self.cache.dense(idx[0])
        else:
            teacher = self.teachers.probs(x, self.temperatures)  # (len(T), B, P), one teacher pass
        soft = "logit-matching" if self.loss == "logit-matching" else "ce"
        return distillation_loss(logits, teacher, labels, self._t.to(logits.device), self.hard_weight, soft)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    temps = [0.0] if args.loss == "logit-matching" else list(args.temperatures)
    names = ["logit_matching"] if args.loss == "logit-matching" else [student_name(t) for t in temps]
    if len(set(names)) != len(names):
        raise SystemExit(f"duplicate temperatures: {args.temperatures}")
    hard_weight = 0.0 if args.loss == "soft-only" else args.hard_weight
    if not args.force and (out / "best.json").is_file() and all((out / n / "final.pt").is_file() for n in names):
        log.info("%s: all students trained, skipping (use --force to retrain)", out)
        return 0
    state_dir = out / "train_state"
    prepare_out_dir(state_dir, args.resume, True)
    ctx = setup_run(args)
    teachers = TeacherEnsemble.load(args.teachers, ctx.device, args.ensemble_mean, amp=not args.no_amp)
    mcfg = model_config_from_args(args, ctx.num_pdfs, ctx.train.feat_dim)
    tc = teachers.config
    if (tc.num_pdfs, tc.feat_dim, tc.left_context, tc.right_context) != (mcfg.num_pdfs, mcfg.feat_dim,
                                                                          mcfg.left_context, mcfg.right_context):
        raise SystemExit(f"teachers ({tc}) and students ({mcfg}) disagree on pdfs / features / context window")
    tcfg = train_config_from_args(args)
    cache = None
    if args.topk_cache and args.loss != "logit-matching":
        cache = TopKCache.build(teachers, ctx.train, temps, args.topk_cache, tcfg.eval_batch_size)
        log.info("top-%d target cache: %.1f MB", args.topk_cache, cache.memory_bytes() / 2**20)
    objective = DistillObjective(teachers, temps, hard_weight, args.loss, cache)
    model = StackedDNN.init_from_seeds(mcfg, [args.seed] * len(names)).to(ctx.device)
    sampler = FrameSampler([ctx.train.usable], [args.seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
    log.info("distilling %d teachers into %d students (%s), loss %s, hard weight %g, %s mean", teachers.num_members,
             len(names), " ".join(names), args.loss, hard_weight, args.ensemble_mean)
    trainer = Trainer(model, objective, ctx.train, ctx.dev, sampler, tcfg, state_dir, names, ctx.rank, ctx.world)
    if not run_trainer(trainer, args.resume):
        return 0
    if ctx.rank != 0:
        return 0
    info = {"role": "student", "train": dataclasses.asdict(tcfg), "data": data_info(args, ctx.num_pdfs),
            "teachers": [str(t) for t in args.teachers], "num_teachers": teachers.num_members, "loss": args.loss,
            "hard_weight": hard_weight, "ensemble_mean": args.ensemble_mean, "seed": args.seed}
    finish_stack(trainer, [out / n for n in names], info,
                 [{"temperature": t if args.loss != "logit-matching" else None} for t in temps])
    dev = dict(zip(names, trainer.best_acc))
    best = max(names, key=lambda n: dev[n])
    write_json(out / "best.json", {"best": best, "selected_on": f"{ctx.dev.name} frame accuracy", "dev_frame_acc": dev,
                                   "temperature": dict(zip(names, temps))[best] if args.loss != "logit-matching" else None,
                                   "loss": args.loss, "hard_weight": hard_weight, "ensemble_mean": args.ensemble_mean})
    log.info("students on dev: %s; best %s", ", ".join(f"{n} {a:.2f}" for n, a in dev.items()), best)
    return 0
