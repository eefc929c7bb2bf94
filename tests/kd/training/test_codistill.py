"""Codistillation: stacked run, resume, and the cross-process exchange (2 gloo processes) against the stacked run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr_base.io import read_json
from asr_kd.cli import main
from asr_kd.nn.model import load_model


@pytest.fixture(scope="module")
def corpus(make_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("codistill")
    for name, n, seed in (("train", 30, 0), ("dev", 8, 1)):
        feats, labels = make_corpus(root / name, num_utts=n, seed=seed, noise=2.0)
        (root / "fbank").mkdir(exist_ok=True)
        feats.rename(root / "fbank" / name)
    return root


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["codistill", "--train-feats", str(root / "fbank/train"), "--train-labels", str(root / "train/pdf.npy"),
            "--dev-feats", str(root / "fbank/dev"), "--dev-labels", str(root / "dev/pdf.npy"), "--num-pdfs", "12",
            "--hidden-layers", "1", "--hidden-dim", "16", "--left-context", "2", "--right-context", "1",
            "--epochs", "1", "--min-epochs", "1", "--batch-size", "32", "--epoch-frames", "480", "--lr", "0.05", "--device", "cpu",
            "--num-members", "2", "--refresh-every", "4", "--temperature", "2", "--alpha", "0.5",
            "--data-shards", "2", "--out", str(out), *extra]


def _weights(out: Path) -> list[dict]:
    return [load_model(out / f"member_{i:02d}/final.pt").state_dict() for i in range(2)]


@pytest.fixture(scope="module")
def stacked(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stacked") / "out"
    assert main(_args(corpus, out)) == 0
    return out


def test_stacked_and_resume(corpus, stacked, tmp_path):
    full, parts = stacked, tmp_path / "parts"
    rep = read_json(full / "codistill.json")
    assert set(rep["dev"]["members"]) == {"member_00", "member_01"} and rep["processes"] == 1
    # stop at step 7 (a checkpoint between snapshots: refreshed at 4, next at 8), then resume
    assert main(_args(corpus, parts, "--max-steps", "7")) == 0
    assert not (parts / "member_00/final.pt").exists()
    assert main(_args(corpus, parts, "--resume")) == 0
    for a, b in zip(_weights(full), _weights(parts)):
        for k in a:
            assert torch.equal(a[k], b[k]), k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_across_processes_matches_stacked(corpus, stacked, tmp_path):
    procs = tmp_path / "procs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "asr_kd.cli", *_args(corpus, procs)]
    subprocess.run(cmd, env=env, check=True, timeout=300)
    rep = read_json(procs / "codistill.json")
    assert rep["processes"] == 2
    assert (procs / "train_state_rank0/checkpoint.pt").is_file() and (procs / "train_state_rank1/checkpoint.pt").is_file()
    for a, b in zip(_weights(stacked), _weights(procs)):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    ref = read_json(stacked / "codistill.json")["dev"]["members"]
    for name, acc in rep["dev"]["members"].items():
        assert acc == pytest.approx(ref[name], abs=0.2)
