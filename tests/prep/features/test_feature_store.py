"""Feature store: writer -> open round trip, truncation, atomicity, index checks."""

import numpy as np
import pytest

from data_prep.features.store import (
    FEATS,
    FeatureStore,
    FeatureStoreWriter,
    _truncate_npy,
    read_index,
    write_index,
    write_store,
)


def _utts(lengths, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]


def test_writer_round_trip_and_truncation(tmp_path):
    lengths = [7, 1, 12, 3]
    mats = _utts(lengths)
    root = tmp_path / "store"
    with FeatureStoreWriter(root, dim=4, max_frames=100) as w:  # capacity > frames written
        for i, m in enumerate(mats):
            w.add(f"u{i}", f"s{i % 2}", m)
        store = w.close({"fbank": {"num_mel_bins": 4}, "cmvn": "none"},
                        extra_files={"cmvn.npz": {"stats": np.ones((2, 2, 5))}, "notes.txt": "hello\n"})
    assert store.num_frames == sum(lengths) and store.dim == 4
    assert store.feats.dtype == np.float16 and isinstance(store.feats, np.memmap)
    assert store.utt_ids == ["u0", "u1", "u2", "u3"]
    assert store.speakers == ["s0", "s1", "s0", "s1"]
    np.testing.assert_array_equal(store.starts, [0, 7, 8, 20])
    np.testing.assert_array_equal(store.lengths, lengths)
    for i, m in enumerate(mats):
        np.testing.assert_array_equal(store.utt(f"u{i}"), m.astype(np.float16))
    # the file itself was truncated: an ordinary (non-mmap) load sees exactly the frames written
    full = np.load(root / FEATS)
    assert full.shape == (23, 4)
    assert (root / FEATS).stat().st_size == 128 + 23 * 4 * 2  # 128-byte .npy header + data
    assert store.meta["num_frames"] == 23 and store.meta["num_utts"] == 4 and store.meta["cmvn"] == "none"
    assert (root / "notes.txt").read_text() == "hello\n"
    np.testing.assert_array_equal(np.load(root / "cmvn.npz")["stats"], np.ones((2, 2, 5)))
    assert not (tmp_path / ".store.tmp").exists()


def test_failed_write_leaves_no_store(tmp_path):
    root = tmp_path / "store"
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureStoreWriter(root, dim=4, max_frames=10) as w:
            w.add("u0", "s", np.zeros((3, 4)))
            raise RuntimeError("boom")
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind either


def test_failed_rewrite_keeps_old_store(tmp_path):
    root = tmp_path / "store"
    write_store(root, np.ones((5, 4), np.float16), ["a"], [5], ["s"], {"version": 1})
    with pytest.raises(ValueError, match="capacity"):
        with FeatureStoreWriter(root, dim=4, max_frames=3) as w:
            w.add("b", "s", np.zeros((4, 4)))  # exceeds capacity
    store = FeatureStore.open(root)
    assert store.utt_ids == ["a"] and store.meta["version"] == 1
    np.testing.assert_array_equal(store.feats, np.ones((5, 4)))


def test_leaving_block_without_close_discards(tmp_path):
    root = tmp_path / "store"
    with FeatureStoreWriter(root, dim=2, max_frames=4) as w:
        w.add("a", "s", np.zeros((2, 2)))
    assert not root.exists()


def test_rewrite_replaces_store(tmp_path):
    root = tmp_path / "store"
    write_store(root, np.ones((5, 4), np.float16), ["a"], [5], ["s"])
    store = write_store(root, np.full((3, 4), 2, np.float16), ["b", "c"], [1, 2], ["s", "t"])
    assert store.utt_ids == ["b", "c"] and store.num_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_add_checks_dimension(tmp_path):
    with FeatureStoreWriter(tmp_path / "s", dim=4, max_frames=10) as w:
        with pytest.raises(ValueError, match="expected"):
            w.add("a", "s", np.zeros((3, 5)))


def test_empty_store(tmp_path):
    with FeatureStoreWriter(tmp_path / "s", dim=3, max_frames=0) as w:
        store = w.close({})
    assert store.num_frames == 0 and store.utt_ids == [] and store.feats.shape == (0, 3)


def test_open_rejects_inconsistent_index(tmp_path):
    root = tmp_path / "store"
    write_store(root, np.zeros((6, 2), np.float16), ["a", "b"], [2, 4], ["s", "s"])
    # lengths that do not cover feats.npy
    write_index(root / "index.tsv", ["a", "b"], [2, 3], ["s", "s"])
    with pytest.raises(ValueError, match="covers 5 frames"):
        FeatureStore.open(root)
    # non-contiguous starts
    (root / "index.tsv").write_text("utt_id\tstart\tnum_frames\tspeaker\na\t0\t2\ts\nb\t3\t4\ts\n")
    with pytest.raises(ValueError, match="contiguous"):
        FeatureStore.open(root)
    (root / "index.tsv").write_text("utt\tstart\n")
    with pytest.raises(ValueError, match="header"):
        read_index(root / "index.tsv")
    with pytest.raises(FileNotFoundError):
        FeatureStore.open(tmp_path / "nothing")


def test_open_rejects_float32(tmp_path):
    root = tmp_path / "store"
    write_store(root, np.zeros((2, 2), np.float16), ["a"], [2], ["s"])
    np.save(root / FEATS, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="float16"):
        FeatureStore.open(root)


def test_truncate_npy_in_place_keeps_data(tmp_path):
    path = tmp_path / "x.npy"
    data = np.arange(1000 * 3, dtype=np.float16).reshape(1000, 3)
    np.save(path, data)
    _truncate_npy(path, 17, 3)
    np.testing.assert_array_equal(np.load(path), data[:17])
    _truncate_npy(path, 0, 3)
    assert np.load(path).shape == (0, 3)
    with pytest.raises(ValueError):
        _truncate_npy(path, 5, 3)  # cannot grow


def test_frame_to_utt(tmp_path):
    store = write_store(tmp_path / "s", np.zeros((6, 2), np.float16), ["a", "b", "c"], [1, 3, 2], ["s"] * 3)
    np.testing.assert_array_equal(store.frame_to_utt(), [0, 1, 1, 1, 2, 2])
    assert store.utt_index() == {"a": 0, "b": 1, "c": 2}


def test_utt_lookup(tmp_path):
    store = write_store(tmp_path / "s", np.arange(12, dtype=np.float16).reshape(6, 2), ["a", "b"], [2, 4], ["s", "s"])
    np.testing.assert_array_equal(store.utt("b"), np.arange(4, 12).reshape(4, 2))
    with pytest.raises(KeyError):
        store.utt("zz")


def test_frame_shift_from_meta(tmp_path):
    feats = np.zeros((3, 2), dtype=np.float16)
    assert write_store(tmp_path / "a", feats, ["u"], [3], ["s"]).frame_shift == 0.01  # Kaldi's default
    assert write_store(tmp_path / "b", feats, ["u"], [3], ["s"], {"fbank": {"frame_shift_ms": 20.0}}).frame_shift == 0.02
    assert write_store(tmp_path / "c", feats, ["u"], [3], ["s"], {"frame_shift_ms": 15.0}).frame_shift == 0.015
