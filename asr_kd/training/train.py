"""``asr-kd train``: the baseline -- one DNN acoustic model trained on hard labels (frame-level CE).

Also home of the options and helpers every training stage shares (data, model size, trainer settings,
writing a model directory), used by ``train-ensemble``, ``distill`` and ``regularizer``.

A model directory (docs/formats.md): ``config.json``, ``checkpoint.pt`` (latest, for ``--resume``),
``final.pt`` (``save_model`` format), ``train_log.jsonl``, ``curves.png``, ``eval.json``.
A finished model (``final.pt`` present) is skipped unless ``--force``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import torch

from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_base.io import read_json, write_json, write_text
from asr_kd.nn.model import AcousticDNN, ModelConfig, StackedDNN, save_model
from asr_kd.training.curves import member_history, plot_curves
from asr_kd.training.distributed import init_distributed, resolve_device
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- shared options

def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--train-feats", required=True, help="training feature store (data/fbank/train)")
    g.add_argument("--train-labels", required=True, help="pdf.npy of the training store (exp/tri/ali/train/pdf.npy)")
    g.add_argument("--dev-feats", required=True, help="held-out feature store for newbob / model selection")
    g.add_argument("--dev-labels", required=True, help="pdf.npy of the held-out store")
    n = g.add_mutually_exclusive_group(required=True)
    n.add_argument("--num-pdfs", type=int, help="number of tied states (output dimension)")
    n.add_argument("--num-pdfs-file", help="file holding the number of tied states (exp/tri/num_pdfs)")
    g.add_argument("--device", default="auto", help="auto|cpu|cuda (auto: cuda when available)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--hidden-layers", type=int, default=8, help="hidden ReLU layers (paper: 8)")
    g.add_argument("--hidden-dim", type=int, default=2560, help="units per hidden layer (paper: 2560)")
    g.add_argument("--left-context", type=int, default=20, help="past frames in the window (paper: 20)")
    g.add_argument("--right-context", type=int, default=5, help="future frames in the window (paper: 5)")


def add_train_arguments(parser: argparse.ArgumentParser, epochs: int = 12) -> None:
    d = TrainConfig()
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help="maximum epochs")
    g.add_argument("--min-epochs", type=int, default=d.min_epochs, help="no early stop before this many epochs")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="global minibatch (frames)")
    g.add_argument("--lr", type=float, default=d.lr, help="initial SGD learning rate")
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--halving-start", type=float, default=d.halving_start,
                   help="newbob: start halving the lr once the dev frame-accuracy gain (abs %%) is below this")
    g.add_argument("--halving-stop", type=float, default=d.halving_stop,
                   help="newbob: while halving, stop once the gain is below this")
    g.add_argument("--epoch-frames", type=int, default=None, help="frames per epoch (default: all usable frames)")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    g.add_argument("--log-every", type=int, default=d.log_every, help="steps between log lines")
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size)
    g.add_argument("--eval-max-frames", type=int, default=None, help="dev frames used for the per-epoch check")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on GPU")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (GPU only)")
    g.add_argument("--max-steps", type=int, default=None, help="stop (resumably) after this many global steps")
    g.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    g.add_argument("--force", action="store_true", help="retrain even if final.pt exists")


def num_pdfs_from_args(args: argparse.Namespace) -> int:
    if args.num_pdfs is not None:
        return int(args.num_pdfs)
    return int(Path(args.num_pdfs_file).read_text().split()[0])


def model_config_from_args(args: argparse.Namespace, num_pdfs: int, feat_dim: int) -> ModelConfig:
    return ModelConfig(num_pdfs=num_pdfs, feat_dim=feat_dim, left_context=args.left_context,
                       right_context=args.right_context, hidden_layers=args.hidden_layers, hidden_dim=args.hidden_dim)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, min_epochs=args.min_epochs, batch_size=args.batch_size, lr=args.lr,
                       momentum=args.momentum, weight_decay=args.weight_decay, halving_start=args.halving_start,
                       halving_stop=args.halving_stop, epoch_frames=args.epoch_frames,
                       checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                       eval_batch_size=args.eval_batch_size, eval_max_frames=args.eval_max_frames, seed=args.seed,
                       device=args.device, amp=not args.no_amp, compile=args.compile, max_steps=args.max_steps)


@dataclasses.dataclass
class RunContext:
    train: FrameSplit
    dev: FrameSplit
    num_pdfs: int
    device: torch.device
    rank: int
    world: int


def setup_run(args: argparse.Namespace) -> RunContext:
    """Process group (under torchrun), device, and the train/dev splits on the device."""
    rank, world, local_rank = init_distributed()
    device = resolve_device(args.device, local_rank)
    torch.manual_seed(args.seed)
    num_pdfs = num_pdfs_from_args(args)
    train = FrameSplit.load(args.train_feats, args.train_labels, num_pdfs, device, name="train")
    dev = FrameSplit.load(args.dev_feats, args.dev_labels, num_pdfs, device, name="dev")
    log.info("train: %d usable frames, dev: %d, %d pdfs, device %s", train.num_usable, dev.num_usable, num_pdfs,
             device)
    return RunContext(train, dev, num_pdfs, device, rank, world)


def data_info(args: argparse.Namespace, num_pdfs: int) -> dict:
    return {"train_feats": args.train_feats, "train_labels": args.train_labels, "dev_feats": args.dev_feats,
            "dev_labels": args.dev_labels, "num_pdfs": num_pdfs}


def prepare_out_dir(out: Path, resume: bool, force: bool) -> bool:
    """False when the model is already finished (skip); clears stale state for a fresh start."""
    if (out / "final.pt").is_file() and not force:
        log.info("%s: final.pt exists, skipping (use --force to retrain)", out)
        return False
    if not resume:
        for name in ("checkpoint.pt", "train_log.jsonl"):
            (out / name).unlink(missing_ok=True)
        if (out / "train_state").is_dir():
            shutil.rmtree(out / "train_state")
    elif not (out / "checkpoint.pt").is_file() and not (out / "train_state" / "checkpoint.pt").is_file():
        log.info("%s: no checkpoint to resume from, starting fresh", out)
    return True


def write_model_dir(out: Path, model: AcousticDNN, info: dict, history: list[dict], dev_name: str,
                    dev_acc: float, dev_frames: int) -> None:
    """Everything a finished model directory holds except the stack's checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "final.pt", model)
    write_text(out / "train_log.jsonl", "".join(__import__("json").dumps(r) + "\n" for r in history))
    plot_curves(history, out / "curves.png", [out.name])
    write_json(out / "config.json", dict(info, model=dataclasses.asdict(model.config),
                                         num_parameters=model.num_parameters()))
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


# -------------------------------------------------------------------------------------------- baseline

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_train_arguments(parser)
    parser.add_argument("--out", required=True, help="model directory (exp/baseline)")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not prepare_out_dir(out, args.resume, args.force):
        return 0
    ctx = setup_run(args)
    mcfg = model_config_from_args(args, ctx.num_pdfs, ctx.train.feat_dim)
    tcfg = train_config_from_args(args)
    model = StackedDNN.init_from_seeds(mcfg, [args.seed]).to(ctx.device)
    log.info("baseline: %d hidden x %d, %d parameters", mcfg.hidden_layers, mcfg.hidden_dim,
             model.member(0).num_parameters())
    sampler = FrameSampler([ctx.train.usable], [args.seed], tcfg.batch_size, tcfg.epoch_frames, ctx.rank, ctx.world)
    trainer = Trainer(model, hard_objective, ctx.train, ctx.dev, sampler, tcfg, out, [out.name], ctx.rank, ctx.world)
    if not run_trainer(trainer, args.resume):
        return 0
    info = {"role": "baseline", "train": dataclasses.asdict(tcfg), "data": data_info(args, ctx.num_pdfs), "seed": args.seed}
    finish_stack(trainer, [out], info)
    log.info("baseline done: best dev frame accuracy %.2f%%", trainer.best_acc[0])
    return 0
