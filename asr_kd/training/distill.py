"""``asr-kd distill``: students for every temperature in one run, sharing the teachers' forward pass.

Per batch the teacher ensemble runs once (one stacked pass for all members, no autograd); the ensemble
distribution is formed at each temperature and each student -- one member of a stacked student model --
minimises ``T^2 * CE(p_teacher(T), q(T)) + hard_weight * CE(y, q(1))`` (``--loss kd``, paper: weight 0.5),
or only the soft term (``--loss soft-only``), or matches zero-mean logits (``--loss logit-matching``, the
high-temperature limit; one student). All students start from the same initialisation and see the same
frames, so they differ only in T. The best student on dev frame accuracy is recorded in ``best.json``;
students are used at T = 1. ``--transfer-feats`` adds unlabelled stores to the transfer set (soft term only on
their frames).

Writes ``exp/students/T1``, ``T2``, ... (model dirs), ``best.json`` and ``train_state/`` (stack checkpoint).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json
from asr_kd.nn.losses import distillation_loss
from asr_kd.nn.model import load_model, ModelConfig, StackedDNN
from asr_kd.nn.model_dirs import FINAL, member_dirs
from asr_kd.nn.soft_targets import Mean, TeacherEnsemble, TopKCache, ensemble_centered_logits
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.stage import (add_stage_options, data_info, finish_stack, run_trainer, stage_options,
                                   StageOptions, start_training, teacher_inputs, training_step)
from asr_kd.training.trainer import Trainer
from data_prep.features.store import META, FeatureStore

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {"seed": 7}


@dataclass
class DistillConfig:
    teachers: list[str] = option(help="teacher ensemble dir(s) (exp/teachers)")
    out: str = option(help="students directory (exp/students)")
    temperatures: list[float] = option([1.0, 2.0, 5.0, 10.0], help="one student per temperature (paper: 1 2 5 10)")
    hard_weight: float = option(0.5, help="weight of the hard-label CE (paper: 0.5)")
    ensemble_mean: Mean = option("arithmetic", help="how the members' distributions are combined")
    loss: Literal["kd", "soft-only", "logit-matching"] = option(
        "kd", help="kd: soft + hard; soft-only: hard weight 0; logit-matching: MSE on zero-mean logits")
    topk_cache: int = option(0, help="precompute top-k ensemble targets per training frame (small corpora; "
                                     "0: on the fly)")
    student_hidden_layers: int | None = option(None, help="student hidden layers (none: --hidden-layers, the "
                                                          "teachers' size)")
    student_hidden_dim: int | None = option(None, help="student units per hidden layer (none: --hidden-dim)")
    init_student: str | None = option(None, help="start every student from this final.pt-format file (e.g. "
                                                 "a FitNets hint stage's hint.pt; none: --seed)")
    transfer_feats: list[str] = option([], help="unlabelled feature store(s) added to the transfer set: their "
                                                "frames are drawn with the train frames and get the soft term only "
                                                "(paper section 2; beyond its section 4). Same features as "
                                                "--train-feats")

    def student_config(self, model: ModelConfig) -> ModelConfig:
        """The students' architecture: ``model`` with the student layer count / width where given."""
        return replace(model, hidden_layers=self.student_hidden_layers or model.hidden_layers,
                       hidden_dim=self.student_hidden_dim or model.hidden_dim)

    @property
    def logit_matching(self) -> bool:
        return self.loss == "logit-matching"

    def students(self) -> tuple[list[str], list[float]]:
        """Student names and their temperatures (logit matching: one student, ``logit_matching``)."""
        if self.logit_matching:
            return ["logit_matching"], [0.0]
        names = [student_name(t) for t in self.temperatures]
        if len(set(names)) != len(names):
            raise SystemExit(f"duplicate temperatures: {self.temperatures}")
        return names, list(self.temperatures)

    def effective_hard_weight(self) -> float:
        return 0.0 if self.loss == "soft-only" else self.hard_weight


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser, TRAIN_DEFAULTS)
    add_options(parser, DistillConfig)


def main(args: argparse.Namespace) -> int:
    return distill(stage_options(args, TRAIN_DEFAULTS), from_args(DistillConfig, args))


def check_transfer_stores(train_feats: str, transfer_feats: list[str]) -> None:
    """Each transfer store exists and holds the train store's features (dimension, extraction options, CMVN):
    a clear error before any work starts."""
    ref = FeatureStore.open(train_feats)
    for d in transfer_feats:
        if not (Path(d) / META).is_file():
            raise SystemExit(f"--transfer-feats {d}: not a finished feature store (no {META})")
        st = FeatureStore.open(d)
        for key in ("dim", "fbank", "cmvn"):
            if st.meta.get(key) != ref.meta.get(key):
                raise SystemExit(f"--transfer-feats {d}: {key} {st.meta.get(key)} differs from --train-feats "
                                 f"{train_feats} ({ref.meta.get(key)})")


def student_name(t: float) -> str:
    return f"T{t:g}"


@dataclass
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
        if self._t.device != logits.device:  # once: no host-to-device copy per step
            self._t = self._t.to(logits.device)
        return distillation_loss(logits, teacher, labels, self._t, self.hard_weight, soft)


def distill(opts: StageOptions, cfg: DistillConfig) -> int:
    out = Path(cfg.out)
    names, temps = cfg.students()
    hard_weight = cfg.effective_hard_weight()
    if cfg.topk_cache and (opts.train.input_noise or opts.train.freq_mask):
        raise SystemExit("--topk-cache holds the teachers' targets for the clean frames; it cannot be combined "
                         "with --input-noise / --freq-mask (the teachers must see the perturbed input)")
    teacher_dirs = [d for t in cfg.teachers for d in member_dirs(t)]
    own = {k: v for k, v in asdict(cfg).items() if k != "out"}
    inputs = teacher_inputs(teacher_dirs) | ({"init_student": cfg.init_student} if cfg.init_student else {})
    inputs |= {f"transfer:{i}": d for i, d in enumerate(cfg.transfer_feats)}
    check_transfer_stores(opts.data.train_feats, cfg.transfer_feats)
    step = training_step(out, "distill", opts, own, inputs)
    done = (out / "best.json").is_file() and all((out / n / FINAL).is_file() for n in names)
    state_dir = out / "train_state"
    ctx = start_training(opts, [step], done, state_dir)
    if ctx is None:
        return 0
    teachers = TeacherEnsemble.load(teacher_dirs, ctx.device, cfg.ensemble_mean, amp=opts.train.amp,
                                    compile=opts.train.compile)
    mcfg, tc = cfg.student_config(opts.model), teachers.config
    if (tc.num_pdfs, tc.feat_dim, tc.left_context, tc.right_context) != (mcfg.num_pdfs, mcfg.feat_dim,
                                                                          mcfg.left_context, mcfg.right_context):
        raise SystemExit(f"teachers ({tc}) and students ({mcfg}) disagree on pdfs / features / context window")
    tcfg, seed = opts.train, opts.train.seed
    labelled = ctx.train.num_usable
    for d in cfg.transfer_feats:
        extra = FrameSplit.load(d, None, device=ctx.device, name=Path(d).name)
        ctx.train = ctx.train.with_unlabelled(extra, name="train")
        log.info("transfer set: + %d unlabelled frames from %s (%d labelled train frames)", extra.num_usable, d,
                 labelled)
    cache = None
    if cfg.topk_cache and not cfg.logit_matching:
        cache = TopKCache.build(teachers, ctx.train, temps, cfg.topk_cache, tcfg.eval_batch_size)
        log.info("top-%d target cache: %.1f MB", cfg.topk_cache, cache.memory_bytes() / 2**20)
    objective = DistillObjective(teachers, temps, hard_weight, cfg.loss, cache)
    if cfg.init_student:
        init = load_model(cfg.init_student)
        if init.config != mcfg:
            raise SystemExit(f"--init-student {cfg.init_student}: its architecture {init.config} is not the "
                             f"students' {mcfg}")
        model = StackedDNN.from_members([init] * len(names)).to(ctx.device)
    else:
        model = StackedDNN.init_from_seeds(mcfg, [seed] * len(names)).to(ctx.device)
    sampler = FrameSampler([ctx.train.usable], [seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
    log.info("distilling %d teachers (%d x %d) into %d students (%s; %d x %d, %d parameters), loss %s, hard weight "
             "%g, %s mean", teachers.num_members, tc.hidden_layers, tc.hidden_dim, len(names), " ".join(names),
             mcfg.hidden_layers, mcfg.hidden_dim, model.member(0).num_parameters(), cfg.loss, hard_weight,
             cfg.ensemble_mean)
    trainer = Trainer(model, objective, ctx.train, ctx.dev, sampler, tcfg, state_dir, names, ctx.rank, ctx.world)
    if not run_trainer(trainer, opts.run.resume):
        return 0
    if ctx.rank != 0:
        return 0
    temperature = {n: None if cfg.logit_matching else t for n, t in zip(names, temps)}
    info = {"role": "student", "train": asdict(tcfg), "data": data_info(opts), "teachers": list(cfg.teachers),
            "num_teachers": teachers.num_members, "loss": cfg.loss, "hard_weight": hard_weight,
            "ensemble_mean": cfg.ensemble_mean, "seed": seed}
    finish_stack(trainer, [out / n for n in names], info,
                 [{"temperature": temperature[n]} for n in names])
    dev = dict(zip(names, trainer.best_acc))
    best = max(names, key=lambda n: dev[n])
    write_json(out / "best.json", {"best": best, "selected_on": f"{ctx.dev.name} frame accuracy", "dev_frame_acc": dev,
                                   "temperature": temperature[best], "loss": cfg.loss,
                                   "hard_weight": hard_weight, "ensemble_mean": cfg.ensemble_mean})
    step.done(best=best, dev_frame_acc=dev)
    log.info("students on dev: %s; best %s", ", ".join(f"{n} {a:.2f}" for n, a in dev.items()), best)
    return 0
