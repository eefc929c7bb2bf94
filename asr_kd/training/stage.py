"""What every training stage (``train``, ``train-ensemble``, ``distill``, ``regularizer``) shares.

- Options: :class:`DataConfig` (``--train-feats`` ... ``--num-pdfs``), the model's
  :class:`~asr_kd.nn.model.ModelConfig`, the trainer's :class:`~asr_kd.training.trainer.TrainConfig` and
  :class:`RunOptions` (``--resume``, ``--force``), read once by :func:`stage_options` into one typed
  :class:`StageOptions`; a stage adds its own dataclass (``--out`` ...).
- The up-to-date check: :func:`training_step` is the :class:`~asr_base.stamp.Step` of a model dir (or a
  sweep dir): its options (every option that changes the trained weights: not ``--log-every``,
  ``--checkpoint-every``, ``--max-steps``) and the digests of its inputs (feature stores, label files,
  teachers' ``final.pt``). A finished model is retrained when any of them changed, or with ``--force``;
  ``--resume`` continues an unfinished run from its ``checkpoint.pt``.
- Running: :func:`start_training` (up to date? else :func:`setup_run`: process group, device, the splits
  on the device), :func:`run_trainer`,
  :func:`finish_stack` (one model dir per member: ``config.json``, ``final.pt``, ``train_log.jsonl``,
  ``curves.png``, ``eval.json``; docs/formats.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, write_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from asr_kd.nn.model import AcousticDNN, ModelConfig, save_model
from asr_kd.nn.model_dirs import FINAL
from asr_kd.training.curves import member_history, plot_curves
from asr_kd.training.distributed import init_distributed, resolve_device
from asr_kd.training.frame_data import FrameSplit
from asr_kd.training.trainer import TrainConfig, Trainer
from data_prep.features.store import FeatureStore

log = logging.getLogger(__name__)

# trainer options that do not change the trained weights: not part of a model's up-to-date check
NOT_STAMPED = ("log_every", "checkpoint_every", "max_steps")


@dataclass
class DataConfig:
    """The labelled frames a stage trains on and checks against (newbob, model selection)."""

    train_feats: str = option(help="training feature store (data/fbank/train)")
    train_labels: str = option(help="pdf.npy of the training store (exp/tri/ali/train/pdf.npy)")
    dev_feats: str = option(help="held-out feature store for newbob / model selection")
    dev_labels: str = option(help="pdf.npy of the held-out store")
    num_pdfs: int | None = option(None, help="number of tied states (output dimension); or --num-pdfs-file")
    num_pdfs_file: str | None = option(None, help="file holding the number of tied states (exp/tri/num_pdfs)")

    def resolve_num_pdfs(self) -> int:
        """``--num-pdfs``, or the first number in ``--num-pdfs-file`` (exactly one of the two is given)."""
        if (self.num_pdfs is None) == (self.num_pdfs_file is None):
            raise SystemExit("give exactly one of --num-pdfs and --num-pdfs-file")
        if self.num_pdfs is not None:
            return int(self.num_pdfs)
        return int(Path(self.num_pdfs_file).read_text().split()[0])

    def inputs(self) -> dict[str, str]:
        """The files the trained weights depend on (for the up-to-date check)."""
        paths = {"train_feats": self.train_feats, "train_labels": self.train_labels, "dev_feats": self.dev_feats,
                 "dev_labels": self.dev_labels, "num_pdfs_file": self.num_pdfs_file}
        return {k: v for k, v in paths.items() if v is not None}


@dataclass
class RunOptions:
    """How to treat an existing model dir."""

    resume: bool = option(False, help="continue from checkpoint.pt")
    force: bool = option(False, help="retrain even if the model is up to date")


@dataclass
class StageOptions:
    """The options every training stage shares, typed; ``model`` is complete (``num_pdfs``, ``feat_dim``)."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    run: RunOptions


def add_stage_options(parser: argparse.ArgumentParser, train_defaults: Mapping[str, Any] | None = None) -> None:
    """``--train-feats`` ... (data), ``--hidden-layers`` ... (model), ``--epochs`` ... ``--force`` (training).

    ``train_defaults``: the stage's own defaults of trainer options (e.g. ``{"seed": 100}``); pass the same
    to :func:`stage_options`."""
    add_options(parser, DataConfig, title="data")
    add_options(parser, ModelConfig, title="model")
    training = parser.add_argument_group("training")
    add_options(training, TrainConfig, defaults=train_defaults)
    add_options(training, RunOptions)


def stage_options(args: argparse.Namespace | Mapping[str, Any],
                  train_defaults: Mapping[str, Any] | None = None) -> StageOptions:
    """The typed shared options of a parsed command line; ``num_pdfs`` / ``feat_dim`` read from the data."""
    data = from_args(DataConfig, args)
    model = from_args(ModelConfig, args, num_pdfs=data.resolve_num_pdfs(),
                      feat_dim=FeatureStore.open(data.train_feats).dim)
    return StageOptions(data, model, from_args(TrainConfig, args, **(train_defaults or {})), from_args(RunOptions, args))


# ------------------------------------------------------------------------------------- up-to-date check

def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


def training_step(out: str | os.PathLike, stage: str, opts: StageOptions, config: Mapping[str, Any] | None = None,
                  inputs: Mapping[str, str | os.PathLike] | None = None) -> Step:
    """The up-to-date check of a trained output in ``out`` (stamp ``out/.stamp.json``): the shared options
    + the stage's own ``config`` (keys ``<stage>.<option>``), the data + the stage's own ``inputs`` (e.g.
    the teachers' ``final.pt``)."""
    train = {k: v for k, v in to_dict(opts.train).items() if k not in NOT_STAMPED}
    cfg = _flat("data", to_dict(opts.data)) | _flat("model", to_dict(opts.model)) | _flat("train", train)
    cfg |= _flat(stage, dict(config or {}))
    return Step(Path(out) / STAMP_NAME, f"{stage} {out}", cfg, opts.data.inputs() | dict(inputs or {}))


def teacher_inputs(model_dirs: list[Path]) -> dict[str, str]:
    """Stamp inputs for teacher models: their ``final.pt`` (not the dirs: evaluation rewrites eval.json)."""
    return {f"teacher:{d}": str(d / FINAL) for d in model_dirs}


# ---------------------------------------------------------------------------------------------- running

@dataclass
class RunContext:
    train: FrameSplit
    dev: FrameSplit
    num_pdfs: int
    device: torch.device
    rank: int
    world: int


def setup_run(opts: StageOptions) -> RunContext:
    """Process group (under torchrun), device, and the train/dev splits on the device."""
    rank, world, local_rank = init_distributed()
    device = resolve_device(opts.train.device, local_rank)
    torch.manual_seed(opts.train.seed)
    num_pdfs, data = opts.model.num_pdfs, opts.data
    train = FrameSplit.load(data.train_feats, data.train_labels, num_pdfs, device, name="train")
    dev = FrameSplit.load(data.dev_feats, data.dev_labels, num_pdfs, device, name="dev")
    log.info("train: %d usable frames, dev: %d, %d pdfs, device %s", train.num_usable, dev.num_usable, num_pdfs,
             device)
    return RunContext(train, dev, num_pdfs, device, rank, world)


def start_training(opts: StageOptions, steps: Sequence[Step], finished: bool, work_dir: Path,
                   ctx: RunContext | None = None) -> RunContext | None:
    """None when the outputs are ``finished`` and every step is up to date (nothing to train). Otherwise the
    run context (``ctx`` if one is open), with the steps' stamps dropped (rank 0: a run that dies half-way
    leaves nothing that looks complete) and ``work_dir`` cleared for a fresh start (kept with ``--resume``)."""
    if finished and all(st.up_to_date(opts.run.force) for st in steps):
        return None
    ctx = ctx or setup_run(opts)
    if ctx.rank == 0:
        for st in steps:
            st.invalidate()
    prepare_out_dir(work_dir, opts.run.resume)
    return ctx


def data_info(opts: StageOptions) -> dict:
    """The ``data`` entry of a model dir's ``config.json``."""
    return to_dict(opts.data) | {"num_pdfs": opts.model.num_pdfs}


def prepare_out_dir(out: Path, resume: bool) -> None:
    """Clear a previous run's training state for a fresh start (kept with ``resume``)."""
    if not resume:
        for name in ("checkpoint.pt", "train_log.jsonl"):
            (out / name).unlink(missing_ok=True)
        if (out / "train_state").is_dir():
            shutil.rmtree(out / "train_state")
    elif not (out / "checkpoint.pt").is_file() and not (out / "train_state" / "checkpoint.pt").is_file():
        log.info("%s: no checkpoint to resume from, starting fresh", out)


def run_trainer(trainer: Trainer, resume: bool) -> bool:
    """Resume from the checkpoint if asked (and one exists), then train. False when the run stopped early
    (``--max-steps``) and is meant to be continued with ``--resume``."""
    if resume and trainer.checkpoint_path.is_file():
        trainer.load_checkpoint()
    result = trainer.run()
    if result["stopped"]:
        log.info("stopped at global step %d; continue with --resume", result["global_step"])
        return False
    return True


def write_model_dir(out: Path, model: AcousticDNN, info: dict, history: list[dict], dev_name: str,
                    dev_acc: float, dev_frames: int) -> None:
    """Everything a finished model directory holds except the stack's checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / FINAL, model)
    write_text(out / "train_log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    plot_curves(history, out / "curves.png", [out.name])
    write_json(out / "config.json", dict(info, model=to_dict(model.config), num_parameters=model.num_parameters()))
    ev = read_json(out / "eval.json") if (out / "eval.json").is_file() else {}
    ev[dev_name] = {"frame_acc": dev_acc, "frames": dev_frames}
    write_json(out / "eval.json", ev)


def finish_stack(trainer: Trainer, model_dirs: list[Path], info: dict, member_info: list[dict] | None = None) -> None:
    """Write one model directory per member of a finished stack (rank 0 only)."""
    if trainer.rank != 0:
        return
    history = trainer.history()
    for m, out in enumerate(model_dirs):
        extra = dict(info, **(member_info[m] if member_info else {}),
                     best_dev_acc=trainer.best_acc[m], epochs_trained=trainer.epoch)
        write_model_dir(out, trainer.model.member(m), extra, member_history(history, m), trainer.dev.name,
                        trainer.best_acc[m], trainer.dev.num_usable if trainer.cfg.eval_max_frames is None
                        else min(trainer.dev.num_usable, trainer.cfg.eval_max_frames))
