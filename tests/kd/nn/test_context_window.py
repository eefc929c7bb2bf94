"""Context-window gather (asr_kd.nn.context_window.splice) against a naive per-window reference."""

import numpy as np
import pytest
import torch

from asr_kd.nn.context_window import splice, utterance_bounds
from data_prep.features.store import write_store


def naive_splice(feats: np.ndarray, lengths, frame_idx, left: int, right: int) -> np.ndarray:
    """Reference: find the utterance of each frame by walking the lengths, copy frame by frame."""
    out = []
    for t in frame_idx:
        s = 0
        for n in lengths:
            if s <= t < s + n:
                break
            s += n
        rows = []
        for o in range(-left, right + 1):
            r = min(max(t + o, s), s + n - 1)
            rows.append(feats[r])
        out.append(np.concatenate(rows))
    return np.stack(out)


def _split(lengths, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((sum(lengths), dim)).astype(np.float32)
    lengths_t = torch.tensor(lengths, dtype=torch.int64)
    starts_t = torch.cumsum(lengths_t, 0) - lengths_t
    return feats, starts_t, lengths_t


@pytest.mark.parametrize("left,right", [(20, 5), (2, 2), (0, 3), (4, 0), (0, 0), (7, 1)])
def test_matches_naive_reference(left, right):
    lengths = [1, 2, 9, 30, 4, 25]
    feats, starts, lens = _split(lengths)
    idx = np.arange(sum(lengths))  # every frame, incl. both edges of every utterance
    got = splice(torch.from_numpy(feats), starts, lens, torch.from_numpy(idx), left=left, right=right)
    want = naive_splice(feats, lengths, idx, left, right)
    assert got.shape == (len(idx), (left + 1 + right) * feats.shape[1])
    np.testing.assert_array_equal(got.numpy(), want)


def test_default_window_is_26_frames_with_target_at_index_20():
    lengths = [40, 40]
    dim = 2
    # frame value = global row number, so every gathered row can be read back
    feats = np.repeat(np.arange(80, dtype=np.float32)[:, None], dim, axis=1)
    starts = torch.tensor([0, 40])
    lens = torch.tensor(lengths)
    idx = torch.tensor([30, 45, 79])
    win = splice(torch.from_numpy(feats), starts, lens, idx).reshape(3, 26, dim)[..., 0]
    assert win.shape == (3, 26)
    np.testing.assert_array_equal(win[:, 20].numpy(), [30, 45, 79])  # target = 21st frame
    np.testing.assert_array_equal(win[0].numpy(), np.arange(10, 36))  # fully inside utterance 0
    # frame 45 is row 5 of utterance 1: 15 left-context rows replicate its first frame (40)
    np.testing.assert_array_equal(win[1, :16].numpy(), np.full(16, 40))
    np.testing.assert_array_equal(win[1, 16:].numpy(), np.arange(41, 51))
    # last frame of the split: future context replicates it
    np.testing.assert_array_equal(win[2, 20:].numpy(), np.full(6, 79))


def test_edges_never_leak_into_neighbouring_utterances():
    lengths = [5, 5, 5]
    feats = np.repeat(np.repeat(np.arange(3, dtype=np.float32), 5)[:, None], 4, axis=1)  # value = utt number
    starts = torch.tensor([0, 5, 10])
    lens = torch.tensor(lengths)
    idx = torch.arange(15)
    win = splice(torch.from_numpy(feats), starts, lens, idx, left=6, right=6)
    utt_of_frame = np.repeat(np.arange(3), 5)
    assert (win.numpy() == utt_of_frame[:, None]).all()


def test_utterance_bounds_with_offsets():
    starts = torch.tensor([0, 3, 10, 11])
    lengths = torch.tensor([3, 7, 1, 4])
    first, last = utterance_bounds(starts, lengths, torch.tensor([0, 2, 3, 9, 10, 11, 14]))
    assert first.tolist() == [0, 0, 3, 3, 10, 11, 11]
    assert last.tolist() == [2, 2, 9, 9, 10, 14, 14]


def test_float16_store_on_cpu(tmp_path):
    lengths = [12, 3, 20]
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((sum(lengths), 40)).astype(np.float16)
    store = write_store(tmp_path / "s", feats, ["a", "b", "c"], lengths, ["x", "x", "y"])
    all_feats = torch.from_numpy(np.array(store.feats))  # copy the read-only memmap into RAM
    assert all_feats.dtype == torch.float16
    starts = torch.from_numpy(store.starts)
    lens = torch.from_numpy(store.lengths)
    idx = torch.tensor([0, 11, 12, 14, 15, 34], dtype=torch.int32)  # int32 indices are accepted
    got = splice(all_feats, starts, lens, idx)
    assert got.dtype == torch.float16 and got.shape == (6, 26 * 40)
    want = naive_splice(np.asarray(store.feats), lengths, idx.tolist(), 20, 5)
    np.testing.assert_array_equal(got.numpy(), want)


def test_random_batches_match_reference():
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 60, size=50).tolist()
    feats, starts, lens = _split(lengths, dim=5, seed=3)
    idx = rng.integers(0, sum(lengths), size=300)
    got = splice(torch.from_numpy(feats), starts, lens, torch.from_numpy(idx), left=11, right=4)
    np.testing.assert_array_equal(got.numpy(), naive_splice(feats, lengths, idx, 11, 4))


def test_negative_context_rejected():
    feats, starts, lens = _split([5])
    with pytest.raises(ValueError):
        splice(torch.from_numpy(feats), starts, lens, torch.tensor([0]), left=-1, right=2)
