"""The frame-level training loop, shared by the baseline, the teacher ensemble and the students.

What is trained is always a :class:`~asr_kd.nn.model.StackedDNN` of ``M`` independent members (the baseline
is ``M = 1``; an ensemble trains its members side by side; the distillation sweep trains one student per
temperature). An *objective* maps the stack's logits ``(M, B, P)``, the inputs and the hard labels to one
loss per member; the sum is minimised, which updates each member by its own loss only.

Per step:   indices (sampler) -> windows (splice on the device; --input-noise / --freq-mask perturb them,
            the objective sees the same windows) -> logits (--dropout on the hidden layers) -> per-member
            losses -> backward
            -> SGD with momentum, one learning rate per member.
Per epoch:  held-out frame accuracy per member -> the newbob schedule (:mod:`asr_kd.training.newbob`)
            keeps or rejects the epoch and sets each member's learning rate; a rejected epoch restores
            the member's best weights. Training ends when every member has stopped or after ``epochs``.

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
``torch.compile`` of the model and of the multi-tensor SGD update.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from asr_base.config import option
from asr_base.io import save_torch, write_text
from asr_kd.nn.losses import frame_correct, hard_ce
from asr_kd.nn.model import StackedDNN
from asr_kd.training.augment import perturb, step_generator
from asr_kd.training.curves import plot_curves
from asr_kd.training.frame_accuracy import count_correct
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.newbob import LrScaling, Newbob, scaled_lr, warmup_factor

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``objective(logits (M, B, P), x, labels, frame_idx) -> (M,)`` per-member losses."""


@dataclass
class TrainConfig:
    """The trainer's options (``--epochs`` ... ``--max-steps``), the same for every training stage."""

    epochs: int = option(12, help="maximum epochs")
    min_epochs: int = option(2, help="no early stop before this many epochs")
    batch_size: int = option(256, help="global minibatch (frames per member per step)")
    lr: float = option(0.02, help="initial SGD learning rate (at --lr-base-batch frames with --lr-scaling)")
    lr_scaling: LrScaling = option("none", help="scale --lr with --batch-size / --lr-base-batch: none, linear "
                                                "or sqrt (large minibatches; asr_kd.training.newbob)")
    lr_base_batch: int = option(256, help="the batch size --lr is given for (with --lr-scaling)")
    warmup_steps: int = option(0, help="linear learning-rate warm-up over the first steps (0: none)")
    momentum: float = option(0.9, help="SGD momentum")
    weight_decay: float = option(0.0, help="L2 weight decay")
    halving_start: float = option(0.5, help="newbob: start halving the lr once the dev frame-accuracy gain "
                                            "(abs %%) is below this")
    halving_stop: float = option(0.1, help="newbob: while halving, stop once the gain is below this")
    keep_lr_epochs: int = option(0, help="newbob: no halving within the first N epochs (Kaldi nnet1's "
                                         "keep_lr_iters), so one noisy early epoch cannot halve the rate (one that "
                                         "collapses below half the best accuracy still does)")
    epoch_frames: int | None = option(None, help="frames per epoch (none: all usable frames)")
    checkpoint_every: int = option(500, help="steps between checkpoints")
    log_every: int = option(50, help="steps between log lines")
    eval_batch_size: int = option(4096, help="frames per batch of the per-epoch dev check")
    eval_max_frames: int | None = option(None, help="dev frames used for the per-epoch check (none: all)")
    seed: int = option(1, help="random seed (initialisation and frame order)")
    device: str = option("auto", help="auto|cpu|cuda (auto: cuda when available)")
    amp: bool = option(True, help="bf16 autocast on a GPU (--no-amp: float32)")
    compile: bool = option(False, help="torch.compile the model, its SGD update and the teachers' targets (GPU only)")
    max_steps: int | None = option(None, help="stop (resumably) after this many global steps")
    input_noise: float = option(0.0, help="std of Gaussian noise added to the training windows; the objective "
                                          "(e.g. the teachers) sees the same input (asr_kd.training.augment)")
    freq_mask: int = option(0, help="SpecAugment frequency mask of up to this many channels per training "
                                    "window (0: none)")
    dropout: float = option(0.0, help="dropout probability on every hidden layer's output while training "
                                      "(0: none; the masks are a function of --seed and the step)")


def hard_objective(logits: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, frame_idx: torch.Tensor) -> torch.Tensor:
    """Frame-level cross-entropy with the hard labels (baseline and teachers)."""
    return hard_ce(logits, labels)


def sgd_momentum_(grads: list[torch.Tensor], params: list[torch.Tensor], bufs: list[torch.Tensor],
                  lrs: list[torch.Tensor], momentum: float, weight_decay: float) -> None:
    """In place: ``buf = momentum * buf + (grad + weight_decay * p)``, ``p -= lr * buf`` (``lrs``: one rate
    per member, shaped to broadcast over the member's rows).

    One multi-tensor (``_foreach``) call per operation instead of a Python loop over the parameters: on a GPU
    each eager op costs ~10-20 us to launch, which dominated a paper-size step at batch 256 (5.6 -> 4.5 ms on
    an H200, ``benchmarks/bench_train.py``). On a CPU the ``_foreach`` ops run the same per-tensor kernels as
    the loop did, so the result is bit-identical to it. With ``--compile`` on a GPU the trainer compiles this
    function too, fusing its passes over the weights (memory-bound for a 10-member paper-size stack)."""
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, grads)
    torch._foreach_sub_(params, torch._foreach_mul(lrs, bufs))


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
        sampler.to(self.device)  # batches as slices of a device tensor: no host round trip per step
        self.params = list(model.parameters())
        self.momentum = [torch.zeros_like(p) for p in self.params]
        self.best = [p.detach().clone() for p in self.params]
        self.schedule = Newbob(m, scaled_lr(config.lr, config.batch_size, config.lr_base_batch, config.lr_scaling),
                               self.device)
        self.epoch = 0
        self.step = 0  # next step within self.epoch
        self.global_step = 0
        self.acc_sums = torch.zeros(4, m, dtype=torch.float64, device=self.device)  # loss, correct, frames, steps
        self.epoch_sums = torch.zeros(2, m, dtype=torch.float64, device=self.device)  # loss, steps (epoch)
        self.amp = config.amp and self.device.type == "cuda"
        self._gen: torch.Generator | None = None  # this step's random draws (set by _batch)
        self.forward = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._sgd = sgd_momentum_
        if config.compile:
            if self.device.type == "cuda":
                self.forward = torch.compile(self.forward)
                self._sgd = torch.compile(sgd_momentum_)
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
        return self.schedule.finished

    @property
    def best_acc(self) -> list[float]:
        """Best dev frame accuracy (%) per member so far."""
        return self.schedule.best_acc

    # ---- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "momentum": [b.cpu() for b in self.momentum],
            "best": [b.cpu() for b in self.best],
            **self.schedule.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "acc_sums": self.acc_sums.cpu(),
            "epoch_sums": self.epoch_sums.cpu(),
            "rng_cpu": torch.get_rng_state(),
            "config": asdict(self.cfg),
            "names": list(self.names),
            "sampler": self._sampler_identity(),
        }

    def _sampler_identity(self) -> dict:
        return {"seeds": list(self.sampler.seeds), "batch_size": self.sampler.batch_size,
                "steps_per_epoch": self.sampler.steps_per_epoch, "pool_sizes": [int(p.numel()) for p in self.sampler.pools]}

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        save_torch(self.checkpoint_path, self.state_dict())

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
        self.schedule.load_state_dict(state)
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
        c = self.cfg
        self._gen = None
        if c.input_noise or c.freq_mask or c.dropout:
            # one generator per step for every random draw of the step (input perturbation, then dropout)
            self._gen = step_generator(c.seed, self.global_step, self.device)
        if c.input_noise or c.freq_mask:
            x = perturb(x, cfg.feat_dim, c.input_noise, c.freq_mask, self._gen)
        return x, self.train.targets(idx), idx

    def train_step(self, x: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            logits = self.forward(x, self.cfg.dropout, self._gen)
        logits = logits.float()
        losses = self.objective(logits, x, labels, idx)
        for p in self.params:
            p.grad = None
        losses.sum().backward()
        with torch.no_grad():
            self._sgd_update()
            d = losses.detach().to(torch.float64)
            self.acc_sums[0] += d
            self.acc_sums[1] += frame_correct(logits.detach(), labels).to(torch.float64)
            self.acc_sums[2] += (labels >= 0).sum(dim=-1).to(torch.float64)  # labelled frames only
            self.acc_sums[3] += 1
            self.epoch_sums[0] += d
            self.epoch_sums[1] += 1

    def _sgd_update(self) -> None:
        """:func:`sgd_momentum_` over every parameter, each member at its own (warmed-up) rate."""
        params = self.params
        lr = self.schedule.lr * warmup_factor(self.global_step, self.cfg.warmup_steps)
        views: dict[tuple, torch.Tensor] = {}  # each member's rate, shaped to broadcast over its rows
        for p in params:
            if (p.dim(), p.dtype) not in views:
                views[p.dim(), p.dtype] = lr.to(p.dtype).view((-1,) + (1,) * (p.dim() - 1))
        self._sgd([p.grad for p in params], params, self.momentum, [views[p.dim(), p.dtype] for p in params],
                  self.cfg.momentum, self.cfg.weight_decay)

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
        """Dev accuracy -> newbob; keep each member's epoch or go back to its best weights."""
        acc = self.dev_accuracy()
        c = self.cfg
        verdicts = self.schedule.end_epoch(acc, self.epoch, c.epochs, c.min_epochs, c.halving_start, c.halving_stop,
                                           c.keep_lr_epochs)
        for m, accepted in enumerate(verdicts):
            if accepted is None:
                continue
            if self.schedule.collapsed[m] and self.rank == 0:
                log.warning("member %d: epoch %d collapsed (dev frame acc %.2f against its best %.2f): back to the "
                            "best weights at half the learning rate (%.4g); if it recurs, lower --lr or lengthen "
                            "--warmup-steps", m, self.epoch, acc[m], self.schedule.best_acc[m],
                            float(self.schedule.lr[m]))
            params, best = self._member_params(self.params, m), self._member_params(self.best, m)
            if accepted:
                for b, p in zip(best, params):
                    b.copy_(p)
            else:  # reject the epoch: back to the best weights, momentum cleared
                for p, b in zip(params, best):
                    p.copy_(b)
                for buf in self._member_params(self.momentum, m):
                    buf.zero_()
            if self.schedule.done[m]:
                for p, b in zip(params, best):
                    p.copy_(b)
        sums = self.epoch_sums.clone()
        if self.world > 1:
            dist.all_reduce(sums)
        sched = self.schedule
        record = {"type": "epoch", "epoch": self.epoch, "global_step": self.global_step,
                  "train_loss": (sums[0] / sums[1].clamp_min(1)).tolist(), "dev_acc": acc,
                  "accepted": [bool(v) for v in verdicts], "best_dev_acc": list(sched.best_acc),
                  "lr": sched.lr.tolist(), "halving": list(sched.halving), "done": list(sched.done),
                  "stop": list(sched.stop),
                  "epoch_time_s": elapsed}
        self.epoch_sums.zero_()
        return record

    # ---- the loop
    def run(self) -> dict:
        cfg = self.cfg
        self.model.train()
        steps = self.sampler.steps_per_epoch
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
                s_int += 1
                bar.update(1)
                if self.global_step % cfg.log_every == 0:
                    record = self.train_record(s_int, time.perf_counter() - t_int)
                    self._log(record)
                    bar.set_postfix(loss=f"{sum(record['loss']) / len(record['loss']):.3f}",
                                    acc=f"{sum(record['frame_acc']) / len(record['frame_acc']):.1f}")
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
                    self.schedule.done[m] = True
                    for p, b in zip(self._member_params(self.params, m), self._member_params(self.best, m)):
                        p.copy_(b)
        return self.summary(stopped=False)

    def train_record(self, steps: int, seconds: float) -> dict:
        """The log line of the last ``steps`` steps (loss, frame accuracy, throughput); resets the sums."""
        sums = self.acc_sums.clone()
        if self.world > 1:
            dist.all_reduce(sums)
        self.acc_sums.zero_()
        frames = steps * self.sampler.batch_size * self.model.num_members  # global batch, every member
        return {"type": "train", "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "loss": (sums[0] / sums[3].clamp_min(1)).tolist(),
                "frame_acc": (100.0 * sums[1] / sums[2].clamp_min(1)).tolist(), "lr": self.schedule.lr.tolist(),
                "frames_per_s": frames / max(seconds, 1e-9)}

    def summary(self, stopped: bool) -> dict:
        return {"stopped": stopped, "finished": self.finished, "epochs": self.epoch, "global_step": self.global_step,
                "best_dev_acc": dict(zip(self.names, self.best_acc))}

    def plot(self) -> None:
        if self.rank == 0:
            plot_curves(self.history(), self.out_dir / "curves.png", self.names)
