"""Input perturbation: SpecAugment-style frequency masks and Gaussian noise, reproducible per step."""

from __future__ import annotations

import pytest
import torch

from asr_kd.training.augment import perturb, step_generator

CPU = torch.device("cpu")


def windows(batch=64, frames=5, dim=8):
    return torch.randn(batch, frames * dim, generator=torch.Generator().manual_seed(0)) + 3.0


def test_off_returns_the_input_itself():
    x = windows()
    assert perturb(x, 8, 0.0, 0, step_generator(1, 0, CPU)) is x


def test_frequency_mask_is_one_band_of_channels_shared_by_every_frame():
    x = windows(batch=400)
    y = perturb(x, 8, 0.0, 3, step_generator(1, 0, CPU))
    zeroed = (y == 0).reshape(400, 5, 8)
    assert torch.equal(zeroed, zeroed[:, :1].expand_as(zeroed))  # same channels in every frame
    band = zeroed[:, 0]
    widths = band.sum(-1)
    assert widths.max() == 3 and widths.min() == 0 and len(set(widths.tolist())) == 4  # every width 0..3
    for row in band[widths > 0]:  # consecutive channels
        on = row.nonzero().flatten()
        assert torch.equal(on, torch.arange(on[0], on[0] + on.numel()))
    assert set(band.nonzero()[:, 1].tolist()) == set(range(8))  # the band reaches every channel
    assert torch.equal(y[~(y == 0)], x[~(y == 0)])  # the rest is untouched


def test_noise_has_the_requested_scale_and_keeps_the_stacked_shape():
    x = torch.zeros(3, 2000, 40)
    y = perturb(x, 8, 0.5, 0, step_generator(1, 0, CPU))
    assert y.shape == x.shape and y.std().item() == pytest.approx(0.5, rel=0.02)


def test_draws_are_a_function_of_seed_and_step():
    x = windows()
    a = perturb(x, 8, 0.3, 4, step_generator(5, 17, CPU))
    assert torch.equal(a, perturb(x, 8, 0.3, 4, step_generator(5, 17, CPU)))
    assert not torch.equal(a, perturb(x, 8, 0.3, 4, step_generator(5, 18, CPU)))
    assert not torch.equal(a, perturb(x, 8, 0.3, 4, step_generator(6, 17, CPU)))


@pytest.mark.parametrize("noise, mask, dim, match", [(-0.1, 0, 8, ">= 0"), (0.0, 9, 8, "exceeds"),
                                                    (0.1, 0, 7, "whole number")])
def test_bad_settings_are_clear_errors(noise, mask, dim, match):
    with pytest.raises(ValueError, match=match):
        perturb(windows(), dim, noise, mask, step_generator(1, 0, CPU))
