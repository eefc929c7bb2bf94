"""``asr-kd train-ensemble``: N teacher models of one architecture from different seeds (paper: 10).

Members differ in initialisation and in the order they see the frames (seed ``--seed + i``); with
``--data-shards S`` member ``i`` trains only on utterance shard ``i mod S`` (the paper found varying the
data made no significant difference). Members are trained ``--parallel-members`` at a time as one stacked
model (one batched matmul per layer for the group: better use of the hardware for models too small to
fill it; each member keeps its own newbob schedule and early stop). With ``--parallel-members 1`` they
are trained one after another.

Writes ``exp/teachers/member_XX/`` model directories and ``exp/teachers/ensemble.json`` with each member's
and the ensemble's (arithmetic / geometric mean) dev frame accuracy. The stacked training state of group
``g`` lives in ``exp/teachers/train_state_gG/`` (``checkpoint.pt``, ``train_log.jsonl``, ``curves.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSampler
from asr_base.io import write_json
from asr_kd.nn.model import StackedDNN
from asr_kd.training.train import (run_trainer, add_data_arguments, add_model_arguments, add_train_arguments, data_info, finish_stack,
                          model_config_from_args, prepare_out_dir, setup_run, train_config_from_args)
from asr_kd.training.trainer import Trainer, hard_objective

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_train_arguments(parser)
    parser.set_defaults(seed=100)
    parser.add_argument("--num-members", type=int, default=10, help="ensemble size (paper: 10)")
    parser.add_argument("--parallel-members", type=int, default=0,
                        help="members trained together as one stacked model (0: all at once, 1: sequentially)")
    parser.add_argument("--data-shards", type=int, default=1, help="member i trains on utterance shard i mod S")
    parser.add_argument("--out", required=True, help="ensemble directory (exp/teachers)")


def member_name(i: int) -> str:
    return f"member_{i:02d}"


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    n = args.num_members
    if n < 1:
        raise SystemExit("--num-members must be >= 1")
    group = args.parallel_members or n
    groups = [list(range(s, min(s + group, n))) for s in range(0, n, group)]
    todo = [g for g in groups if args.force or not all((out / member_name(i) / "final.pt").is_file() for i in g)]
    ctx = None
    for gi, members in enumerate(groups):
        if members not in todo:
            log.info("members %s already trained, skipping", ", ".join(member_name(i) for i in members))
            continue
        state_dir = out / f"train_state_g{gi}"
        if not prepare_out_dir(state_dir, args.resume, True):
            continue
        ctx = ctx or setup_run(args)
        mcfg = model_config_from_args(args, ctx.num_pdfs, ctx.train.feat_dim)
        tcfg = train_config_from_args(args)
        seeds = [args.seed + i for i in members]
        pools = [ctx.train.shard(i % args.data_shards, args.data_shards).usable if args.data_shards > 1
                 else ctx.train.usable for i in members]
        model = StackedDNN.init_from_seeds(mcfg, seeds).to(ctx.device)
        sampler = FrameSampler(pools, seeds, tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
        names = [member_name(i) for i in members]
        log.info("training %s as one stack (%d x %d hidden, seeds %s)", ", ".join(names), mcfg.hidden_layers,
                 mcfg.hidden_dim, seeds)
        trainer = Trainer(model, hard_objective, ctx.train, ctx.dev, sampler, tcfg, state_dir, names, ctx.rank, ctx.world)
        if not run_trainer(trainer, args.resume):
            return 0
        info = {"role": "teacher", "train": dataclasses.asdict(tcfg), "data": data_info(args, ctx.num_pdfs),
                "state_dir": str(state_dir)}
        finish_stack(trainer, [out / nm for nm in names], info,
                     [{"seed": s, "data_shard": [i % args.data_shards, args.data_shards]} for s, i in zip(seeds, members)])
    if ctx is not None and ctx.rank != 0:
        return 0
    # Report: every member and the ensemble on dev, one stacked pass.
    ctx = ctx or setup_run(args)
    dirs = [out / member_name(i) for i in range(n)]
    acc = stack_accuracy(dirs, ctx.dev, args.eval_batch_size, args.eval_max_frames, with_ensemble=True)
    report = {"dev": {"members": {d.name: acc[str(d)] for d in dirs},
                      "ensemble_arithmetic": acc["ensemble_arithmetic"], "ensemble_geometric": acc["ensemble_geometric"],
                      "frames": acc["_frames"]},
              "num_members": n, "seeds": [args.seed + i for i in range(n)], "data_shards": args.data_shards}
    write_json(out / "ensemble.json", report)
    mem = list(report["dev"]["members"].values())
    log.info("ensemble of %d: members %.2f..%.2f (mean %.2f), ensemble %.2f (arithmetic) / %.2f (geometric)", n,
             min(mem), max(mem), sum(mem) / n, acc["ensemble_arithmetic"], acc["ensemble_geometric"])
    return 0
