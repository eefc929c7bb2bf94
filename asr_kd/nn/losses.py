"""Distillation losses (paper section 2), written for stacks of models.

Every loss takes logits shaped ``(..., B, P)`` (any leading "member" dimensions, e.g. one student per
temperature) and returns the mean over the ``B`` frames, keeping the leading dimensions: a plain
``(B, P)`` batch gives a scalar, a stack ``(M, B, P)`` gives ``(M,)`` per-member losses.

- hard CE: ``CE(y, softmax(z))``
- soft CE at temperature ``T``: ``T^2 * CE(p_teacher(T), softmax(z / T))`` -- the ``T^2`` keeps the size of
  its gradient (which scales as ``1 / T^2``) comparable across temperatures and with the hard term
- logit matching: ``0.5 * mean_i (z_i - v_i)^2`` over classes on zero-mean logits; its gradient
  ``(z_i - v_i) / P`` is the high-temperature limit of the (``T^2``-scaled) soft CE gradient.
- distillation: ``soft + hard_weight * hard`` from the same student logits (paper: weight 0.5), where
  ``soft`` is the soft CE or logit matching: :func:`distillation_loss`, the one KD objective every
  training stage calls.
- codistillation (Anil et al. 2018): ``CE(y, q(1)) + alpha * distillation_loss(soft only)`` towards the
  mean of the *other* members' distributions (:func:`mean_of_others`, :func:`codistillation_loss`).
- FitNets hint (Romero et al. 2015): squared error between a teacher hidden layer and a regressed student
  hidden layer (:func:`hint_loss`).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

SoftLoss = Literal["ce", "logit-matching"]
SOFT_LOSSES = get_args(SoftLoss)


def _as_temperature(temperature: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(temperature, torch.Tensor):
        t = temperature.to(device=like.device, dtype=like.dtype)
        # one temperature per leading member: (M,) -> (M, 1, 1)
        return t.reshape(t.shape + (1,) * (like.dim() - t.dim()))
    return float(temperature)


def hard_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with hard labels; ``labels`` broadcast to ``logits.shape[:-1]`` (int64 class ids).

    Frames labelled -1 (an unlabelled transfer set, :meth:`FrameSplit.with_unlabelled`) add 0 but still count
    in the mean over frames: each labelled frame weighs the same whatever the share of unlabelled ones."""
    labels = labels.expand(logits.shape[:-1])
    known = labels >= 0
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(known, nll, torch.zeros_like(nll)).mean(dim=-1)


def soft_ce(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """``T^2 * CE(teacher_probs, softmax(logits / T))``, mean over frames.

    ``teacher_probs`` (the ensemble distribution at the same ``T``) broadcasts against ``logits``;
    ``temperature`` is a float or one value per leading member.
    """
    t = _as_temperature(temperature, logits)
    log_q = torch.log_softmax(logits / t, dim=-1)
    ce = -(teacher_probs * log_q).sum(dim=-1).mean(dim=-1)
    t2 = t * t if isinstance(t, float) else (t * t).reshape(ce.shape)
    return t2 * ce


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                      temperature: float | torch.Tensor = 1.0, hard_weight: float = 0.5,
                      soft: SoftLoss = "ce") -> torch.Tensor:
    """``soft + hard_weight * CE(y, q(1))`` per leading member (``hard_weight = 0``: soft targets only).

    ``soft="ce"``: ``teacher`` is the ensemble distribution at ``temperature`` and the soft term is
    ``T^2 * CE(p_teacher(T), q(T))`` (``temperature``: a float or one value per leading member).
    ``soft="logit-matching"``: ``teacher`` is the zero-mean teacher logits and the soft term is
    :func:`logit_matching` (``temperature`` unused: the high-temperature limit).
    """
    if soft == "ce":
        loss = soft_ce(logits, teacher, temperature)
    elif soft == "logit-matching":
        loss = logit_matching(logits, teacher)
    else:
        raise ValueError(f"unknown soft loss {soft!r}; choose from {SOFT_LOSSES}")
    if hard_weight:
        loss = loss + hard_weight * hard_ce(logits, labels)
    return loss


def zero_mean(logits: torch.Tensor) -> torch.Tensor:
    return logits - logits.mean(dim=-1, keepdim=True)


def logit_matching(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``0.5 * mean over classes of (zbar - vbar)^2``, mean over frames (zbar, vbar: zero-mean logits).

    ``teacher_logits`` should already be zero-mean per teacher (for an ensemble: the mean of the members'
    zero-mean logits); it is centred again here, which is a no-op in that case.
    """
    diff = zero_mean(logits) - zero_mean(teacher_logits)
    return 0.5 * diff.pow(2).mean(dim=-1).mean(dim=-1)


def frame_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of frames whose argmax is the label, per leading member."""
    return (logits.argmax(dim=-1) == labels).sum(dim=-1)


def mean_of_others(probs: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """The mean over the *other* members of their distributions on each member's frames.

    ``probs`` ``(J, M, B, P)``: member ``j``'s distribution on the frames of trained member ``m``;
    ``own`` ``(M,)``: the index ``j`` of trained member ``m`` itself (stacked run: ``arange(M)``; one member
    per process: ``[rank]``). Returns ``(M, B, P)``: ``(sum_j probs[j, m] - probs[own[m], m]) / (J - 1)``.
    """
    j = probs.shape[0]
    if j < 2:
        raise ValueError("codistillation needs at least two members")
    own = own.to(probs.device)
    mine = probs[own, torch.arange(probs.shape[1], device=probs.device)]
    return (probs.sum(dim=0) - mine) / (j - 1)


def codistillation_loss(logits: torch.Tensor, others: torch.Tensor, labels: torch.Tensor,
                        temperature: float | torch.Tensor = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """``CE(y, q(1)) + alpha * T^2 * CE(others(T), q(T))`` per member (``others``: :func:`mean_of_others`
    of the members' distributions at ``T``); the soft term is :func:`distillation_loss` with no hard part."""
    loss = hard_ce(logits, labels)
    if alpha:
        loss = loss + alpha * distillation_loss(logits, others, labels, temperature, hard_weight=0.0)
    return loss


def hint_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss ``0.5 * ||u_h(x) - r(v_g(x))||^2`` per frame, divided by the teacher layer's width
    (a constant factor, so one learning rate suits any width), mean over frames.

    ``student_hint``: the regressor's output ``r(v_g(x))`` ``(..., B, H)``; ``teacher_hint``: the teacher's
    hint layer ``u_h(x)`` of the same shape.
    """
    return 0.5 * (student_hint - teacher_hint).pow(2).mean(dim=-1).mean(dim=-1)
