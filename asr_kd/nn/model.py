"""The DNN acoustic model: a context window of fbank frames -> logits over tied HMM states.

Paper defaults: 26 frames x 40 log-mel (20 past, 5 future), 8 hidden layers x 2560 ReLU, softmax over
~14,000 tied states (~85M parameters).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from asr_base.config import option


@dataclass
class ModelConfig:
    """The architecture; saved with the weights. The window and layer sizes are command-line options of the
    training stages (``--hidden-layers`` ...); ``num_pdfs`` and ``feat_dim`` come from the data."""

    num_pdfs: int = option(help="output classes (tied HMM states)", cli=False)
    feat_dim: int = option(40, help="features per frame", cli=False)
    left_context: int = option(20, help="past frames in the window (paper: 20)")
    right_context: int = option(5, help="future frames in the window (paper: 5)")
    hidden_layers: int = option(8, help="hidden ReLU layers (paper: 8)")
    hidden_dim: int = option(2560, help="units per hidden layer (paper: 2560)")

    @property
    def window(self) -> int:
        return self.left_context + 1 + self.right_context

    @property
    def input_dim(self) -> int:
        return self.window * self.feat_dim


class AcousticDNN(nn.Module):
    """Feed-forward ReLU network; ``forward`` takes ``(B, window * feat_dim)`` and returns logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        d = config.input_dim
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(d, config.hidden_dim), nn.ReLU()]
            d = config.hidden_dim
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(d, config.num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_model(path: str | os.PathLike, model: AcousticDNN) -> None:
    """Weights + config in one file, loadable with ``torch.load(weights_only=True)``."""
    from asr_base.io import save_torch

    save_torch(path, {"config": asdict(model.config),
                      "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AcousticDNN:
    state = torch.load(path, map_location=map_location, weights_only=True)
    model = AcousticDNN(ModelConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model


class StackedDNN(nn.Module):
    """``M`` independent :class:`AcousticDNN` members of one architecture evaluated as one batched model.

    Layer ``l`` holds ``weights[l]`` of shape ``(M, in, out)`` and ``biases[l]`` ``(M, out)``; a forward
    pass is one batched matmul per layer for all members. The members never interact: the gradient of a
    sum of per-member losses reaches each member's slice only, so training the stack trains ``M`` models.
    Used for teacher ensembles (training and inference) and for the distillation sweep (one student per
    temperature).
    """

    def __init__(self, config: ModelConfig, num_members: int):
        super().__init__()
        self.config = config
        self.num_members = num_members
        dims = [config.input_dim] + [config.hidden_dim] * config.hidden_layers + [config.num_pdfs]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(num_members, a, b)) for a, b in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(num_members, b)) for b in dims[1:]])

    @classmethod
    def from_members(cls, members: list[AcousticDNN]) -> "StackedDNN":
        config = members[0].config
        if any(m.config != config for m in members):
            raise ValueError("all stacked members must share one ModelConfig")
        stack = cls(config, len(members))
        linears = [[m for m in member.modules() if isinstance(m, nn.Linear)] for member in members]
        with torch.no_grad():
            for layer in range(len(stack.weights)):
                stack.weights[layer].copy_(torch.stack([lin[layer].weight.t() for lin in linears]))
                stack.biases[layer].copy_(torch.stack([lin[layer].bias for lin in linears]))
        return stack

    @classmethod
    def init_from_seeds(cls, config: ModelConfig, seeds: list[int]) -> "StackedDNN":
        """Member ``i`` starts exactly as ``AcousticDNN(config)`` created after ``torch.manual_seed(seeds[i])``."""
        members = []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                members.append(AcousticDNN(config))
        return cls.from_members(members)

    def member(self, i: int) -> AcousticDNN:
        model = AcousticDNN(self.config)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[i].t())
                lin.bias.copy_(b[i])
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, D)`` shared by all members or ``(M, B, D)`` one batch per member -> ``(M, B, P)``."""
        h = x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if h.dim() == 2:
                h = torch.matmul(h, w) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], h, w)
            if layer < last:
                h = torch.relu(h)
        return h

    def flops_per_frame(self) -> int:
        """Multiply-adds x 2 of one forward pass of one member for one frame."""
        return 2 * sum(w.shape[1] * w.shape[2] for w in self.weights)
