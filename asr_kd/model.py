"""The DNN acoustic model: a context window of fbank frames -> logits over tied HMM states.

Paper defaults: 26 frames x 40 log-mel (20 past, 5 future), 8 hidden layers x 2560 ReLU, softmax over
~14,000 tied states (~85M parameters).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    num_pdfs: int
    feat_dim: int = 40
    left_context: int = 20
    right_context: int = 5
    hidden_layers: int = 8
    hidden_dim: int = 2560

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
    from asr_kd.io_utils import atomic_path

    state = {"config": asdict(model.config), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AcousticDNN:
    state = torch.load(path, map_location=map_location, weights_only=True)
    model = AcousticDNN(ModelConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model
