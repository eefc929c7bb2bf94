"""The frame-level training loop, shared by the baseline, the teacher ensemble and the students.

What is trained is always a :class:`~asr_kd.nn.model.StackedDNN` of ``M`` independent members (the baseline
is ``M = 1``; an ensemble trains its members side by side; the distillation sweep trains one student per
temperature). An *objective* maps the stack's logits ``(M, B, P)``, the inputs and the hard labels to one
loss per member; the sum is minimised, which updates each member by its own loss only.

Per step:   indices (sampler) -> windows (splice on the device) -> logits -> per-member losses -> backward
            -> SGD with momentum, one learning rate per member.
Per epoch:  held-out frame accuracy per member -> newbob: keep the epoch if dev accuracy improved (else
            restore the member's best weights), start halving the member's learning rate once the gain
            drops below ``halving_start`` (absolute %), then halve every epoch and stop the member once
            the gain drops below ``halving_stop``; a stopped member gets learning rate 0 and keeps its best
            weights. Training ends when every member has stopped or after ``epochs``.

Optimiser: plain minibatch SGD with momentum (as Kaldi's nnet1 and the paper's era of DNN-HMM training);
the newbob schedule is designed around SGD's learning rate, and per-member learning rates for a stack
are a one-line change of the update (``p -= lr[m] * buf``), which torch.optim cannot express for stacked
parameters. Adam would need per-member state resets on rejected epochs and buys little for ReLU DNNs on
normalised fbanks.

Checkpoints (``checkpoint.pt``, atomic) every ``checkpoint_every`` steps and at each epoch end hold the
model, momentum, best weights, schedule, sampler position and RNG state: ``--resume`` continues
bit-identically (the sampler is a pure function of seed, epoch and step). Data parallel through
``torchrun`` (DistributedDataParallel; NCCL on GPUs, gloo on CPUs): every global batch is split evenly
across ranks, so gradients equal the single-process ones. On a GPU: bf16 autocast, optional
``torch.compile``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_base.io import atomic_path, write_text
from asr_kd.nn.losses import frame_correct
from asr_kd.nn.model import StackedDNN

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``objective(logits (M, B, P), x, labels, frame_idx) -> (M,)`` per-member losses."""


@dataclass
class TrainConfig:
    epochs: int = 12  # maximum number of epochs
    min_epochs: int = 2  # no early stop before this many
    batch_size: int = 256  # global minibatch (frames per member per step)
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 0.0
    halving_start: float = 0.5  # start halving once the dev frame-accuracy gain (absolute %) is below this
    halving_stop: float = 0.1  # while halving, stop once the gain is below this
    epoch_frames: int | None = None  # frames per epoch (default: all usable frames)
    checkpoint_every: int = 500  # steps
    log_every: int = 50  # steps
    eval_batch_size: int = 4096
    eval_max_frames: int | None = None  # evenly spaced dev subset for the per-epoch check
    seed: int = 1
    device: str = "auto"  # auto|cpu|cuda
    amp: bool = True  # bf16 autocast (GPU only)
    compile: bool = False  # torch.compile the model (GPU only)
    max_steps: int | None = None  # stop (resumably) after this many global steps


# ----------------------------------------------------------------------------------------------- setup

def init_distributed() -> tuple[int, int, int]:
    """``(rank, world, local_rank)``; joins the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        log.info("data parallel: rank %d of %d (%s)", rank, world, backend)
    return rank, world, local_rank


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but no CUDA device is available")
        device = torch.device("cuda", local_rank) if spec == "cuda" else torch.device(spec)
        torch.cuda.set_device(device)  # NCCL and the default CUDA stream follow the rank's device
        return device
    return torch.device(spec)


# ------------------------------------------------------------------------------------------ evaluation

@torch.no_grad()
def count_correct(predict: Callable[[torch.Tensor], torch.Tensor], split: FrameSplit, left: int, right: int,
                  batch_size: int = 4096, max_frames: int | None = None, rank: int = 0, world: int = 1,
                  progress: str | None = None) -> tuple[torch.Tensor, int]:
    """Frames whose argmax is the label, per predicted row of ``predict(x) -> (R, B, P)``; and frames scored.

    Batches are dealt round-robin over data-parallel ranks and the counts all-reduced.
    """
    correct, total = None, 0
    batches = list(split.eval_batches(batch_size, max_frames))
    for i, idx in enumerate(tqdm(batches, desc=progress or f"eval {split.name}", unit="batch", leave=False,
                                 disable=rank != 0)):
        if i % world != rank:
            continue
        x = split.windows(idx, left, right)
        c = frame_correct(predict(x), split.targets(idx)).to(torch.float64)
        correct = c if correct is None else correct + c
        total += idx.numel()
    if world > 1:
        if correct is None:
            correct = torch.zeros(len(predict(split.windows(batches[0][:1], left, right))), dtype=torch.float64,
                                  device=split.device)
        t = torch.tensor([float(total)], dtype=torch.float64, device=split.device)
        dist.all_reduce(correct)
        dist.all_reduce(t)
        total = int(t.item())
    return correct.cpu(), total


def hard_objective(logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, frame_idx: torch.Tensor) -> torch.Tensor:
    from asr_kd.nn.losses import hard_ce

    return hard_ce(logits, labels)


# --------------------------------------------------------------------------------------------- trainer

class Trainer:
    """Trains a stack; ``run()`` returns when every member has stopped, after ``epochs``, or ``max_steps``.

    ``sampler`` has either one pool per member (``x`` is ``(M, B, D)``) or a single shared pool (``x`` is
    ``(B, D)``, the same frames for every member -- required when a teacher pass is shared).
    """

    def __init__(self, model: StackedDNN, objective: Objective, train: FrameSplit, dev: FrameSplit,
                 sampler: FrameSampler, config: TrainConfig, out_dir: str | os.PathLike,
                 names: list[str] | None = None, rank: int = 0, world: int = 1):
        self.model = model
        self.objective = objective
        self.train, self.dev, self.sampler, self.cfg = train, dev, sampler, config
        self.out_dir = Path(out_dir)
        self.names = names or [f"member_{i:02d}" for i in range(model.num_members)]
        self.rank, self.world = rank, world
        self.device = train.device
        m = model.num_members
        if len(sampler.pools) not in (1, m):
            raise ValueError(f"sampler has {len(sampler.pools)} pools for {m} members")
        self.shared_input = len(sampler.pools) == 1
        self.params = list(model.parameters())
        self.momentum = [torch.zeros_like(p) for p in self.params]
        self.best = [p.detach().clone() for p in self.params]
        self.lr = torch.full((m,), config.lr, dtype=torch.float64, device=self.device)
        self.best_acc = [-math.inf] * m
        self.halving = [False] * m
        self.done = [False] * m
        self.epoch = 0
        self.step = 0  # next step within self.epoch
        self.global_step = 0
        self.acc_sums = torch.zeros(4, m, dtype=torch.float64, device=self.device)  # loss, correct, frames, steps
        self.epoch_sums = torch.zeros(2, m, dtype=torch.float64, device=self.device)  # loss, steps (epoch)
        self.amp = config.amp and self.device.type == "cuda"
        self.forward = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            if self.device.type == "cuda":
                self.forward = torch.compile(self.forward)
            else:
                log.warning("--compile is only used on a GPU; running eagerly on %s", self.device)

    # ---- paths
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "train_log.jsonl"

    @property
    def finished(self) -> bool:
        return all(self.done)

    # ---- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "momentum": [b.cpu() for b in self.momentum],
            "best": [b.cpu() for b in self.best],
            "lr": self.lr.cpu(),
            "best_acc": list(self.best_acc),
            "halving": list(self.halving),
            "done": list(self.done),
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "acc_sums": self.acc_sums.cpu(),
            "epoch_sums": self.epoch_sums.cpu(),
            "rng_cpu": torch.get_rng_state(),
            "config": dataclasses.asdict(self.cfg),
            "names": list(self.names),
            "sampler": self._sampler_identity(),
        }

    def _sampler_identity(self) -> dict:
        return {"seeds": list(self.sampler.seeds), "batch_size": self.sampler.batch_size,
                "steps_per_epoch": self.sampler.steps_per_epoch, "pool_sizes": [int(p.numel()) for p in self.sampler.pools]}

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        path = Path(path or self.checkpoint_path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["names"] != self.names:
            raise ValueError(f"{path}: checkpoint is for members {state['names']}, not {self.names}")
        if state["sampler"] != self._sampler_identity():
            raise ValueError(f"{path}: checkpoint was written with sampler {state['sampler']}, this run has "
                             f"{self._sampler_identity()} (same --seed, --batch-size, data needed to resume)")
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for dst, src in zip(self.momentum, state["momentum"]):
                dst.copy_(src)
            for dst, src in zip(self.best, state["best"]):
                dst.copy_(src)
        self.lr = state["lr"].to(self.device)
        self.best_acc = list(state["best_acc"])
        self.halving, self.done = list(state["halving"]), list(state["done"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.acc_sums = state["acc_sums"].to(self.device)
        self.epoch_sums = state["epoch_sums"].to(self.device)
        torch.set_rng_state(state["rng_cpu"])
        if self.rank == 0 and self.log_path.is_file():  # drop log lines written after the checkpoint
            lines = [ln for ln in self.log_path.read_text().splitlines()
                     if ln.strip() and json.loads(ln)["global_step"] <= self.global_step]
            write_text(self.log_path, "".join(ln + "\n" for ln in lines))
        log.info("resumed from %s at epoch %d step %d (global step %d)", path, self.epoch, self.step, self.global_step)

    # ---- logging
    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def history(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        return [json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.strip()]

    # ---- one step
    def _batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.sampler.batch(epoch, step)
        cfg = self.model.config
        x = self.train.windows(idx[0] if self.shared_input else idx, cfg.left_context, cfg.right_context)
        return x, self.train.targets(idx), idx

    def train_step(self, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            logits = self.forward(x)
        logits = logits.float()
        losses = self.objective(logits, x, labels, idx)
        for p in self.params:
            p.grad = None
        losses.sum().backward()
        with torch.no_grad():
            for p, buf in zip(self.params, self.momentum):
                g = p.grad if not self.cfg.weight_decay else p.grad.add(p, alpha=self.cfg.weight_decay)
                buf.mul_(self.cfg.momentum).add_(g)
                p.sub_(self.lr.to(p.dtype).view((-1,) + (1,) * (p.dim() - 1)) * buf)
            d = losses.detach().to(torch.float64)
            self.acc_sums[0] += d
            self.acc_sums[1] += frame_correct(logits.detach(), labels).to(torch.float64)
            self.acc_sums[2] += labels.shape[-1]
            self.acc_sums[3] += 1
            self.epoch_sums[0] += d
            self.epoch_sums[1] += 1

    # ---- epoch end
    def dev_accuracy(self) -> list[float]:
        cfg = self.model.config
        self.model.eval()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            correct, total = count_correct(self.model, self.dev, cfg.left_context, cfg.right_context,
                                           self.cfg.eval_batch_size, self.cfg.eval_max_frames, self.rank, self.world)
        self.model.train()
        return (100.0 * correct / max(total, 1)).tolist()

    def _member_params(self, tensors: list[torch.Tensor], m: int) -> list[torch.Tensor]:
        return [t[m] for t in tensors]

    @torch.no_grad()
    def end_of_epoch(self, elapsed: float) -> dict:
        acc = self.dev_accuracy()
        accepted = [False] * len(acc)
        for m, a in enumerate(acc):
            if self.done[m]:
                continue
            gain = a - self.best_acc[m]
            if a > self.best_acc[m]:
                accepted[m] = True
                self.best_acc[m] = a
                for b, p in zip(self._member_params(self.best, m), self._member_params(self.params, m)):
                    b.copy_(p)
            else:  # reject the epoch: back to the best weights, momentum cleared
                for p, b in zip(self._member_params(self.params, m), self._member_params(self.best, m)):
                    p.copy_(b)
                for buf in self._member_params(self.momentum, m):
                    buf.zero_()
            if self.halving[m]:
                if gain < self.cfg.halving_stop and self.epoch + 1 >= self.cfg.min_epochs:
                    self.done[m] = True
                else:
                    self.lr[m] *= 0.5
            elif gain < self.cfg.halving_start:
                self.halving[m] = True
                self.lr[m] *= 0.5
            if self.epoch + 1 >= self.cfg.epochs:
                self.done[m] = True
            if self.done[m]:
                self.lr[m] = 0.0
                for p, b in zip(self._member_params(self.params, m), self._member_params(self.best, m)):
                    p.copy_(b)
        sums = self.epoch_sums.clone()
        if self.world > 1:
            dist.all_reduce(sums)
        record = {"type": "epoch", "epoch": self.epoch, "global_step": self.global_step,
                  "train_loss": (sums[0] / sums[1].clamp_min(1)).tolist(), "dev_acc": acc, "accepted": accepted,
                  "best_dev_acc": list(self.best_acc), "lr": self.lr.tolist(), "halving": list(self.halving),
                  "done": list(self.done), "epoch_time_s": elapsed}
        self.epoch_sums.zero_()
        return record

    # ---- the loop
    def run(self) -> dict:
        cfg = self.cfg
        self.model.train()
        steps = self.sampler.steps_per_epoch
        frames_per_step = self.sampler.batch_size  # global, per member
        steps_this_call = 0
        while not self.finished and self.epoch < cfg.epochs:
            t_epoch = time.perf_counter()
            bar = tqdm(total=steps, initial=self.step, desc=f"epoch {self.epoch}", unit="step", disable=self.rank != 0,
                       leave=False)
            t_int, s_int = time.perf_counter(), 0
            while self.step < steps:
                x, labels, idx = self._batch(self.epoch, self.step)
                self.train_step(x, labels, idx)
                self.step += 1
                self.global_step += 1
                steps_this_call += 1
                s_int += 1
                bar.update(1)
                if self.global_step % cfg.log_every == 0:
                    sums = self.acc_sums.clone()
                    if self.world > 1:
                        dist.all_reduce(sums)
                    dt = time.perf_counter() - t_int
                    record = {"type": "train", "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                              "loss": (sums[0] / sums[3].clamp_min(1)).tolist(),
                              "frame_acc": (100.0 * sums[1] / sums[2].clamp_min(1)).tolist(), "lr": self.lr.tolist(),
                              "frames_per_s": s_int * frames_per_step * self.model.num_members / max(dt, 1e-9)}
                    self._log(record)
                    bar.set_postfix(loss=f"{sum(record['loss']) / len(record['loss']):.3f}",
                                    acc=f"{sum(record['frame_acc']) / len(record['frame_acc']):.1f}")
                    self.acc_sums.zero_()
                    t_int, s_int = time.perf_counter(), 0
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 and self.step < steps:
                    self.save_checkpoint()
                if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                    break
            bar.close()
            if self.step < steps:  # stopped by max_steps mid-epoch
                self.save_checkpoint()
                return self.summary(stopped=True)
            record = self.end_of_epoch(time.perf_counter() - t_epoch)
            self._log(record)
            log.info("epoch %d: dev frame acc %s lr %s%s", self.epoch,
                     " ".join(f"{a:.2f}" for a in record["dev_acc"]), " ".join(f"{v:.3g}" for v in record["lr"]),
                     " (all done)" if self.finished else "")
            self.epoch += 1
            self.step = 0
            self.acc_sums.zero_()
            self.save_checkpoint()
            self.plot()
            if cfg.max_steps is not None and self.global_step >= cfg.max_steps:
                return self.summary(stopped=not self.finished)
        if not self.finished:  # ran out of epochs without a final epoch-end (e.g. epochs lowered on resume)
            with torch.no_grad():
                for m in range(self.model.num_members):
                    self.done[m] = True
                    for p, b in zip(self._member_params(self.params, m), self._member_params(self.best, m)):
                        p.copy_(b)
        return self.summary(stopped=False)

    def summary(self, stopped: bool) -> dict:
        return {"stopped": stopped, "finished": self.finished, "epochs": self.epoch, "global_step": self.global_step,
                "best_dev_acc": dict(zip(self.names, self.best_acc))}

    def plot(self) -> None:
        if self.rank == 0:
            plot_curves(self.history(), self.out_dir / "curves.png", self.names)


def member_history(history: list[dict], m: int) -> list[dict]:
    """The log of member ``m`` of a stack: every per-member list replaced by its ``m``-th value."""
    out = []
    for rec in history:
        out.append({k: (v[m] if isinstance(v, list) else v) for k, v in rec.items()})
    return out


def plot_curves(history: list[dict], path: str | os.PathLike, names: list[str]) -> None:
    """Training loss and frame accuracy per step, dev frame accuracy per epoch, one line per member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if r["type"] == "train"]
    epochs = [r for r in history if r["type"] == "epoch"]
    if not train and not epochs:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))

    def series(recs, key, m):
        return [r[key][m] if isinstance(r[key], list) else r[key] for r in recs]

    for m, name in enumerate(names):
        if train:
            axes[0].plot([r["global_step"] for r in train], series(train, "loss", m), label=name)
            axes[1].plot([r["global_step"] for r in train], series(train, "frame_acc", m), label=name)
        if epochs:
            axes[2].plot([r["epoch"] + 1 for r in epochs], series(epochs, "dev_acc", m), marker="o", label=name)
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    axes[1].set(xlabel="step", ylabel="frame accuracy (%)", title="training frame accuracy")
    axes[2].set(xlabel="epoch", ylabel="frame accuracy (%)", title="held-out frame accuracy")
    if len(names) <= 12:
        axes[2].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
