"""Checks of a freshly exported model, stored in its manifest.

* :func:`onnx_max_abs_diff`: onnxruntime against torch on random inputs of several batch sizes and lengths
  (including one shorter than the context window);
* :func:`torchscript_fresh_process_diff`: the TorchScript file loaded and run in a fresh Python process in
  which importing ``asr_kd``/``data_prep`` is blocked (the export must not need the training code).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

_FRESH_CHECK = r"""
import sys, warnings
warnings.simplefilter("ignore")
for name in ("asr_kd", "data_prep"):
    sys.modules[name] = None  # the training code must not be needed
import numpy as np, torch
m = torch.jit.load(sys.argv[1], map_location="cpu").eval()
x = np.load(sys.argv[2]); want = np.load(sys.argv[3])
with torch.inference_mode():
    y2 = m(torch.from_numpy(x[0])).numpy()
    y3 = m(torch.from_numpy(x)).numpy()
print(float(max(np.abs(y2 - want[0]).max(), np.abs(y3 - want).max())))
"""


def onnx_max_abs_diff(module: torch.nn.Module, onnx_path: Path, feat_dim: int, seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random inputs of several batch sizes and lengths (incl. T < window)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.inference_mode():
        for b, t in ((1, 3), (1, 57), (3, 40)):
            x = torch.randn(b, t, feat_dim, generator=g)
            want = module(x).numpy()
            got = sess.run(["loglikes"], {"feats": x.numpy()})[0]
            if got.shape != want.shape:
                raise RuntimeError(f"ONNX output shape {got.shape} != torch {want.shape} for input {(b, t)}")
            worst = max(worst, float(np.abs(got - want).max()))
    return worst


def torchscript_fresh_process_diff(module: torch.nn.Module, ts_path: Path, feat_dim: int, workdir: Path) -> float:
    """Load the TorchScript file in a fresh interpreter with asr_kd/data_prep imports blocked and compare."""
    x = torch.randn(2, 33, feat_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = module(x).numpy()
    workdir = workdir.resolve()  # the check runs with cwd=workdir: every path must be absolute
    ts_path = ts_path.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "x.npy", x.numpy())
    np.save(workdir / "want.npy", want)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-c", _FRESH_CHECK, str(ts_path), str(workdir / "x.npy"),
                           str(workdir / "want.npy")], capture_output=True, text=True, cwd=workdir, env=env,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"TorchScript model does not load in a fresh process:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])
