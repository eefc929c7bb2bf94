"""The DNN acoustic model: a context window of fbank frames -> logits over tied HMM states.

Paper defaults: 26 frames x 40 log-mel (20 past, 5 future), 8 hidden layers x 2560 ReLU, softmax over
~14,000 tied states (~85M parameters).

Initialisation (:func:`init_linear`, the same for :class:`AcousticDNN` and every member of a
:class:`StackedDNN`):

- hidden layers: He/Kaiming normal, fan-in, ReLU gain (``std = sqrt(2 / fan_in)``). A ReLU halves the second
  moment of a zero-mean pre-activation, the gain 2 restores it, so the RMS of the activations stays constant
  from layer to layer at any depth. PyTorch's default ``nn.Linear`` init (uniform, ``std = 1 / sqrt(3 fan_in)``)
  shrinks it ~2.4x per ReLU layer: through the paper's 8 layers the input-dependent part of the logits is
  ~1e-4 of the class-dependent part at step 0 and training stalls (issue 12);
- output layer: LeCun normal, fan-in, gain 1 (``std = 1 / sqrt(fan_in)``): with unit-RMS hidden activations
  the initial logits have unit scale -- input-dependent from step 0, yet small enough that the initial
  softmax is spread over all classes (initial CE ~ ``log(num_pdfs) + 0.5``); a zero output layer would
  block the gradient of every hidden layer on the first step and start all members of an ensemble from
  the same logits;
- biases: zero (the inputs are CMVN-normalised fbanks, so no layer needs an offset at start).

Saved models carry their weights, so loading one (:func:`load_model`) is unaffected by the init.
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


def init_linear(weight: torch.Tensor, bias: torch.Tensor, output: bool, fan_in: int) -> None:
    """Initialise one layer in place (see the module docstring): He fan-in for hidden layers, LeCun fan-in
    for the output layer, zero bias. ``weight`` may be ``(out, in)`` (``nn.Linear``) or a stack; ``fan_in``
    is given explicitly so both layouts draw the same distribution."""
    std = (1.0 if output else 2.0) ** 0.5 / fan_in ** 0.5
    with torch.no_grad():
        weight.normal_(0.0, std)
        bias.zero_()


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
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init of the hidden layers, LeCun init of the output layer, zero biases (module docstring)."""
        for lin in self.linears():
            init_linear(lin.weight, lin.bias, lin is self.output, lin.in_features)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

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

    def __init__(self, config: ModelConfig, num_members: int, init: bool = True):
        """``init``: draw fresh weights (the members' init, module docstring); ``False`` leaves them
        uninitialised for a caller that fills them (:meth:`from_members`, a checkpoint)."""
        super().__init__()
        self.config = config
        self.num_members = num_members
        dims = [config.input_dim] + [config.hidden_dim] * config.hidden_layers + [config.num_pdfs]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(num_members, a, b)) for a, b in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(num_members, b)) for b in dims[1:]])
        if init:
            last = len(self.weights) - 1
            for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
                init_linear(w, b, layer == last, w.shape[1])

    @classmethod
    def from_members(cls, members: list[AcousticDNN]) -> "StackedDNN":
        config = members[0].config
        if any(m.config != config for m in members):
            raise ValueError("all stacked members must share one ModelConfig")
        stack = cls(config, len(members), init=False)
        linears = [member.linears() for member in members]
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
        linears = model.linears()
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[i].t())
                lin.bias.copy_(b[i])
        return model

    def forward(self, x: torch.Tensor, dropout: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x``: ``(B, D)`` shared by all members or ``(M, B, D)`` one batch per member -> ``(M, B, P)``.

        ``dropout`` (training only): each hidden unit's output is zeroed with this probability and the rest
        scaled by ``1 / (1 - dropout)`` (inverted dropout, Srivastava et al. 2014), the masks drawn from
        ``generator`` so that a resumed run draws the same ones."""
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout {dropout} must be in [0, 1)")
        h = x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if h.dim() == 2:
                h = torch.matmul(h, w) + b[:, None, :]
            else:
                h = torch.baddbmm(b[:, None, :], h, w)
            if layer < last:
                h = torch.relu(h)
                if dropout and self.training:
                    keep = torch.rand(h.shape, generator=generator, device=h.device) >= dropout
                    h = h * keep.to(h.dtype) / (1.0 - dropout)
        return h

    def flops_per_frame(self) -> int:
        """Multiply-adds x 2 of one forward pass of one member for one frame."""
        return 2 * sum(w.shape[1] * w.shape[2] for w in self.weights)
