"""FrameSplit (device split + labels) and FrameSampler (uniform random, deterministic, resumable)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from asr_kd.nn.context_window import splice
from asr_kd.training.frame_data import FrameSampler, FrameSplit




@pytest.fixture
def split(make_corpus, tmp_path):
    feats, labels = make_corpus(tmp_path / "train", num_utts=10)
    return FrameSplit.load(feats, labels, num_pdfs=12)


def test_load_excludes_unlabelled_frames(split):
    lab = split.labels
    assert split.feats.dtype == torch.float16
    assert split.num_usable == int((lab >= 0).sum()) < lab.numel()
    assert bool((lab[split.usable] >= 0).all())


def test_windows_match_splice(split):
    idx = split.usable[:7]
    x = split.windows(idx, 2, 1)
    ref = splice(split.feats, split.starts, split.lengths, idx, 2, 1).float()
    assert x.dtype == torch.float32 and torch.equal(x, ref)
    x2 = split.windows(torch.stack([idx, idx]), 2, 1)
    assert x2.shape == (2, 7, 4 * 8) and torch.equal(x2[1], ref)


def test_with_unlabelled_appends_a_transfer_set(split, make_corpus, tmp_path):
    feats, _ = make_corpus(tmp_path / "unlab", num_utts=4, seed=5)
    extra = FrameSplit.load(feats)  # no labels: every frame usable
    both = split.with_unlabelled(extra)
    n, m = split.feats.shape[0], extra.feats.shape[0]
    assert both.feats.shape[0] == n + m and both.num_usable == split.num_usable + m
    assert torch.equal(both.usable[: split.num_usable], split.usable)
    assert bool((both.targets(both.usable[split.num_usable :]) == -1).all())
    assert torch.equal(both.targets(split.usable), split.targets(split.usable))
    # context windows stay inside each utterance: the appended frames see only their own store's frames
    assert torch.equal(both.windows(split.usable, 2, 1), split.windows(split.usable, 2, 1))
    assert torch.equal(both.windows(torch.arange(n, n + m), 2, 1), extra.windows(torch.arange(m), 2, 1))
    short, _ = make_corpus(tmp_path / "other_dim", num_utts=2, seed=6, dim=5)
    with pytest.raises(ValueError, match="5-dim"):
        split.with_unlabelled(FrameSplit.load(short))


def test_bad_labels_give_clear_errors(make_corpus, tmp_path):
    feats, labels = make_corpus(tmp_path / "c", num_utts=3)
    lab = np.load(labels)
    np.save(tmp_path / "short.npy", lab[:-1])
    with pytest.raises(ValueError, match="does not match"):
        FrameSplit.load(feats, tmp_path / "short.npy")
    with pytest.raises(ValueError, match="num_pdfs"):
        FrameSplit.load(feats, labels, num_pdfs=3)
    np.save(tmp_path / "none.npy", np.full_like(lab, -1))
    with pytest.raises(ValueError, match="no usable"):
        FrameSplit.load(feats, tmp_path / "none.npy")


def test_sampler_covers_each_frame_once_per_epoch_and_is_deterministic(split):
    s = FrameSampler([split.usable], [5], batch_size=16)
    epoch0 = torch.cat([s.batch(0, i)[0] for i in range(s.steps_per_epoch)])
    assert epoch0.numel() == s.steps_per_epoch * 16
    assert epoch0.unique().numel() == epoch0.numel()  # without replacement
    assert bool(torch.isin(epoch0, split.usable).all())  # never an unlabelled frame
    again = FrameSampler([split.usable], [5], batch_size=16)
    assert torch.equal(again.batch(0, 3), s.batch(0, 3))  # pure function of (seed, epoch, step)
    assert not torch.equal(s.batch(1, 0), s.batch(0, 0))
    assert not torch.equal(FrameSampler([split.usable], [6], 16).batch(0, 0), s.batch(0, 0))
    # not utterance by utterance: a batch spans many utterances
    utt = torch.searchsorted(split.starts, s.batch(0, 0)[0], right=True)
    assert utt.unique().numel() > 3


def test_sampler_passes_make_a_long_epoch_of_whole_passes(split):
    """passes=3: an epoch is three passes over the pool, each pass covering every frame once before the next;
    passes=1 is the plain sampler, frame for frame."""
    n = split.usable.numel()
    s = FrameSampler([split.usable], [5], batch_size=16, passes=3)
    assert s.steps_per_epoch == 3 * n // 16
    order = torch.cat([s.batch(0, i)[0] for i in range(s.steps_per_epoch)])
    for k in range(2):  # the first two passes are whole
        assert torch.equal(order[k * n:(k + 1) * n].sort().values, split.usable.sort().values)
    assert not torch.equal(order[:n], order[n:2 * n])  # a new permutation each pass
    capped = FrameSampler([split.usable], [5], batch_size=16, epoch_frames=n + 32, passes=3)
    assert capped.steps_per_epoch == (n + 32) // 16
    one = FrameSampler([split.usable], [5], batch_size=16, passes=1)
    plain = FrameSampler([split.usable], [5], batch_size=16)
    assert all(torch.equal(one.batch(1, i), plain.batch(1, i)) for i in range(plain.steps_per_epoch))
    with pytest.raises(ValueError, match="passes"):
        FrameSampler([split.usable], [5], batch_size=16, passes=0)


def test_sampler_ranks_partition_the_global_batch(split):
    full = FrameSampler([split.usable, split.usable], [1, 2], batch_size=8)
    r0 = FrameSampler([split.usable, split.usable], [1, 2], batch_size=8, rank=0, world=2)
    r1 = FrameSampler([split.usable, split.usable], [1, 2], batch_size=8, rank=1, world=2)
    assert torch.equal(torch.cat([r0.batch(2, 1), r1.batch(2, 1)], dim=1), full.batch(2, 1))
    with pytest.raises(ValueError):
        FrameSampler([split.usable], [1], batch_size=7, world=2)


def test_subset_and_shards(split):
    sub = split.utterance_subset(0.3, seed=0)
    assert 0 < sub.num_usable < split.num_usable
    assert bool(torch.isin(sub.usable, split.usable).all())
    shards = [split.shard(i, 2) for i in range(2)]
    both = torch.cat([s.usable for s in shards]).sort().values
    assert torch.equal(both, split.usable)
