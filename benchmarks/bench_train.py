"""Training throughput of the acoustic-model trainer, as model FLOP utilisation against a same-run matmul.

Cases (all through the real code paths: ``Trainer._batch`` + ``Trainer.train_step`` -- the device-resident
float16 split, windows gathered on the device, the stacked model, bf16 autocast on a GPU, the SGD update --
``DistillObjective`` + ``TeacherEnsemble`` for distillation):
  (a) baseline      one model, hard labels
  (b) ensemble      ``--teachers`` members stacked, one batch per member
  (c) sweep         one student per ``--temperatures`` stacked, one shared teacher pass per batch
  (d) teachers      the stacked teachers' inference pass alone (what (c) adds per batch)
each at every ``--batch-sizes`` (frames per member per step). Per case: frames/s (for (b) member-frames/s),
model TFLOP/s (training = 3 x forward: forward, input-grad, weight-grad products; teacher passes forward
only) and the ratio to the same-run rate of bare (batched) matmuls of exactly the case's shapes, in bf16 on
a GPU (float32 on a CPU). Softmax, loss and the SGD update are not counted as FLOPs: they are what the
ratio loses besides launch overhead.

Reference size: ``--paper-size`` (8 x 2560 ReLU, 14,000 outputs, 26 x 40 input, 10 teachers). On a CPU use a
reduced size (the default). ``--loss-steps N`` instead trains the model for N steps on synthetic frames whose
label is a fixed function of the input and prints the loss (the paper-size net trains from its init).

Usage: OMP_NUM_THREADS=2 python benchmarks/bench_train.py [--paper-size] [--batch-sizes 256 1024]
       [--device cuda] [--compile] [--json out.json] | --paper-size --loss-steps 30
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from asr_kd.nn.model import ModelConfig, StackedDNN
from asr_kd.nn.soft_targets import TeacherEnsemble
from asr_kd.training.distill import DistillObjective
from asr_kd.training.distributed import resolve_device
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective

PAPER = dict(hidden_layers=8, hidden_dim=2560, num_pdfs=14000, teachers=10)


def synthetic_split(frames: int, cfg: ModelConfig, device: torch.device, learnable: bool = False) -> FrameSplit:
    """Random float16 frames in 500-frame utterances; labels random or (``learnable``) a fixed random linear
    function of the frame (argmax of a projection), so a training run can show its loss falling."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.full((max(frames // 500, 1),), 500, dtype=torch.int64)
    feats = torch.randn(int(lengths.sum()), cfg.feat_dim, generator=g)
    if learnable:
        labels = (feats @ torch.randn(cfg.feat_dim, cfg.num_pdfs, generator=g)).argmax(dim=1)
    else:
        labels = torch.randint(cfg.num_pdfs, (feats.shape[0],), generator=g)
    return FrameSplit("bench", feats.half().to(device), (torch.cumsum(lengths, 0) - lengths).to(device),
                      lengths.to(device), labels.to(device), torch.arange(feats.shape[0]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, steps: int, device: torch.device, warmup: int = 3) -> float:
    """Seconds per call; one device sync at the end (the calls themselves never sync)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / steps


def layer_dims(cfg: ModelConfig) -> list[tuple[int, int]]:
    dims = [cfg.input_dim] + [cfg.hidden_dim] * cfg.hidden_layers + [cfg.num_pdfs]
    return list(zip(dims[:-1], dims[1:]))


def matmul_rate(cfg: ModelConfig, parts: list[tuple[int, bool]], batch: int, steps: int, device: torch.device,
                dtype: torch.dtype) -> tuple[float, float]:
    """(FLOPs, FLOP/s) of bare batched matmuls with the shapes of ``parts``: ``(members, train)`` stacks,
    forward only or forward + input-grad + weight-grad products."""
    mats = []
    for members, train in parts:
        for a, b in layer_dims(cfg):
            t = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
            mats.append((t(members, batch, a), t(members, a, b), t(members, batch, b) if train else None))

    def step():
        for x, w, gy in mats:
            torch.bmm(x, w)
            if gy is not None:
                torch.bmm(gy, w.transpose(1, 2))
                torch.bmm(x.transpose(1, 2), gy)

    flops = sum((3 if train else 1) * members for members, train in parts) * model_flops(cfg) * batch
    return flops, flops / timed(step, steps, device)


def model_flops(cfg: ModelConfig) -> int:
    """Forward FLOPs of one member for one frame (2 x multiply-adds)."""
    return 2 * sum(a * b for a, b in layer_dims(cfg))


def make_trainer(cfg, model, objective, split, batch, pools, device, args) -> Trainer:
    tcfg = TrainConfig(batch_size=batch, checkpoint_every=0, log_every=10**9, amp=not args.no_amp,
                       compile=args.compile, device=str(device))
    sampler = FrameSampler([split.usable] * pools, list(range(pools)), batch)
    return Trainer(model.to(device), objective, split, split, sampler, tcfg, "/tmp/bench_train_unused")


def step_fn(tr: Trainer):
    state = {"step": 0}

    def fn():
        s = state["step"] % tr.sampler.steps_per_epoch
        tr.train_step(*tr._batch(0, s))
        state["step"] += 1
    return fn


def run_case(name: str, cfg: ModelConfig, batch: int, split: FrameSplit, device: torch.device, args) -> dict:
    amp = device.type == "cuda" and not args.no_amp
    nt, temps = args.teachers, args.temperatures
    teachers = None
    if name in ("sweep", "teachers"):
        teachers = TeacherEnsemble(StackedDNN.init_from_seeds(cfg, list(range(nt))).to(device), amp=amp,
                                   compile=args.compile)
    if name == "baseline":
        tr = make_trainer(cfg, StackedDNN.init_from_seeds(cfg, [0]), hard_objective, split, batch, 1, device, args)
        fn, parts, frames = step_fn(tr), [(1, True)], batch
    elif name == "ensemble":
        tr = make_trainer(cfg, StackedDNN.init_from_seeds(cfg, list(range(nt))), hard_objective, split, batch, nt,
                          device, args)
        fn, parts, frames = step_fn(tr), [(nt, True)], nt * batch
    elif name == "sweep":
        obj = DistillObjective(teachers, list(temps), 0.5)
        tr = make_trainer(cfg, StackedDNN.init_from_seeds(cfg, [0] * len(temps)), obj, split, batch, 1, device, args)
        fn, parts, frames = step_fn(tr), [(nt, False), (len(temps), True)], batch
    else:  # teachers: the shared pass of (c) alone, on windows gathered on the device
        x = split.windows(split.usable[:batch], cfg.left_context, cfg.right_context)
        fn, parts, frames = (lambda: teachers.probs(x, list(temps))), [(nt, False)], batch
    t_step = timed(fn, args.steps, device)
    dtype = torch.bfloat16 if amp else torch.float32
    flops, ref = matmul_rate(cfg, parts, batch, args.steps, device, dtype)
    achieved = flops / t_step
    return {"case": name, "batch": batch, "frames_per_s": frames / t_step, "step_ms": 1e3 * t_step,
            "model_tflops": achieved / 1e12, "matmul_tflops": ref / 1e12, "ratio": achieved / ref}


def loss_run(cfg: ModelConfig, device: torch.device, args) -> None:
    """Train one model from its init on learnable synthetic frames; print the loss every ``--log-every``."""
    split = synthetic_split(args.frames, cfg, device, learnable=True)
    batch = args.batch_sizes[0]
    tcfg = TrainConfig(batch_size=batch, lr=args.lr, checkpoint_every=0, log_every=10**9, amp=not args.no_amp,
                       compile=args.compile, device=str(device))
    sampler = FrameSampler([split.usable], [1], batch)
    tr = Trainer(StackedDNN.init_from_seeds(cfg, [1]).to(device), hard_objective, split, split, sampler, tcfg,
                 "/tmp/bench_train_unused")
    print(f"loss run: {args.loss_steps} steps of {batch} frames, lr {args.lr}, chance level log(P) = "
          f"{math.log(cfg.num_pdfs):.3f}")
    t0, fn = time.perf_counter(), step_fn(tr)
    for step in range(1, args.loss_steps + 1):
        fn()
        if step % args.log_every == 0 or step == 1:
            loss, correct, total, steps = tr.acc_sums.tolist()[0][0], *(v[0] for v in tr.acc_sums.tolist()[1:])
            tr.acc_sums.zero_()
            print(f"step {step:5d}  loss {loss / steps:7.3f}  frame acc {100 * correct / total:5.1f}%  "
                  f"{time.perf_counter() - t0:7.1f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper-size", action="store_true", help="8 x 2560, 14,000 pdfs, 10 teachers")
    p.add_argument("--hidden-layers", type=int, default=4)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--num-pdfs", type=int, default=2000)
    p.add_argument("--teachers", type=int, default=4)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--cases", nargs="+", default=["baseline", "ensemble", "sweep", "teachers"],
                   choices=["baseline", "ensemble", "sweep", "teachers"])
    p.add_argument("--frames", type=int, default=100_000, help="synthetic frames on the device")
    p.add_argument("--steps", type=int, default=10, help="timed steps per case")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="float32 on a GPU (default: bf16 autocast)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trained stack (GPU)")
    p.add_argument("--loss-steps", type=int, default=0, help="instead: train N steps and print the loss")
    p.add_argument("--lr", type=float, default=0.02, help="learning rate of the loss run")
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.paper_size:
        for k, v in PAPER.items():
            setattr(args, k, v)
    device = resolve_device(args.device)
    cfg = ModelConfig(num_pdfs=args.num_pdfs, hidden_layers=args.hidden_layers, hidden_dim=args.hidden_dim)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device {device} ({name}), torch {torch.__version__}, model {cfg.hidden_layers}x{cfg.hidden_dim} -> "
          f"{cfg.num_pdfs} pdfs, window {cfg.window}x{cfg.feat_dim}, "
          f"{StackedDNN(cfg, 1, init=False).flops_per_frame() / 1e6:.0f} MFLOP/frame forward, "
          f"{'bf16 autocast' if device.type == 'cuda' and not args.no_amp else 'float32'}"
          f"{', compiled' if args.compile and device.type == 'cuda' else ''}")
    if args.loss_steps:
        loss_run(cfg, device, args)
        return
    split = synthetic_split(args.frames, cfg, device)
    print(f"{'case':<9} {'batch':>6} {'frames/s':>11} {'step ms':>9} {'model TFLOP/s':>14} {'matmul TFLOP/s':>15} "
          f"{'ratio':>6}")
    rows = []
    for batch in args.batch_sizes:
        for case in args.cases:
            r = run_case(case, cfg, batch, split, device, args)
            rows.append(r)
            print(f"{r['case']:<9} {batch:>6} {r['frames_per_s']:>11.0f} {r['step_ms']:>9.1f} "
                  f"{r['model_tflops']:>14.3f} {r['matmul_tflops']:>15.3f} {r['ratio']:>6.2f}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print("frames/s: (b) member-frames; (c) frames through the sweep (each trains every student); "
          "ratio: model FLOP/s / same-run matmul FLOP/s of the same shapes")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": name, "model": f"{cfg.hidden_layers}x{cfg.hidden_dim}/{cfg.num_pdfs}",
                       "teachers": args.teachers, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
