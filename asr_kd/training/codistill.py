"""``asr-kd codistill``: codistillation / online distillation (Anil et al. 2018) -- n members trained at once.

Member ``m`` minimises ``CE(y, q_m(1)) + alpha * T^2 * CE(mean_{j != m} p_j(T), q_m(T))``
(:func:`asr_kd.nn.losses.codistillation_loss`), where the ``p_j`` come from a *snapshot* of the other
members' weights refreshed every ``--refresh-every K`` steps (``K = 1``: deep mutual learning; Anil et al.
show stale snapshots, exchanged rarely, are enough). No separate teacher phase. Member ``i`` draws its own
frames (seed ``--seed + i``; with ``--data-shards S`` only from utterance shard ``i mod S``); the others'
predictions are computed on member ``i``'s frames. ``--burn-in-steps`` trains on hard labels only first.

Two ways to run it, same result up to float rounding:

* stacked (one process): the members are one :class:`~asr_kd.nn.model.StackedDNN` (as the teacher
  ensemble); the snapshot is a copy of the stack.
* across processes: ``torchrun --nproc-per-node n asr-kd codistill ...`` -- process ``r`` trains member
  ``r`` only, and every ``K`` steps the members' weights are exchanged with ``torch.distributed.all_gather``
  (gloo on CPUs, NCCL on GPUs). Each process keeps its own checkpoint (``train_state_rank<r>/``).

Both are resumable (``--resume``; the snapshot is part of the checkpoint, so a resumed run is identical)
and keep each member's own newbob schedule (a finished member keeps its best weights and still serves as a
teacher until all are done). Writes ``<out>/member_XX/`` model dirs (an ensemble dir for ``evaluate``,
``decode`` and the report) and ``<out>/codistill.json`` (members' and ensemble's dev frame accuracy, the
options, training wall and CPU seconds).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json
from asr_kd.nn.losses import codistillation_loss, mean_of_others
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.model_dirs import FINAL
from asr_kd.training.distributed import init_distributed
from asr_kd.training.ensemble import member_name
from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSampler
from asr_kd.training.stage import (add_stage_options, data_info, finish_stack, run_trainer, stage_options,
                                   StageOptions, start_training, training_step)
from asr_kd.training.trainer import Trainer

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {"seed": 400}


@dataclass
class CodistillConfig:
    out: str = option(help="codistillation directory (exp/codistill)")
    num_members: int = option(4, help="members trained together (>= 2; across processes: the world size)")
    alpha: float = option(1.0, help="weight of the distillation term towards the other members")
    temperature: float = option(1.0, help="temperature of the distillation term (T^2-scaled as in distill)")
    refresh_every: int = option(50, help="K: steps between snapshots of the other members (1: mutual learning)")
    burn_in_steps: int = option(0, help="hard labels only for this many steps (Anil et al.'s burn-in)")
    data_shards: int = option(1, help="member i trains on utterance shard i mod S")


class CodistillObjective:
    """Per-member losses against the snapshot of every member (``snapshot``, ``J`` members).

    ``own``: the snapshot index of each trained member (stacked: ``0..M-1``; one per process: ``[rank]``).
    """

    def __init__(self, snapshot: StackedDNN, own: list[int], cfg: CodistillConfig):
        self.snapshot, self.cfg = snapshot.eval(), cfg
        self.own = torch.tensor(own, dtype=torch.int64)
        self.active = True  # False during the burn-in

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if not self.active or not cfg.alpha:
            return codistillation_loss(logits, logits, labels, cfg.temperature, 0.0)
        m, b = logits.shape[0], logits.shape[1]
        with torch.no_grad():  # every snapshot member on every trained member's frames: (J, M, B, P)
            z = self.snapshot(x.reshape(m * b, x.shape[-1])).float()
            probs = torch.softmax(z / cfg.temperature, dim=-1).view(z.shape[0], m, b, -1)
            others = mean_of_others(probs, self.own)
        return codistillation_loss(logits, others, labels, cfg.temperature, cfg.alpha)


class CodistillTrainer(Trainer):
    """The shared trainer plus the snapshot: refreshed every ``K`` global steps, saved in the checkpoint.

    ``world > 1`` (one member per process): the snapshot is the all-gather of every process's member. The
    per-process trainer itself runs as a single-process trainer (``rank 0, world 1``: its own checkpoint,
    log and dev check); the members finish together (one stops only when all have stopped)."""

    def __init__(self, *args, codistill: CodistillConfig, group_rank: int = 0, group_world: int = 1, **kw):
        super().__init__(*args, **kw)
        self.codistill, self.group_rank, self.group_world = codistill, group_rank, group_world

    @property
    def finished(self) -> bool:
        done = self.schedule.finished
        if self.group_world == 1:
            return done
        flag = torch.tensor([0.0 if done else 1.0], device=self.device)
        dist.all_reduce(flag)  # every process asks at the same points of the loop
        return flag.item() == 0

    @torch.no_grad()
    def refresh(self) -> None:
        snap = self.objective.snapshot
        for dst, src in zip(snap.parameters(), self.model.parameters()):
            if self.group_world == 1:
                dst.copy_(src)
            else:
                parts = [torch.empty_like(src) for _ in range(self.group_world)]
                dist.all_gather(parts, src.detach().contiguous())
                dst.copy_(torch.cat(parts))

    def train_step(self, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> None:
        cfg = self.codistill
        self.objective.active = self.global_step >= cfg.burn_in_steps
        if self.objective.active and (self.global_step - cfg.burn_in_steps) % cfg.refresh_every == 0:
            self.refresh()
        super().train_step(x, labels, idx)

    def state_dict(self) -> dict:
        snap = self.objective.snapshot
        return super().state_dict() | {"codistill_snapshot": {k: v.detach().cpu() for k, v in snap.state_dict().items()}}

    def load_checkpoint(self, path=None) -> None:
        super().load_checkpoint(path)
        state = torch.load(path or self.checkpoint_path, map_location="cpu", weights_only=True)
        self.objective.snapshot.load_state_dict(state["codistill_snapshot"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser, TRAIN_DEFAULTS)
    add_options(parser, CodistillConfig)


def main(args: argparse.Namespace) -> int:
    return codistill(stage_options(args, TRAIN_DEFAULTS), from_args(CodistillConfig, args))


def codistill(opts: StageOptions, cfg: CodistillConfig) -> int:
    out, n, shards = Path(cfg.out), cfg.num_members, cfg.data_shards
    if n < 2:
        raise SystemExit("--num-members must be >= 2")
    if cfg.refresh_every < 1:
        raise SystemExit("--refresh-every must be >= 1")
    rank, world, _ = init_distributed()
    if world not in (1, n):
        raise SystemExit(f"across processes every process trains one member: run {n} processes, not {world}")
    names = [member_name(i) for i in range(n)]
    seeds = [opts.train.seed + i for i in range(n)]
    own = list(range(n)) if world == 1 else [rank]
    steps = [training_step(out / nm, "codistill", opts, asdict(cfg) | {"out": None, "member": i, "seed": s})
             for i, (nm, s) in enumerate(zip(names, seeds))]
    state_dir = out / ("train_state" if world == 1 else f"train_state_rank{rank}")
    ctx = start_training(opts, steps, all((out / nm / FINAL).is_file() for nm in names), state_dir)
    if ctx is None:
        return 0
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    tcfg = opts.train
    pools = [ctx.train.shard(i % shards, shards).usable if shards > 1 else ctx.train.usable for i in range(n)]
    # every member's epoch has the same number of steps (the smallest shard), in both modes
    frames = min([int(p.numel()) for p in pools] + ([tcfg.epoch_frames] if tcfg.epoch_frames else []))
    model = StackedDNN.init_from_seeds(opts.model, [seeds[i] for i in own]).to(ctx.device)
    snapshot = StackedDNN(opts.model, n).to(ctx.device).requires_grad_(False)
    for p in snapshot.parameters():
        p.zero_()
    sampler = FrameSampler([pools[i] for i in own], [seeds[i] for i in own], tcfg.batch_size, frames)
    log.info("codistillation of %d members (%s), %d x %d hidden, alpha %g, T %g, snapshot every %d steps%s", n,
             "stacked" if world == 1 else f"process {rank} of {world}", opts.model.hidden_layers,
             opts.model.hidden_dim, cfg.alpha, cfg.temperature, cfg.refresh_every,
             f", burn-in {cfg.burn_in_steps} steps" if cfg.burn_in_steps else "")
    trainer = CodistillTrainer(model, CodistillObjective(snapshot, own, cfg), ctx.train, ctx.dev, sampler, tcfg,
                               state_dir, [names[i] for i in own], codistill=cfg, group_rank=rank, group_world=world)
    if not run_trainer(trainer, opts.run.resume):
        return 0
    info = {"role": "codistill", "train": asdict(tcfg), "data": data_info(opts), "state_dir": str(state_dir),
            "codistill": asdict(cfg), "processes": world}
    finish_stack(trainer, [out / names[i] for i in own], info,
                 [{"seed": seeds[i], "data_shard": [i % shards, shards]} for i in own])
    for k, i in enumerate(own):
        steps[i].done(best_dev_acc=trainer.best_acc[k])
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if world > 1:
        t = torch.tensor([cpu], dtype=torch.float64, device=ctx.device)
        dist.all_reduce(t)  # also the barrier before rank 0 reads every member
        cpu = float(t.item())
        if rank != 0:
            return 0
    write_report(out, names, ctx.dev, tcfg, cfg, world, wall, cpu)
    return 0


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its threads so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_report(out: Path, names: list[str], dev, tcfg, cfg: CodistillConfig, world: int, wall: float,
                 cpu: float) -> None:
    """``codistill.json``: every member and their ensemble on dev (one stacked pass), options, compute."""
    dirs = [out / nm for nm in names]
    acc = stack_accuracy(dirs, dev, tcfg.eval_batch_size, tcfg.eval_max_frames, with_ensemble=True)
    members = {d.name: acc[str(d)] for d in dirs}
    write_json(out / "codistill.json", {
        "dev": {"members": members, "ensemble_arithmetic": acc["ensemble_arithmetic"],
                "ensemble_geometric": acc["ensemble_geometric"], "frames": acc["_frames"]},
        "num_members": len(names), "processes": world, "options": asdict(cfg) | {"out": None},
        "train_wall_s": wall, "train_cpu_s": cpu})
    mem = list(members.values())
    log.info("codistillation of %d (%s): members %.2f..%.2f (mean %.2f), ensemble %.2f; %.0f s wall, %.0f s CPU",
             len(names), "stacked" if world == 1 else f"{world} processes", min(mem), max(mem), sum(mem) / len(mem),
             acc["ensemble_arithmetic"], wall, cpu)
