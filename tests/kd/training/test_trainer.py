"""The training loop: stacked members train independently, newbob schedule, bit-identical resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch


from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.nn.model import ModelConfig, StackedDNN, load_model
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective, sgd_momentum_

MCFG = ModelConfig(num_pdfs=12, feat_dim=8, left_context=2, right_context=1, hidden_layers=2, hidden_dim=32)


@pytest.fixture(scope="module")
def data(make_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    tr = make_corpus(root / "train", num_utts=20, seed=0)
    dv = make_corpus(root / "dev", num_utts=6, seed=1)
    return FrameSplit.load(*tr, num_pdfs=12, name="train"), FrameSplit.load(*dv, num_pdfs=12, name="dev"), tr, dv


def build(data, out, seeds=(1,), init_seeds=None, **kw) -> Trainer:
    train, dev = data[0], data[1]
    cfg = TrainConfig(**{**dict(epochs=3, batch_size=32, lr=0.05, checkpoint_every=4, log_every=2), **kw})
    model = StackedDNN.init_from_seeds(MCFG, list(init_seeds or seeds))
    sampler = FrameSampler([train.usable] * len(seeds), list(seeds), cfg.batch_size, cfg.epoch_frames)
    return Trainer(model, hard_objective, train, dev, sampler, cfg, out)


def _strip(history):
    return [{k: v for k, v in r.items() if k not in ("frames_per_s", "epoch_time_s")} for r in history]


def test_training_learns_and_writes_log_and_curves(data, tmp_path):
    t = build(data, tmp_path, epochs=2)
    result = t.run()
    assert result["finished"] and not result["stopped"]
    hist = t.history()
    epochs = [r for r in hist if r["type"] == "epoch"]
    assert len(epochs) == 2 and epochs[-1]["dev_acc"][0] > 100 / 12 * 2  # well above chance
    train = [r for r in hist if r["type"] == "train"]
    assert train[-1]["loss"][0] < train[0]["loss"][0]
    assert {"loss", "frame_acc", "lr", "frames_per_s"} <= set(train[0])
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "checkpoint.pt").is_file()


def test_stacked_members_train_like_separate_models(data, tmp_path):
    stack = build(data, tmp_path / "stack", seeds=(1, 2), epochs=2)
    stack.run()
    for m, seed in enumerate((1, 2)):
        single = build(data, tmp_path / f"s{seed}", seeds=(seed,), epochs=2)
        single.run()
        for a, b in zip(stack.model.member(m).parameters(), single.model.member(0).parameters()):
            assert torch.allclose(a, b, atol=1e-4)
        assert stack.best_acc[m] == pytest.approx(single.best_acc[0], abs=0.2)


def test_sgd_update_is_the_per_parameter_formula_bit_for_bit(data, tmp_path):
    """The multi-tensor update equals the per-tensor ops ``buf = m * buf + (grad + wd * p)``,
    ``p -= lr[member] * buf`` (the trainer's update before it was batched) bit for bit on a CPU."""
    t = build(data, tmp_path, seeds=(1, 2, 3), weight_decay=1e-3, warmup_steps=4)
    t.schedule.lr = torch.tensor([0.05, 0.025, 0.0], dtype=torch.float64)  # halved / stopped members
    g = torch.Generator().manual_seed(0)
    for p in t.params:
        p.grad = torch.randn(p.shape, generator=g)
    for b in t.momentum:
        b.copy_(torch.randn(b.shape, generator=g))
    want_p, want_b = [], []
    stopped = t.params[0][2].detach().clone()
    lr = t.schedule.lr * (1 / 4)  # the first warm-up step
    for p, buf in zip(t.params, t.momentum):
        b = buf.mul(0.9).add(p.grad.add(p.detach(), alpha=1e-3))
        want_b.append(b)
        want_p.append(p.detach().sub(lr.to(p.dtype).view((-1,) + (1,) * (p.dim() - 1)) * b))
    with torch.no_grad():
        t._sgd_update()
    for p, b, wp, wb in zip(t.params, t.momentum, want_p, want_b):
        assert torch.equal(b, wb) and torch.equal(p.detach(), wp)
    assert torch.equal(t.params[0][2], stopped)  # the stopped member (rate 0) keeps its weights


@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile on a CPU needs a C compiler")
def test_sgd_update_compiles_as_one_graph_and_matches_eager():
    """``--compile`` compiles the update on a GPU, which CI lacks: here it compiles on the CPU, without a graph
    break (fullgraph) or a recompilation when the rates change, and matches the eager update."""
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 8, 16), (3, 16), (3, 16, 12), (3, 12)]
    rand = lambda: [torch.randn(s, generator=g) for s in shapes]  # noqa: E731
    grads, params, bufs = rand(), rand(), rand()
    p2, b2 = [p.clone() for p in params], [b.clone() for b in bufs]
    compiled = torch.compile(sgd_momentum_, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in range(3):
            lr = torch.tensor([0.05, 0.02, 0.0]) / (step + 1)
            lrs = [lr.view(-1, 1, 1) if p.dim() == 3 else lr.view(-1, 1) for p in params]
            sgd_momentum_(grads, params, bufs, lrs, 0.9, 1e-3)
            compiled(grads, p2, b2, lrs, 0.9, 1e-3)
    for a, b in zip(params + bufs, p2 + b2):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_newbob_halving_and_early_stop(data, tmp_path):
    # after the first epoch (infinite gain over nothing) every gain is too small: halve each epoch
    t = build(data, tmp_path / "a", halving_start=1e9, halving_stop=-1e9, epochs=4)
    t.run()
    lrs = [r["lr"][0] for r in t.history() if r["type"] == "epoch"]
    assert lrs[:3] == pytest.approx([0.05, 0.025, 0.0125]) and lrs[3] == 0.0  # last epoch: done -> lr 0
    # stop as soon as halving has started and min_epochs is reached
    t = build(data, tmp_path / "b", halving_start=1e9, halving_stop=1e9, min_epochs=2, epochs=10)
    t.run()
    epochs = [r for r in t.history() if r["type"] == "epoch"]
    assert len(epochs) == 3 and epochs[-1]["done"] == [True] and epochs[1]["halving"] == [True]
    # the final weights are the best epoch's
    assert t.best_acc[0] == max(r["dev_acc"][0] for r in epochs)


@pytest.mark.parametrize("stop_at", [6, 33])  # mid-epoch, and exactly at the epoch boundary
def test_resume_is_bit_identical(data, tmp_path, stop_at):
    ref = build(data, tmp_path / "ref", seeds=(3, 4), epochs=2)
    ref.run()
    part = build(data, tmp_path / "run", seeds=(3, 4), max_steps=stop_at, epochs=2)
    assert part.sampler.steps_per_epoch == 33
    assert part.run()["stopped"]
    with pytest.raises(ValueError, match="sampler"):
        build(data, tmp_path / "run", seeds=(3, 5)).load_checkpoint()  # another sample order: refused
    resumed = build(data, tmp_path / "run", seeds=(3, 4), init_seeds=(9, 9), epochs=2)  # the checkpoint's weights must win
    resumed.load_checkpoint()
    resumed.run()
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert _strip(resumed.history()) == _strip(ref.history())
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["global_step"] == ref.global_step


def test_perturbed_windows_reach_the_objective_and_resume_identically(data, tmp_path):
    seen = []

    def objective(logits, x, labels, idx):
        seen.append((x.clone(), idx.clone()))
        return hard_objective(logits, x, labels, idx)

    kw = dict(epochs=2, input_noise=0.3, freq_mask=3)
    t = build(data, tmp_path / "aug", **kw)
    t.objective = objective
    t.cfg = TrainConfig(**{**t.cfg.__dict__, "max_steps": 3})
    t.run()
    x, idx = seen[0]
    clean = data[0].windows(idx[0], MCFG.left_context, MCFG.right_context)  # one pool: shared input
    assert x.shape == clean.shape and not torch.equal(x, clean)
    assert (x - clean).abs().mean() > 0.1  # the objective (a distillation's teachers) sees the perturbed input
    _assert_resumes_identically_and_differs_from_plain(data, tmp_path, **kw)


def _assert_resumes_identically_and_differs_from_plain(data, tmp_path, **kw) -> Trainer:
    """Train with the random options ``kw``; stopped at step 7 and resumed, the run ends with the same weights
    (the draws are a function of seed and step); a run without them ends elsewhere."""
    ref = build(data, tmp_path / "ref", **kw)
    ref.run()
    part = build(data, tmp_path / "run", max_steps=7, **kw)
    part.run()
    resumed = build(data, tmp_path / "run", **kw)
    resumed.load_checkpoint()
    resumed.run()
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    plain = build(data, tmp_path / "plain", epochs=2)
    plain.run()
    assert not torch.equal(next(plain.model.parameters()), next(ref.model.parameters()))
    return ref


def test_dropout_changes_training_and_resumes_identically(data, tmp_path):
    ref = _assert_resumes_identically_and_differs_from_plain(data, tmp_path, epochs=2, dropout=0.3)
    assert ref.best_acc[0] > 100 / 12 * 2  # still learns


@pytest.mark.e2e
def test_ddp_two_gloo_processes_match_single_process(data, tmp_path):
    tr, dv = data[2], data[3]
    common = ["train", "--train-feats", str(tr[0]), "--train-labels", str(tr[1]), "--dev-feats", str(dv[0]),
              "--dev-labels", str(dv[1]), "--num-pdfs", "12", "--hidden-layers", "2", "--hidden-dim", "32",
              "--left-context", "2", "--right-context", "1", "--epochs", "1", "--batch-size", "32", "--lr", "0.05",
              "--device", "cpu", "--seed", "5"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    from asr_kd.cli import main

    assert main([*common, "--out", str(tmp_path / "single")]) == 0  # the single-process reference, in-process
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "asr_kd.cli", *common, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "rank 1 of 2" in ddp.stderr
    a, b = load_model(tmp_path / "single" / "final.pt"), load_model(tmp_path / "ddp" / "final.pt")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)
    la = [json.loads(x) for x in (tmp_path / "single" / "train_log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb)
    assert la[-1]["dev_acc"] == pytest.approx(lb[-1]["dev_acc"], abs=0.1)
    assert la[-1]["train_loss"] == pytest.approx(lb[-1]["train_loss"], rel=1e-4)
