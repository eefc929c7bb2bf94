"""``asr-kd fitnets``: FitNets (Romero et al. 2015) -- a hint stage, then ordinary distillation.

Stage 1 (hints): the student's first ``g`` hidden layers (the *guided* layer ``g``, ``--student-guided-layer``)
and a learned regressor ``r`` (a linear layer, student width -> teacher width, followed by the teacher's
ReLU) are trained so that ``r(v_g(x))`` matches the teacher's hidden layer ``h`` (``--teacher-hint-layer``)
``u_h(x)`` in squared error (:func:`asr_kd.nn.losses.hint_loss`); the teacher is one member of the ensemble
(``--hint-member``: hidden units of different members are not comparable, so they are not averaged). SGD
with momentum at ``--hint-lr`` for ``--hint-epochs`` epochs of the trainer's ``--epoch-frames``; the dev hint
loss is logged per epoch. The student's layers above ``g`` keep their initialisation; the regressor is
discarded. Written to ``<out>/hint/hint.pt`` (``final.pt`` format) with ``hint_log.jsonl`` and ``hint.json``.

The hint fixes what layer ``g`` computes, not its scale (the regressor absorbs any scale), and the hint stage
grows it: on the mini corpus a 6 x 128 student's guided layer ended at 6.9x the RMS activation of its He
initialisation, its logits at 7x, and stage 2 then trained worse than from scratch (and diverged at T = 10).
The layers above ``g`` are still He-initialised for unit-scale inputs, so before stage 2 layer ``g``'s weights and
bias are divided by ``s`` = (its RMS activation on ``--eval-batch-size`` train frames) / (the same at
initialisation) (:func:`match_init_scale`). ReLU is positively homogeneous, so the features the hint taught are
unchanged up to that one factor; ``s`` is in ``hint.json`` (``guided_rescale``).

Stage 2: ``asr-kd distill`` of the whole student from those weights (``--init-student``), with every
``distill`` option (``--temperatures``, ``--student-hidden-layers`` / ``--student-hidden-dim``: FitNets'
thin-and-deep student). ``--hint-epochs 0`` skips stage 1 (the same student distilled from scratch).
Both stages are up-to-date checked (``.stamp.json``); the hint stage is short and restarts if interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json, write_text
from asr_kd.nn.losses import hint_loss
from asr_kd.nn.model import load_model, save_model, StackedDNN
from asr_kd.nn.model_dirs import FINAL, member_dirs
from asr_kd.training.distill import distill, DistillConfig, TRAIN_DEFAULTS
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.stage import add_stage_options, stage_options, StageOptions, start_training, training_step

log = logging.getLogger(__name__)

HINT = "hint.pt"


@dataclass
class HintConfig:
    teacher_hint_layer: int | None = option(None, help="teacher hidden layer (1-based) giving the hint "
                                                       "(none: the middle one)")
    student_guided_layer: int | None = option(None, help="student hidden layer (1-based) fitted to the hint "
                                                         "(none: the middle one)")
    hint_member: int = option(0, help="which ensemble member is the hint teacher")
    hint_epochs: int = option(1, help="epochs of the hint stage (0: no hint stage)")
    hint_lr: float = option(0.05, help="SGD learning rate of the hint stage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser, TRAIN_DEFAULTS)
    add_options(parser, DistillConfig)
    add_options(parser, HintConfig, title="hints")


def main(args: argparse.Namespace) -> int:
    return fitnets(stage_options(args, TRAIN_DEFAULTS), from_args(DistillConfig, args), from_args(HintConfig, args))


def middle(layers: int) -> int:
    return (layers + 1) // 2


def fitnets(opts: StageOptions, dcfg: DistillConfig, hcfg: HintConfig) -> int:
    if dcfg.init_student:
        raise SystemExit("fitnets sets --init-student itself (the hint stage's output)")
    if hcfg.hint_epochs > 0:
        hint = hint_stage(opts, dcfg, hcfg)
        if hint is None:
            return 0
        dcfg = replace(dcfg, init_student=str(hint))
    return distill(opts, dcfg)


def _layers(model: nn.Module, n: int) -> nn.Module:
    """The first ``n`` hidden layers (Linear + ReLU) of an :class:`~asr_kd.nn.model.AcousticDNN`."""
    return model.hidden[: 2 * n]


def hint_stage(opts: StageOptions, dcfg: DistillConfig, hcfg: HintConfig) -> Path | None:
    """Train the guided layers + regressor on the hint; the hinted student's weights (None: not the last rank)."""
    out = Path(dcfg.out) / "hint"
    scfg = dcfg.student_config(opts.model)
    teacher_dirs = [d for t in dcfg.teachers for d in member_dirs(t)]
    if not 0 <= hcfg.hint_member < len(teacher_dirs):
        raise SystemExit(f"--hint-member {hcfg.hint_member}: the ensemble has {len(teacher_dirs)} members")
    tdir = teacher_dirs[hcfg.hint_member]
    teacher = load_model(tdir / FINAL).eval().requires_grad_(False)
    h = hcfg.teacher_hint_layer or middle(teacher.config.hidden_layers)
    g = hcfg.student_guided_layer or middle(scfg.hidden_layers)
    if not 1 <= h <= teacher.config.hidden_layers or not 1 <= g <= scfg.hidden_layers:
        raise SystemExit(f"hint layer {h} / guided layer {g} outside the teacher's {teacher.config.hidden_layers} / "
                         f"the student's {scfg.hidden_layers} hidden layers")
    own = asdict(hcfg) | {"teacher_hint_layer": h, "student_guided_layer": g, "student": asdict(scfg)}
    step = training_step(out, "fitnets-hint", opts, own, {"hint_teacher": str(tdir / FINAL)})
    ctx = start_training(opts, [step], (out / HINT).is_file(), out)
    if ctx is None:
        return out / HINT
    if ctx.world > 1:
        raise SystemExit("the FitNets hint stage runs in one process")
    tc = opts.train
    student = StackedDNN.init_from_seeds(scfg, [tc.seed]).member(0).to(ctx.device)  # distill's initialisation
    teacher = teacher.to(ctx.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed + 1)
        regressor = nn.Sequential(nn.Linear(scfg.hidden_dim, teacher.config.hidden_dim), nn.ReLU()).to(ctx.device)
    guided, hinted = _layers(student, g), _layers(teacher, h)
    pick = torch.randperm(ctx.train.num_usable, generator=torch.Generator().manual_seed(tc.seed + 2))
    probe = ctx.train.windows(ctx.train.usable[pick[: tc.eval_batch_size].to(ctx.train.usable.device)],
                              scfg.left_context, scfg.right_context)  # train frames for the scale (kept below)
    with torch.no_grad():
        init_rms = _rms(guided(probe))
    params = list(guided.parameters()) + list(regressor.parameters())
    opt = torch.optim.SGD(params, lr=hcfg.hint_lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    sampler = FrameSampler([ctx.train.usable], [tc.seed], tc.batch_size, tc.epoch_frames)
    left, right = scfg.left_context, scfg.right_context
    log.info("FitNets hints: teacher %s hidden layer %d (of %d x %d) -> student layer %d (of %d x %d), %d epochs",
             tdir, h, teacher.config.hidden_layers, teacher.config.hidden_dim, g, scfg.hidden_layers, scfg.hidden_dim,
             hcfg.hint_epochs)
    records = []
    for epoch in range(hcfg.hint_epochs):
        total, n = 0.0, 0
        for s in tqdm(range(sampler.steps_per_epoch), desc=f"hint epoch {epoch}", unit="step", leave=False):
            idx = sampler.batch(epoch, s)[0]
            x = ctx.train.windows(idx, left, right)
            with torch.no_grad():
                target = hinted(x)
            loss = hint_loss(regressor(guided(x)), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        rec = {"epoch": epoch, "train_hint_loss": total / max(n, 1),
               "dev_hint_loss": dev_hint_loss(guided, regressor, hinted, ctx.dev, left, right, tc)}
        records.append(rec)
        log.info("hint epoch %d: train hint loss %.4f, dev %.4f", epoch, rec["train_hint_loss"], rec["dev_hint_loss"])
    rescale = match_init_scale(guided, probe, init_rms)
    log.info("guided layer %d rescaled by 1/%.3f to its initial RMS activation %.3f", g, rescale, init_rms)
    save_model(out / HINT, student.cpu())
    write_text(out / "hint_log.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_json(out / "hint.json", {"hint_teacher": str(tdir), "teacher_hint_layer": h, "student_guided_layer": g,
                                   "student": asdict(scfg), "epochs": hcfg.hint_epochs, "log": records,
                                   "guided_rescale": rescale, "guided_init_rms": init_rms})
    step.done(dev_hint_loss=records[-1]["dev_hint_loss"] if records else None)
    return out / HINT


def _rms(y: torch.Tensor) -> float:
    return float(y.float().pow(2).mean().sqrt())


@torch.no_grad()
def match_init_scale(guided: nn.Sequential, x: torch.Tensor, init_rms: float) -> float:
    """Divide the last Linear of ``guided`` (Linear + ReLU pairs) by ``s = rms(guided(x)) / init_rms`` so that its
    RMS activation on ``x`` is ``init_rms`` again; returns ``s`` (1.0 for a dead layer)."""
    s = _rms(guided(x)) / init_rms if init_rms > 0 else 0.0
    if not s > 0:
        return 1.0
    last = [m for m in guided if isinstance(m, nn.Linear)][-1]
    last.weight.div_(s)
    last.bias.div_(s)
    return s


@torch.no_grad()
def dev_hint_loss(guided: nn.Module, regressor: nn.Module, hinted: nn.Module, dev: FrameSplit, left: int,
                  right: int, tc) -> float:
    total, frames = 0.0, 0
    for idx in dev.eval_batches(tc.eval_batch_size, tc.eval_max_frames):
        x = dev.windows(idx, left, right)
        total += float(hint_loss(regressor(guided(x)), hinted(x))) * idx.numel()
        frames += idx.numel()
    return total / max(frames, 1)
