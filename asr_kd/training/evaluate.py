"""``asr-kd evaluate``: frame accuracy of models, ensembles and students on labelled feature stores.

``--models`` takes model directories of three kinds, recognised by their contents:
  * a model (``final.pt``): e.g. ``exp/baseline``
  * an ensemble (``member_*/final.pt``): every member, plus the ensemble (arithmetic and geometric mean of
    the members' distributions at T = 1), all from one stacked forward pass per batch
  * a student sweep (``T*/final.pt`` + ``best.json``): every student; the one chosen on dev is "best".
Writes ``--out`` (JSON, per split: accuracy of every system; ``--out``.stamp.json: up to date while the
models, stores and labels are) and merges each split's accuracy into the model directories' ``eval.json``. The first plain model is the baseline; with an ensemble and a sweep
present it reports the fraction of the ensemble's gain recovered by the best student
``(student - baseline) / (ensemble - baseline)`` (paper: 86%).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json, write_json
from asr_base.stamp import Step
from asr_kd.nn.model_dirs import FINAL, discover
from asr_kd.training.distributed import resolve_device
from asr_kd.training.frame_accuracy import stack_accuracy
from asr_kd.training.frame_data import FrameSplit

log = logging.getLogger(__name__)


def gain_recovered(baseline: float, ensemble: float, student: float) -> float | None:
    """Fraction of the ensemble's gain over the baseline that the student reaches (None if no gain)."""
    gain = ensemble - baseline
    return None if abs(gain) < 1e-12 else (student - baseline) / gain


@dataclass
class EvaluateConfig:
    models: list[str] = option(help="model dirs: exp/baseline, an ensemble dir (exp/teachers), a sweep (exp/students)")
    feats: list[str] = option(help="feature stores to score (data/fbank/test ...)")
    labels: list[str] = option(help="pdf.npy per store, same order as --feats")
    out: str = option(help="results JSON (exp/results/frame_acc.json)")
    batch_size: int = option(4096, help="frames per batch")
    max_frames: int | None = option(None, help="score an evenly spaced subset of this many frames (none: all)")
    device: str = option("auto", help="auto|cpu|cuda")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, EvaluateConfig)


def main(args: argparse.Namespace) -> int:
    return evaluate(from_args(EvaluateConfig, args))


def evaluate(cfg: EvaluateConfig) -> int:
    if len(cfg.feats) != len(cfg.labels):
        raise SystemExit("--feats and --labels need the same number of entries")
    systems = [(p, *discover(p)) for p in cfg.models]
    step = _step(cfg, systems)
    if Path(cfg.out).is_file() and step.up_to_date():
        return 0
    device = resolve_device(cfg.device)
    results: dict = {"splits": {}, "systems": {}}
    for feats, labels in zip(cfg.feats, cfg.labels):
        split = FrameSplit.load(feats, labels, device=device)
        accs: dict[str, float] = {}
        for path, kind, entries in systems:
            dirs = [d for _, d in entries]
            r = stack_accuracy(dirs, split, cfg.batch_size, cfg.max_frames, with_ensemble=kind == "ensemble")
            frames = r.pop("_frames")
            for name, d in entries:
                accs[name] = r[str(d)]
                _merge_eval(d, split.name, r[str(d)], frames)
                results["systems"][name] = {"kind": "member" if kind == "ensemble" else kind.rstrip("s"),
                                            "dir": str(d)}
            if kind == "ensemble":
                ens = Path(path).name
                for mean in ("arithmetic", "geometric"):
                    accs[f"{ens}/ensemble_{mean}"] = r[f"ensemble_{mean}"]
                for k in range(2, len(dirs)):  # the gain against ensemble size: the first k members' mean
                    accs[f"{ens}/ensemble_first_{k}"] = r[f"ensemble_first_{k}"]
                results["systems"][f"{ens}/ensemble_arithmetic"] = {"kind": "ensemble", "dir": str(path)}
                results["systems"][f"{ens}/ensemble_geometric"] = {"kind": "ensemble", "dir": str(path)}
                by_size = [r[str(dirs[0])], *[r[f"ensemble_first_{k}"] for k in range(2, len(dirs))],
                           r["ensemble_arithmetic"]]
                _merge_eval(Path(path), split.name, {m: r[f"ensemble_{m}"] for m in ("arithmetic", "geometric")}
                            | {"members": [r[str(d)] for d in dirs], "by_size": by_size}, frames)
            if kind == "students":
                best = Path(path) / "best.json"
                if best.is_file():
                    accs[f"{Path(path).name}/best"] = accs[f"{Path(path).name}/{read_json(best)['best']}"]
            log.info("%s on %s: %s", path, split.name, ", ".join(f"{n.split('/')[-1]} {a:.2f}" for n, a in accs.items()
                                                                 if n.startswith(Path(path).name)))
        results["splits"][split.name] = {"frames": frames, "frame_acc": accs}
        summary = _gain(systems, accs)
        if summary:
            results["splits"][split.name]["gain_recovered"] = summary
            log.info("%s: best student recovers %.0f%% of the ensemble's gain", split.name,
                     100 * summary["fraction"] if summary["fraction"] is not None else float("nan"))
    write_json(cfg.out, results)
    step.done()
    log.info("wrote %s", cfg.out)
    return 0


def _step(cfg: EvaluateConfig, systems) -> Step:
    """Up to date while the options (but device and batch size) and every model, store and label file are."""
    inputs = {f"feats{i}": f for i, f in enumerate(cfg.feats)} | {f"labels{i}": f for i, f in enumerate(cfg.labels)}
    for path, kind, entries in systems:
        inputs |= {f"model:{name}": Path(d) / FINAL for name, d in entries}
        if kind == "students":
            inputs[f"best:{path}"] = Path(path) / "best.json"
    config = {"models": cfg.models, "feats": cfg.feats, "labels": cfg.labels, "max_frames": cfg.max_frames}
    return Step(f"{cfg.out}.stamp.json", "evaluate", config=config, inputs=inputs)


def _gain(systems, accs: dict[str, float]) -> dict | None:
    base = next((e[0][0] for _, k, e in systems if k == "model"), None)
    ens = next((Path(p).name for p, k, _ in systems if k == "ensemble"), None)
    stu = next((Path(p).name for p, k, _ in systems if k == "students" and f"{Path(p).name}/best" in accs), None)
    if base is None or ens is None or stu is None:
        return None
    b, e, s = accs[base], accs[f"{ens}/ensemble_arithmetic"], accs[f"{stu}/best"]
    return {"baseline": b, "ensemble": e, "best_student": s, "fraction": gain_recovered(b, e, s),
            "baseline_system": base, "ensemble_system": f"{ens}/ensemble_arithmetic", "student_system": f"{stu}/best"}


def _merge_eval(model_dir: Path, split: str, acc, frames: int) -> None:
    path = model_dir / "eval.json"
    ev = read_json(path) if path.is_file() else {}
    ev[split] = {"frame_acc": acc, "frames": frames}
    write_json(path, ev)
