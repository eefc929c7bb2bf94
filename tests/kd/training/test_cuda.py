"""The training paths on a CUDA device: windows gathered on the device, device-resident batches, bf16
autocast, torch.compile, the distillation sweep's shared teacher pass. Marked ``gpu``; every test skips
cleanly without a CUDA device (CI); ``benchmarks/gpu_check.sh`` runs them on a GPU."""

from __future__ import annotations

import pytest
import torch

from asr_kd.nn.model import ModelConfig, StackedDNN
from asr_kd.nn.soft_targets import TeacherEnsemble
from asr_kd.training.distill import DistillObjective
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="no CUDA device: GPU test skipped (run benchmarks/gpu_check.sh on a GPU)")]

MCFG = ModelConfig(num_pdfs=12, feat_dim=8, left_context=2, right_context=1, hidden_layers=3, hidden_dim=64)


@pytest.fixture(scope="module")
def corpus(make_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return make_corpus(root / "train", num_utts=20, seed=0), make_corpus(root / "dev", num_utts=6, seed=1)


def splits(corpus, device):
    tr, dv = corpus
    return (FrameSplit.load(*tr, num_pdfs=12, device=device, name="train"),
            FrameSplit.load(*dv, num_pdfs=12, device=device, name="dev"))


def trainer(corpus, device, out, **kw) -> Trainer:
    train, dev = splits(corpus, device)
    cfg = TrainConfig(**{**dict(epochs=2, batch_size=32, lr=0.05, checkpoint_every=0, log_every=5,
                                device=str(device)), **kw})
    sampler = FrameSampler([train.usable], [1], cfg.batch_size)
    return Trainer(StackedDNN.init_from_seeds(MCFG, [1]).to(device), hard_objective, train, dev, sampler, cfg, out)


def test_windows_and_batches_on_device_equal_cpu(corpus):
    cpu, gpu = splits(corpus, "cpu")[0], splits(corpus, "cuda")[0]
    idx = cpu.usable[::7]
    assert torch.equal(gpu.windows(idx.cuda(), 2, 1).cpu(), cpu.windows(idx, 2, 1))
    s_cpu = FrameSampler([cpu.usable], [3], 16)
    s_gpu = FrameSampler([gpu.usable], [3], 16).to("cuda")
    b = s_gpu.batch(1, 2)
    assert b.is_cuda and torch.equal(b.cpu(), s_cpu.batch(1, 2))


def test_bf16_training_on_cuda_learns_like_float32_on_cpu(corpus, tmp_path):
    cpu = trainer(corpus, torch.device("cpu"), tmp_path / "cpu")
    gpu = trainer(corpus, torch.device("cuda"), tmp_path / "gpu", amp=True)
    assert gpu.amp and not cpu.amp
    acc_cpu = cpu.run()["best_dev_acc"]["member_00"]
    acc_gpu = gpu.run()["best_dev_acc"]["member_00"]
    assert acc_gpu > 100 / 12 * 2 and abs(acc_gpu - acc_cpu) < 10, (acc_cpu, acc_gpu)


def test_compiled_step_matches_eager(corpus, tmp_path):
    eager = trainer(corpus, torch.device("cuda"), tmp_path / "e", amp=False, max_steps=10, weight_decay=1e-3)
    comp = trainer(corpus, torch.device("cuda"), tmp_path / "c", amp=False, max_steps=10, weight_decay=1e-3,
                   compile=True)  # the model and the SGD update compiled
    eager.run()
    comp.run()
    for a, b in zip(eager.model.parameters(), comp.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_distillation_sweep_on_cuda_matches_cpu(corpus):
    losses = {}
    for device in ("cpu", "cuda"):
        train = splits(corpus, device)[0]
        teachers = TeacherEnsemble(StackedDNN.init_from_seeds(MCFG, [5, 6, 7]).to(device), amp=True)
        obj = DistillObjective(teachers, [1.0, 2.0, 5.0], 0.5)
        students = StackedDNN.init_from_seeds(MCFG, [9] * 3).to(device)
        idx = train.usable[:64].to(device)[None]
        x = train.windows(idx[0], 2, 1)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = students(x)
        losses[device] = obj(logits.float(), x, train.targets(idx), idx)
    assert losses["cuda"].is_cuda and torch.isfinite(losses["cuda"]).all()
    torch.testing.assert_close(losses["cuda"].cpu(), losses["cpu"], rtol=0.05, atol=0.05)
