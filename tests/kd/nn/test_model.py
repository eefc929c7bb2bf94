"""The acoustic model's initialisation (He fan-in hidden layers, LeCun output, zero biases): the paper's depth
keeps its activation scale at init and trains; stacks equal their members; saved models load unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from asr_kd.nn.model import AcousticDNN, ModelConfig, StackedDNN, load_model, save_model
from asr_kd.training.frame_data import FrameSampler, FrameSplit
from asr_kd.training.trainer import TrainConfig, Trainer, hard_objective


def _hidden_rms_and_logits(model: AcousticDNN, x: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    rms, h = [], x
    for layer in model.hidden:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            rms.append(float(h.pow(2).mean().sqrt()))
    return rms, model.output(h)


def _input_vs_class_spread(logits: torch.Tensor) -> float:
    """std over inputs (per class, averaged) / std over classes of the mean logit."""
    return float(logits.std(dim=0).mean() / logits.mean(dim=0).std())


@torch.no_grad()
def test_paper_depth_keeps_activation_scale_at_init():
    cfg = ModelConfig(num_pdfs=1000, hidden_layers=8, hidden_dim=2560)  # paper's 8 x 2560, 26 x 40 input
    torch.manual_seed(0)
    model = AcousticDNN(cfg)
    assert all(float(b.abs().max()) == 0 for b in model.hidden.state_dict().values() if b.dim() == 1)
    x = torch.randn(128, cfg.input_dim)  # CMVN-normalised fbank windows: zero mean, unit variance
    rms, logits = _hidden_rms_and_logits(model, x)
    ratios = [b / a for a, b in zip(rms, rms[1:])]
    assert all(0.8 < r < 1.25 for r in ratios), ratios  # PyTorch's default init: ~0.41 per layer
    assert 0.5 < rms[-1] / rms[0] < 2.0, rms
    assert 0.3 < float(logits.pow(2).mean().sqrt()) / rms[-1] < 3.0  # LeCun output: logits ~ hidden scale
    # different inputs still give clearly different logits after 8 layers (default init: ~1e-2)
    assert _input_vs_class_spread(logits) > 0.3, _input_vs_class_spread(logits)
    # and the initial loss is near-uniform: log(P) + O(1), not saturated
    ce = torch.nn.functional.cross_entropy(logits, torch.randint(cfg.num_pdfs, (128,)))
    assert math.log(cfg.num_pdfs) < float(ce) < math.log(cfg.num_pdfs) + 3


@torch.no_grad()
def test_default_torch_init_collapses_at_paper_depth():
    """The failure the init fixes (issue 12), so the bounds above are not vacuous."""
    cfg = ModelConfig(num_pdfs=1000, hidden_layers=8, hidden_dim=1024)
    torch.manual_seed(0)
    model = AcousticDNN(cfg)
    for lin in model.linears():
        lin.reset_parameters()  # nn.Linear's own default
    rms, logits = _hidden_rms_and_logits(model, torch.randn(128, cfg.input_dim))
    assert rms[-1] / rms[0] < 0.05 and _input_vs_class_spread(logits) < 0.1


def test_stack_equals_members_from_the_same_seeds():
    cfg = ModelConfig(num_pdfs=20, feat_dim=8, left_context=2, right_context=1, hidden_layers=3, hidden_dim=16)
    stack = StackedDNN.init_from_seeds(cfg, [3, 5])
    x = torch.randn(7, cfg.input_dim)
    for i, seed in enumerate((3, 5)):
        torch.manual_seed(seed)
        ref = AcousticDNN(cfg)
        for a, b in zip(stack.member(i).state_dict().values(), ref.state_dict().values()):
            assert torch.equal(a, b)
        torch.testing.assert_close(stack(x)[i], ref(x), rtol=1e-5, atol=1e-5)
    fresh = StackedDNN(cfg, 2)  # a stack built directly draws from the same distributions
    assert all(float(b.detach().abs().max()) == 0 for b in fresh.biases)
    w = fresh.weights[1]
    assert abs(float(w.detach().std()) - math.sqrt(2 / w.shape[1])) < 0.3 * math.sqrt(2 / w.shape[1])


@torch.no_grad()
def test_dropout_only_in_training_and_drawn_from_the_generator():
    cfg = ModelConfig(num_pdfs=20, feat_dim=8, left_context=2, right_context=1, hidden_layers=2, hidden_dim=256)
    stack = StackedDNN.init_from_seeds(cfg, [3, 5])
    x = torch.randn(64, cfg.input_dim)
    plain = stack(x)
    gen = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    a, b = stack(x, 0.5, gen()), stack(x, 0.5, gen())
    assert torch.equal(a, b) and not torch.equal(a, plain)  # same generator state -> same masks
    assert not torch.equal(a, stack(x, 0.5, torch.Generator().manual_seed(12)))
    # inverted dropout keeps the expected activation: with one hidden layer the logits are linear in the mask,
    # so their mean over many masks approaches the plain logits
    one = StackedDNN.init_from_seeds(ModelConfig(num_pdfs=20, feat_dim=8, left_context=2, right_context=1,
                                                 hidden_layers=1, hidden_dim=256), [3])
    g, ref = gen(), one(x)
    mean = torch.stack([one(x, 0.2, g) for _ in range(400)]).mean(0)
    assert float((mean - ref).abs().mean()) < 0.05 * float(ref.abs().mean())
    stack.eval()
    assert torch.equal(stack(x, 0.5, gen()), plain)  # evaluation never drops
    with pytest.raises(ValueError, match="dropout"):
        stack(x, 1.0)


def test_saved_model_loads_with_its_own_weights(tmp_path):
    cfg = ModelConfig(num_pdfs=20, feat_dim=8, left_context=2, right_context=1, hidden_layers=2, hidden_dim=16)
    model = AcousticDNN(cfg)
    with torch.no_grad():  # weights unlike any init (e.g. a model trained before this init existed)
        for p in model.parameters():
            p.uniform_(-0.1, 0.1)
    save_model(tmp_path / "final.pt", model)
    torch.manual_seed(123)
    loaded = load_model(tmp_path / "final.pt")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def _learnable_split(frames: int, cfg: ModelConfig, seed: int) -> FrameSplit:
    """Frames whose label is a fixed random linear function of the centre frame (learnable, not trivial)."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(frames, cfg.feat_dim, generator=g)
    proj = torch.randn(cfg.feat_dim, cfg.num_pdfs, generator=torch.Generator().manual_seed(99))
    labels = (feats @ proj).argmax(dim=1)
    lengths = torch.full((frames // 100,), 100, dtype=torch.int64)
    return FrameSplit("synth", feats.half(), torch.cumsum(lengths, 0) - lengths, lengths, labels,
                      torch.arange(frames))


def test_eight_layer_net_trains_from_init(tmp_path):
    cfg = ModelConfig(num_pdfs=16, feat_dim=20, left_context=1, right_context=1, hidden_layers=8, hidden_dim=128)
    train, dev = _learnable_split(20_000, cfg, 0), _learnable_split(2_000, cfg, 1)
    tcfg = TrainConfig(batch_size=64, lr=0.02, log_every=20, checkpoint_every=0, max_steps=300, seed=1)
    model = StackedDNN.init_from_seeds(cfg, [1])
    sampler = FrameSampler([train.usable], [1], tcfg.batch_size)
    trainer = Trainer(model, hard_objective, train, dev, sampler, tcfg, tmp_path)
    trainer.run()
    losses = [r["loss"][0] for r in trainer.history() if r["type"] == "train"]
    assert len(losses) == 15
    assert losses[0] > 0.7 * math.log(cfg.num_pdfs)  # starts near chance
    assert losses[-1] < 0.6 * losses[0], losses  # and falls clearly within 300 steps
