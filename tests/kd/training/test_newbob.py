"""The newbob schedule on its own: accept/reject, halving, early stop, per-member independence."""

from __future__ import annotations

import pytest

from asr_kd.training.newbob import Newbob


def test_schedule_per_member():
    s = Newbob(2, lr=0.1)
    kw = dict(epochs=10, min_epochs=2, halving_start=1.0, halving_stop=0.5)
    assert s.end_epoch([50.0, 50.0], 0, **kw) == [True, True]  # first epoch: a gain over nothing
    assert s.lr.tolist() == [0.1, 0.1] and s.halving == [False, False]
    assert s.end_epoch([55.0, 50.5], 1, **kw) == [True, True]  # member 1 gains < 1.0: start halving
    assert s.lr.tolist() == pytest.approx([0.1, 0.05]) and s.halving == [False, True]
    assert s.end_epoch([54.0, 50.7], 2, **kw) == [False, True]  # member 0 rejected (worse), starts halving
    assert s.lr.tolist() == pytest.approx([0.05, 0.0]) and s.done == [False, True]  # member 1: gain < 0.5, stop
    assert s.stop == [None, "newbob"]
    assert s.best_acc == [55.0, 50.7]
    assert s.end_epoch([60.0, 99.0], 3, **kw) == [True, None]  # a stopped member is left alone
    assert s.best_acc == [60.0, 50.7] and s.lr.tolist() == pytest.approx([0.025, 0.0])
    assert s.end_epoch([61.0, 0.0], 9, **kw) == [True, None] and s.finished  # last epoch stops everyone
    assert s.stop == ["epochs", "newbob"]
    restored = Newbob(2, lr=1.0)
    restored.load_state_dict(s.state_dict())
    assert restored.state_dict()["best_acc"] == s.best_acc and restored.lr.tolist() == s.lr.tolist()
    assert restored.stop == s.stop
    old = {k: v for k, v in s.state_dict().items() if k != "stop"}  # a checkpoint from before "stop" existed
    restored.load_state_dict(old)
    assert restored.stop == [None, None]


def test_keep_lr_epochs_delays_halving():
    kw = dict(epochs=10, min_epochs=2, halving_start=1.0, halving_stop=0.5)
    s = Newbob(1, lr=0.1)
    s.end_epoch([50.0], 0, keep_lr_epochs=3, **kw)
    assert s.end_epoch([49.0], 1, keep_lr_epochs=3, **kw) == [False]  # a noisy epoch: rolled back, rate kept
    assert s.lr.tolist() == [0.1] and s.halving == [False]
    s.end_epoch([50.2], 2, keep_lr_epochs=3, **kw)  # the third epoch is still kept
    assert s.lr.tolist() == [0.1] and s.halving == [False]
    s.end_epoch([50.4], 3, keep_lr_epochs=3, **kw)  # from the fourth on, newbob as usual
    assert s.lr.tolist() == pytest.approx([0.05]) and s.halving == [True]
    plain = Newbob(1, lr=0.1)
    plain.end_epoch([50.0], 0, **kw)
    plain.end_epoch([49.0], 1, **kw)
    assert plain.halving == [True]  # without it the noisy epoch would have started halving


def test_collapsed_epoch_halves_the_rate_even_while_it_is_kept():
    kw = dict(epochs=10, min_epochs=2, halving_start=1.0, halving_stop=0.5, keep_lr_epochs=5)
    s = Newbob(2, lr=0.1)
    s.end_epoch([30.0, 30.0], 0, **kw)
    assert s.collapsed == [False, False]  # nothing to collapse from on the first epoch
    assert s.end_epoch([2.0, 29.0], 1, **kw) == [False, False]  # member 0 predicts one class: collapsed
    assert s.collapsed == [True, False]
    assert s.lr.tolist() == pytest.approx([0.05, 0.1]) and s.halving == [False, False]  # a noisy epoch keeps its rate
    assert s.end_epoch([40.0, 31.0], 2, **kw) == [True, True] and s.collapsed == [False, False]
    assert s.lr.tolist() == pytest.approx([0.05, 0.1])  # no halving every epoch after a collapse
