"""``asr-kd train-ensemble``: N teacher models of one architecture from different seeds (paper: 10).

Members differ in initialisation and in the order they see the frames (seed ``--seed + i``); with
``--data-shards S`` member ``i`` trains only on utterance shard ``i mod S`` (the paper found varying the
data made no significant difference). Members are trained ``--parallel-members`` at a time as one stacked
model (one batched matmul per layer for the group: better use of the hardware for models too small to
fill it; each member keeps its own newbob schedule and early stop). With ``--parallel-members 1`` they
are trained one after another.

Writes ``exp/teachers/member_XX/`` model directories (each with its ``.stamp.json``: a group is retrained
when an option, an input or the group's composition changed) and ``exp/teachers/ensemble.json`` with each
member's and the ensemble's (arithmetic / geometric mean) dev frame accuracy. The stacked training state of
group ``g`` lives in ``exp/teachers/train_state_gG/`` (``checkpoint.pt``, ``train_log.jsonl``, ``curves.png``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json
from asr_kd.nn.model import StackedDNN
from asr_kd.nn.model_dirs import FINAL
from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSampler
from asr_kd.training.stage import (add_stage_options, data_info, finish_stack, run_trainer, RunContext, setup_run,
                                   stage_options, StageOptions, start_training, training_step)
from asr_kd.training.trainer import Trainer, hard_objective

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {"seed": 100}


@dataclass
class EnsembleConfig:
    out: str = option(help="ensemble directory (exp/teachers)")
    num_members: int = option(10, help="ensemble size (paper: 10)")
    parallel_members: int = option(0, help="members trained together as one stacked model (0: all at once, "
                                           "1: sequentially)")
    data_shards: int = option(1, help="member i trains on utterance shard i mod S")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_options(parser, TRAIN_DEFAULTS)
    add_options(parser, EnsembleConfig)


def main(args: argparse.Namespace) -> int:
    return train_ensemble(stage_options(args, TRAIN_DEFAULTS), from_args(EnsembleConfig, args))


def member_name(i: int) -> str:
    return f"member_{i:02d}"


def train_ensemble(opts: StageOptions, cfg: EnsembleConfig) -> int:
    out, n, shards = Path(cfg.out), cfg.num_members, cfg.data_shards
    if n < 1:
        raise SystemExit("--num-members must be >= 1")
    group = cfg.parallel_members or n
    groups = [list(range(s, min(s + group, n))) for s in range(0, n, group)]
    seed0 = opts.train.seed
    ctx: RunContext | None = None
    for gi, members in enumerate(groups):
        names = [member_name(i) for i in members]
        seeds = [seed0 + i for i in members]
        steps = [training_step(out / nm, "train-ensemble", opts, {"seed": s, "data_shard": [i % shards, shards],
                                                                  "stack": names})
                 for nm, s, i in zip(names, seeds, members)]
        state_dir = out / f"train_state_g{gi}"
        started = start_training(opts, steps, all((out / nm / FINAL).is_file() for nm in names), state_dir, ctx)
        if started is None:
            continue
        ctx = started
        tcfg = opts.train
        pools = [ctx.train.shard(i % shards, shards).usable if shards > 1 else ctx.train.usable for i in members]
        model = StackedDNN.init_from_seeds(opts.model, seeds).to(ctx.device)
        sampler = FrameSampler(pools, seeds, tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
        log.info("training %s as one stack (%d x %d hidden, seeds %s)", ", ".join(names), opts.model.hidden_layers,
                 opts.model.hidden_dim, seeds)
        trainer = Trainer(model, hard_objective, ctx.train, ctx.dev, sampler, tcfg, state_dir, names, ctx.rank,
                          ctx.world)
        if not run_trainer(trainer, opts.run.resume):
            return 0
        info = {"role": "teacher", "train": asdict(tcfg), "data": data_info(opts), "state_dir": str(state_dir)}
        finish_stack(trainer, [out / nm for nm in names], info,
                     [{"seed": s, "data_shard": [i % shards, shards]} for s, i in zip(seeds, members)])
        if ctx.rank == 0:
            for m, st in enumerate(steps):
                st.done(best_dev_acc=trainer.best_acc[m])
    if ctx is not None and ctx.rank != 0:
        return 0
    write_report(opts, cfg, ctx or setup_run(opts))
    return 0


def write_report(opts: StageOptions, cfg: EnsembleConfig, ctx: RunContext) -> None:
    """``ensemble.json``: every member and the ensemble on dev, one stacked pass."""
    out, n, seed0 = Path(cfg.out), cfg.num_members, opts.train.seed
    dirs = [out / member_name(i) for i in range(n)]
    acc = stack_accuracy(dirs, ctx.dev, opts.train.eval_batch_size, opts.train.eval_max_frames, with_ensemble=True)
    report = {"dev": {"members": {d.name: acc[str(d)] for d in dirs},
                      "ensemble_arithmetic": acc["ensemble_arithmetic"], "ensemble_geometric": acc["ensemble_geometric"],
                      "frames": acc["_frames"]},
              "num_members": n, "seeds": [seed0 + i for i in range(n)], "data_shards": cfg.data_shards}
    write_json(out / "ensemble.json", report)
    mem = list(report["dev"]["members"].values())
    log.info("ensemble of %d: members %.2f..%.2f (mean %.2f), ensemble %.2f (arithmetic) / %.2f (geometric)", n,
             min(mem), max(mem), sum(mem) / n, acc["ensemble_arithmetic"], acc["ensemble_geometric"])
