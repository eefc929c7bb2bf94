"""Input perturbation of the training windows, shared by the model and its objective.

The trainer perturbs each batch of context windows *before* the forward pass, and the objective receives
the same perturbed windows: in distillation the teachers score exactly the input the student sees
("consistent" augmentation, as in Beyer et al. 2022, *Knowledge distillation: a good teacher is patient and
consistent*), so the soft targets stay the ensemble's function on every perturbed point, while the hard
label is kept. Two perturbations of the CMVN'd fbank windows, both off by default:

- ``--input-noise S``: add N(0, S^2) to every value (the features have roughly unit variance);
- ``--freq-mask F``: SpecAugment's frequency mask (Park et al. 2019) on a window: a band of ``f ~ U{0..F}``
  consecutive channels, the same band in every frame of the window, set to 0 (the CMVN mean).

The random draws come from a generator seeded by (``--seed``, global step) on the training device, so a
run resumed from a checkpoint perturbs exactly as an uninterrupted one. Dev and test are never perturbed.
"""

from __future__ import annotations

import torch


def step_generator(seed: int, global_step: int, device: torch.device) -> torch.Generator:
    """The generator of one training step: a pure function of the seed and the step."""
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + global_step) % (2**63))


def perturb(x: torch.Tensor, feat_dim: int, noise_std: float, freq_mask: int,
            generator: torch.Generator) -> torch.Tensor:
    """Perturbed copy of windows ``x`` shaped ``(..., window * feat_dim)`` (``x`` itself when both are off)."""
    if noise_std < 0 or freq_mask < 0:
        raise ValueError(f"input noise ({noise_std}) and frequency-mask width ({freq_mask}) must be >= 0")
    if freq_mask > feat_dim:
        raise ValueError(f"frequency-mask width {freq_mask} exceeds the {feat_dim} feature channels")
    if not noise_std and not freq_mask:
        return x
    if x.shape[-1] % feat_dim:
        raise ValueError(f"window of {x.shape[-1]} values is not a whole number of {feat_dim}-dim frames")
    if noise_std:
        x = x + noise_std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if freq_mask:
        lead = x.shape[:-1]
        width = torch.randint(0, freq_mask + 1, lead + (1,), generator=generator, device=x.device)
        start = (torch.rand(lead + (1,), generator=generator, device=x.device) * (feat_dim - width + 1)).long()
        channel = torch.arange(feat_dim, device=x.device)
        keep = ((channel < start) | (channel >= start + width)).to(x.dtype)  # (..., D)
        x = (x.reshape(lead + (-1, feat_dim)) * keep.unsqueeze(-2)).reshape(x.shape)
    return x
