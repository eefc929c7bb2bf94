"""The two network files of an export, ``model.ts`` (TorchScript) and ``model.onnx``, written reproducibly.

``torch.jit.script`` emits a module's ``__constants__`` (e.g. ``nn.Linear``'s ``in_features`` and
``out_features``) in set order, and a set of strings iterates in an order that depends on Python's per-process
hash seed: the same model scripted in two processes gives two different ``model.ts`` files about half of
the time. So :func:`write_networks` scripts and exports in a child interpreter with ``PYTHONHASHSEED=0``
(``python -m asr_kd.export.networks``): the same checkpoints always give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from asr_base.io import atomic_path, save_torch
from asr_kd.export.loglike_module import LoglikeModule


def build_module(checkpoints: list[str], priors: str, prior_floor: float) -> LoglikeModule:
    """The exported network: the checkpoint(s) (mean posterior of an ensemble) minus the log priors."""
    from asr_kd.decoding.scorer import load_log_priors  # noqa: PLC0415
    from asr_kd.nn.model import load_model  # noqa: PLC0415

    members = [load_model(p).eval() for p in checkpoints]
    mc = members[0].config
    if any(m.config != mc for m in members):
        raise ValueError("ensemble members must share one model config")
    log_priors = load_log_priors(priors, prior_floor)
    if len(log_priors) != mc.num_pdfs:
        raise ValueError(f"{priors} has {len(log_priors)} states, the model {mc.num_pdfs} outputs")
    return LoglikeModule(members, log_priors, mc.left_context, mc.right_context).eval()


def _save(module: LoglikeModule, out: Path, feat_dim: int) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated but is what C++/Kaldi-side users can load
        warnings.simplefilter("ignore", DeprecationWarning)
        save_torch(out / "model.ts", torch.jit.script(module))
    # legacy (TorchScript-based) ONNX exporter: the dynamo exporter needs onnxscript, not on our stack
    example = torch.zeros(1, 30, feat_dim)
    with atomic_path(out / "model.onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["feats"],
                          output_names=["loglikes"], dynamic_axes={"feats": {0: "batch", 1: "time"},
                                                                   "loglikes": {0: "batch", 1: "time"}},
                          opset_version=17)


def write_networks(checkpoints: list[str], priors: str, prior_floor: float, out: Path) -> None:
    """Write ``out/model.ts`` and ``out/model.onnx`` from a child process with a fixed hash seed."""
    cmd = [sys.executable, "-m", "asr_kd.export.networks", "--priors", str(priors),
           "--prior-floor", repr(prior_floor), "--out", str(out), *map(str, checkpoints)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise RuntimeError(f"writing the TorchScript/ONNX networks failed:\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="(internal, run by asr-kd export) write model.ts and model.onnx "
                                            "of checkpoints; run it with PYTHONHASHSEED=0")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--priors", required=True)
    p.add_argument("--prior-floor", type=float, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        raise SystemExit("asr_kd.export.networks must run with PYTHONHASHSEED=0 (its output would vary by run)")
    module = build_module(a.checkpoints, a.priors, a.prior_floor)
    _save(module, Path(a.out), module.net.members[0].config.feat_dim)


if __name__ == "__main__":
    main()
