"""Loss values and gradients against hand-computed cases; T^2 scaling; the high-T logit-matching limit."""

from __future__ import annotations

import math

import pytest
import torch

from asr_kd.nn.losses import distillation_loss, frame_correct, hard_ce, logit_matching, soft_ce, zero_mean



@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _softmax(v, t=1.0):
    e = [math.exp(x / t) for x in v]
    s = sum(e)
    return [x / s for x in e]


def test_hard_ce_value_and_gradient():
    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([2, 0])
    loss = hard_ce(z, y)
    expected = (-math.log(math.exp(3) / (math.e + math.e ** 2 + math.e ** 3)) + math.log(3)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    q0 = _softmax([1, 2, 3])
    assert z.grad[0].tolist() == pytest.approx([q0[0] / 2, q0[1] / 2, (q0[2] - 1) / 2], rel=1e-12)
    assert z.grad[1].tolist() == pytest.approx([(1 / 3 - 1) / 2, 1 / 6, 1 / 6], rel=1e-12)


def test_hard_ce_skips_unlabelled_frames_but_counts_them():
    """A transfer set's frames (label -1) add nothing and get no gradient; the mean is over all frames, so a
    labelled frame weighs the same whatever the share of unlabelled ones."""
    z = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = hard_ce(z, torch.tensor([2, -1, 0]))
    labelled = hard_ce(z[[0, 2]].detach(), torch.tensor([2, 0]))
    assert loss.item() == pytest.approx(labelled.item() * 2 / 3, rel=1e-12)
    loss.backward()
    assert z.grad[1].abs().max().item() == 0.0 and z.grad[0].abs().max().item() > 0
    stacked = hard_ce(torch.zeros(2, 4, 3), torch.tensor([-1, -1, 1, 2]))  # (M, B, P) with (B,) labels
    assert stacked.tolist() == pytest.approx([math.log(3) / 2] * 2, rel=1e-12)


def test_soft_ce_value_and_gradient_at_temperature():
    t = 2.0
    z = torch.tensor([[1.0, -1.0, 0.5]], requires_grad=True)
    p = torch.tensor([[0.7, 0.2, 0.1]])
    loss = soft_ce(z, p, t)
    q = _softmax([1.0, -1.0, 0.5], t)
    expected = t * t * -sum(pi * math.log(qi) for pi, qi in zip([0.7, 0.2, 0.1], q))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    # d/dz [T^2 CE(p, softmax(z/T))] = T (q - p)
    assert z.grad[0].tolist() == pytest.approx([t * (qi - pi) for qi, pi in zip(q, [0.7, 0.2, 0.1])], rel=1e-12)


def test_distillation_loss_combines_soft_and_weighted_hard():
    torch.manual_seed(0)
    z = torch.randn(5, 7)
    p = torch.softmax(torch.randn(5, 7), -1)
    y = torch.randint(7, (5,))
    full = distillation_loss(z, p, y, 5.0, hard_weight=0.5)
    assert full.item() == pytest.approx((soft_ce(z, p, 5.0) + 0.5 * hard_ce(z, y)).item(), rel=1e-12)
    assert distillation_loss(z, p, y, 5.0, hard_weight=0.0).item() == pytest.approx(soft_ce(z, p, 5.0).item())
    # soft targets equal to one-hot labels at T = 1 give exactly the hard CE
    assert soft_ce(z, torch.nn.functional.one_hot(y, 7).double(), 1.0).item() == pytest.approx(hard_ce(z, y).item())


def test_stacked_members_with_one_temperature_each():
    torch.manual_seed(1)
    z = torch.randn(3, 4, 6)
    p = torch.softmax(torch.randn(3, 4, 6), -1)
    y = torch.randint(6, (1, 4))
    temps = torch.tensor([1.0, 2.0, 10.0])
    stacked = distillation_loss(z, p, y, temps, 0.5)
    assert stacked.shape == (3,)
    for m, t in enumerate(temps.tolist()):
        assert stacked[m].item() == pytest.approx(distillation_loss(z[m], p[m], y[0], t, 0.5).item(), rel=1e-12)
    assert frame_correct(z, y).tolist() == [(z[m].argmax(-1) == y[0]).sum().item() for m in range(3)]


def test_logit_matching_value_and_gradient():
    z = torch.tensor([[1.0, 2.0, 6.0]], requires_grad=True)
    v = torch.tensor([[0.0, 1.0, 2.0]])
    loss = logit_matching(z, v)
    zc, vc = [-2.0, -1.0, 3.0], [-1.0, 0.0, 1.0]
    assert loss.item() == pytest.approx(0.5 * sum((a - b) ** 2 for a, b in zip(zc, vc)) / 3, rel=1e-12)
    loss.backward()
    assert z.grad[0].tolist() == pytest.approx([(a - b) / 3 for a, b in zip(zc, vc)], rel=1e-12)


def _soft_grad(z, v, t, scaled=True):
    z = z.clone().requires_grad_(True)
    loss = soft_ce(z, torch.softmax(v / t, -1), t)
    if not scaled:
        loss = loss / (t * t)
    loss.backward()
    return z.grad


def test_t_squared_keeps_soft_gradient_magnitude_across_temperatures():
    torch.manual_seed(2)
    z, v = zero_mean(torch.randn(8, 50)), zero_mean(torch.randn(8, 50))
    n10, n20 = _soft_grad(z, v, 10.0).norm(), _soft_grad(z, v, 20.0).norm()
    u10, u20 = _soft_grad(z, v, 10.0, False).norm(), _soft_grad(z, v, 20.0, False).norm()
    assert (n10 / n20).item() == pytest.approx(1.0, abs=0.02)  # with T^2: same size
    assert (u10 / u20).item() == pytest.approx(4.0, rel=0.02)  # without: shrinks as 1 / T^2


def test_high_temperature_limit_is_logit_matching():
    """Paper eq. (section 2.1): for zero-mean logits, dC/dz_i -> (z_i - v_i) / (N T^2) as T grows."""
    torch.manual_seed(3)
    z, v = zero_mean(torch.randn(6, 40)), zero_mean(torch.randn(6, 40))
    zl = z.clone().requires_grad_(True)
    logit_matching(zl, v).backward()
    target = zl.grad
    errors = [((_soft_grad(z, v, t) - target).norm() / target.norm()).item() for t in (1.0, 5.0, 20.0, 100.0)]
    assert all(a > b for a, b in zip(errors, errors[1:]))  # monotone approach
    assert errors[-1] < 0.02 and errors[0] > 0.2


def test_distillation_loss_with_logit_matching_soft_term():
    torch.manual_seed(4)
    z, v = torch.randn(2, 5, 7), zero_mean(torch.randn(5, 7))
    y = torch.randint(7, (1, 5))
    got = distillation_loss(z, v, y, hard_weight=0.25, soft="logit-matching")
    assert got.shape == (2,)
    assert torch.allclose(got, logit_matching(z, v) + 0.25 * hard_ce(z, y), rtol=1e-12)
    with pytest.raises(ValueError, match="soft loss"):
        distillation_loss(z, v, y, soft="mse")


def test_mean_of_others_by_hand():
    from asr_kd.nn.losses import mean_of_others
    # probs[j, m]: member j's distribution on member m's frame (J = 3 members, M = 3 trained, B = 1, P = 2)
    p = torch.tensor([[[[0.5, 0.5]], [[0.6, 0.4]], [[0.2, 0.8]]],
                      [[[0.8, 0.2]], [[0.1, 0.9]], [[0.3, 0.7]]],
                      [[[0.4, 0.6]], [[0.9, 0.1]], [[0.7, 0.3]]]])
    out = mean_of_others(p, torch.arange(3))
    # member 0: (0.8+0.4)/2, member 1: (0.6+0.9)/2, member 2: (0.2+0.3)/2 on their own frames
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.6, 0.75, 0.25]))
    # one member per process (rank 1 of 3): the others are 0 and 2 on this process's frames
    assert torch.allclose(mean_of_others(p[:, 1:2], torch.tensor([1]))[0, 0], torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError):
        mean_of_others(p[:1], torch.tensor([0]))


def test_codistillation_loss_by_hand():
    import math

    from asr_kd.nn.losses import codistillation_loss
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # q(1) = (1/4, 3/4)
    others = torch.tensor([[[0.8, 0.2]]])
    labels = torch.tensor([1])
    hard = -math.log(0.75)
    soft1 = -(0.8 * math.log(0.25) + 0.2 * math.log(0.75))
    assert codistillation_loss(logits, others, labels, 1.0, 0.5).item() == pytest.approx(hard + 0.5 * soft1, rel=1e-6)
    # T = 2: q(2) = softmax(0, ln3 / 2) = (1, sqrt 3) / (1 + sqrt 3), the soft term scaled by T^2 = 4
    r = math.sqrt(3.0)
    soft2 = -(0.8 * math.log(1 / (1 + r)) + 0.2 * math.log(r / (1 + r)))
    assert codistillation_loss(logits, others, labels, 2.0, 0.5).item() == pytest.approx(hard + 0.5 * 4 * soft2, rel=1e-6)
    assert codistillation_loss(logits, others, labels, 2.0, 0.0).item() == pytest.approx(hard, rel=1e-6)


def test_hint_loss_by_hand():
    from asr_kd.nn.losses import hint_loss
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [2.0, 2.0]])
    # frame 0: 0.5 * (0 + 4) / 2 = 1; frame 1: 0.5 * (4 + 4) / 2 = 2; mean 1.5
    assert hint_loss(s, t).item() == pytest.approx(1.5)
    assert hint_loss(torch.stack([s, t]), torch.stack([t, t])).tolist() == pytest.approx([1.5, 0.0])
