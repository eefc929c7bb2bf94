"""Training throughput of the acoustic-model trainer next to same-run references.

Prints, for one model size on the current device:
  * peak: FLOP/s of bare matmuls with the layer shapes of one training step (forward, input-grad and
    weight-grad products) -- the same-run reference
  * train: frames/s of full baseline training steps (sampling, windows gathered from the float16 split,
    forward, backward, SGD update) and the achieved FLOP/s as a fraction of that peak
  * teachers: frames/s of the stacked ensemble's inference pass, and its cost relative to a student step
  * sweep: one step training S students (one per temperature) with one shared teacher pass, against one
    single-student distillation step (cost ratio; S separate runs would cost S x)

Usage: OMP_NUM_THREADS=2 python benchmarks/bench_train.py [--hidden-layers 4 --hidden-dim 512 --num-pdfs 2000]
"""

from __future__ import annotations

import argparse
import time

import torch

from asr_kd.training.distill import DistillObjective
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.nn.model import ModelConfig, StackedDNN
from asr_kd.nn.soft_targets import TeacherEnsemble
from asr_kd.training.distributed import resolve_device
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective


def synthetic_split(frames: int, dim: int, num_pdfs: int, device: torch.device) -> FrameSplit:
    g = torch.Generator().manual_seed(0)
    lengths = torch.full((frames // 500,), 500, dtype=torch.int64)
    starts = torch.cumsum(lengths, 0) - lengths
    feats = torch.randn(int(lengths.sum()), dim, generator=g).half()
    labels = torch.randint(num_pdfs, (feats.shape[0],), generator=g)
    return FrameSplit("bench", feats.to(device), starts.to(device), lengths.to(device), labels.to(device),
                      torch.arange(feats.shape[0]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, steps: int, device: torch.device, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / steps


def matmul_peak(cfg: ModelConfig, batch: int, steps: int, device: torch.device, dtype: torch.dtype) -> float:
    dims = [cfg.input_dim] + [cfg.hidden_dim] * cfg.hidden_layers + [cfg.num_pdfs]
    mats = [(torch.randn(batch, a, device=device, dtype=dtype), torch.randn(a, b, device=device, dtype=dtype),
             torch.randn(batch, b, device=device, dtype=dtype)) for a, b in zip(dims[:-1], dims[1:])]

    def step():
        for x, w, gy in mats:
            x @ w  # forward
            gy @ w.t()  # input gradient
            x.t() @ gy  # weight gradient

    flops = 3 * 2 * batch * sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    return flops / timed(step, steps, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden-layers", type=int, default=4)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--num-pdfs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--teachers", type=int, default=4)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    cfg = ModelConfig(num_pdfs=args.num_pdfs, hidden_layers=args.hidden_layers, hidden_dim=args.hidden_dim)
    split = synthetic_split(args.frames, cfg.feat_dim, cfg.num_pdfs, device)
    amp = device.type == "cuda"
    B = args.batch_size
    print(f"device {device}, threads {torch.get_num_threads()}, model {cfg.hidden_layers}x{cfg.hidden_dim} "
          f"-> {cfg.num_pdfs} pdfs, window {cfg.window}x{cfg.feat_dim}, batch {B}")

    peak = matmul_peak(cfg, B, args.steps, device, torch.bfloat16 if amp else torch.float32)
    print(f"peak   bare matmuls of the layer shapes: {peak / 1e9:8.1f} GFLOP/s (same-run reference)")

    def trainer(model, objective, pools=1, out="/tmp/bench_train_unused"):
        tcfg = TrainConfig(batch_size=B, checkpoint_every=0, log_every=10**9, amp=amp)
        sampler = FrameSampler([split.usable] * pools, list(range(pools)), B)
        return Trainer(model.to(device), objective, split, split, sampler, tcfg, out, rank=0, world=1)

    flops_frame = StackedDNN(cfg, 1).flops_per_frame()
    base = trainer(StackedDNN.init_from_seeds(cfg, [0]), hard_objective)
    it = iter(range(10**9))
    t_base = timed(lambda: base.train_step(*base._batch(0, next(it) % base.sampler.steps_per_epoch)), args.steps, device)
    fps = B / t_base
    achieved = 3 * flops_frame * fps
    print(f"train  baseline step: {fps:10.0f} frames/s, {achieved / 1e9:8.1f} GFLOP/s = {achieved / peak:.2f} of peak")

    teachers = TeacherEnsemble(StackedDNN.init_from_seeds(cfg, list(range(args.teachers))).to(device), amp=amp)
    x = split.windows(split.usable[:B], cfg.left_context, cfg.right_context)
    t_teach = timed(lambda: teachers.probs(x, args.temperatures), args.steps, device)
    print(f"teach  {args.teachers} stacked teachers + {len(args.temperatures)} targets: {B / t_teach:10.0f} frames/s, "
          f"{t_teach / t_base:.2f} x a baseline training step")

    def distill_step_time(n_students):
        temps = args.temperatures[:n_students]
        obj = DistillObjective(teachers, temps, 0.5)
        tr = trainer(StackedDNN.init_from_seeds(cfg, [0] * n_students), obj)
        k = iter(range(10**9))
        return timed(lambda: tr.train_step(*tr._batch(0, next(k) % tr.sampler.steps_per_epoch)), args.steps, device)

    t1 = distill_step_time(1)
    ts = distill_step_time(len(args.temperatures))
    s = len(args.temperatures)
    print(f"distil 1 student: {B / t1:10.0f} frames/s; {s}-temperature sweep: {B / ts:10.0f} frames/s per student")
    print(f"sweep  cost of the {s}-student sweep = {ts / t1:.2f} x one distillation run (separate runs: {s}.00 x)")
    ens = trainer(StackedDNN.init_from_seeds(cfg, list(range(args.teachers))), hard_objective, pools=args.teachers)
    k2 = iter(range(10**9))
    te = timed(lambda: ens.train_step(*ens._batch(0, next(k2) % ens.sampler.steps_per_epoch)), args.steps, device)
    print(f"ensem  {args.teachers} members stacked: {args.teachers * B / te:10.0f} member-frames/s "
          f"= {args.teachers * t_base / te:.2f} x sequential training")


if __name__ == "__main__":
    main()
