"""kaldi_feats: ark/scp writing and reading with kaldi-io, rxspecifier ranges and pipes, compressed matrices."""

import struct

import numpy as np
import pytest

from asr_base.kaldi_io import kaldi_io
from data_prep.features.kaldi_feats import (
    CompressedMatrixError,
    parse_rxspec,
    peek_matrix_shape,
    read_matrices,
    read_matrix,
    read_scp,
    write_matrices_ark,
)


def _compressed_matrix_bytes(rows=3, cols=2):
    """A Kaldi 'CM ' compressed matrix: global header, per-column percentiles, uint8 column-major data."""
    head = b"\0BCM " + struct.pack("<ffii", -1.0, 2.0, rows, cols)
    cols_hdr = struct.pack("<" + "H" * 4 * cols, *([0, 16384, 49152, 65535] * cols))
    return head + cols_hdr + bytes(range(rows * cols))


def test_write_ark_reads_back_with_kaldi_io(tmp_path):
    rng = np.random.default_rng(0)
    mats = {f"utt{i}": rng.standard_normal((i + 1, 4)).astype(np.float32) for i in range(5)}
    n = write_matrices_ark(tmp_path / "m.ark", tmp_path / "m.scp", mats.items())
    assert n == 5
    for key, mat in kaldi_io.read_mat_scp(str(tmp_path / "m.scp")):
        np.testing.assert_array_equal(mat, mats[key])
    assert [k for k, _ in kaldi_io.read_mat_ark(str(tmp_path / "m.ark"))] == list(mats)
    # our own readers agree, for the scp and for the ark
    for path in ("m.scp", "m.ark"):
        got = dict(read_matrices(tmp_path / path))
        assert list(got) == list(mats)
        for k in mats:
            np.testing.assert_array_equal(got[k], mats[k])
    # scp entries are absolute ark paths with byte offsets
    for key, rx in read_scp(tmp_path / "m.scp"):
        spec = parse_rxspec(rx)
        assert spec.path == str((tmp_path / "m.ark").absolute()) and spec.offset > 0
        assert peek_matrix_shape(rx) == mats[key].shape


def test_rxspec_ranges_and_pipes(tmp_path):
    mat = np.arange(40, dtype=np.float32).reshape(10, 4)
    write_matrices_ark(tmp_path / "m.ark", tmp_path / "m.scp", [("a", mat)])
    (_, rx), = read_scp(tmp_path / "m.scp")
    np.testing.assert_array_equal(read_matrix(rx + "[2:5]"), mat[2:6])  # Kaldi ranges are inclusive
    np.testing.assert_array_equal(read_matrix(rx + "[2:5,1:2]"), mat[2:6, 1:3])
    assert peek_matrix_shape(rx + "[2:5,1:2]") == (4, 2)
    kaldi_io.write_mat(str(tmp_path / "single.mat"), mat)
    np.testing.assert_array_equal(read_matrix(f"cat {tmp_path / 'single.mat'} |"), mat)
    assert peek_matrix_shape(f"cat {tmp_path / 'single.mat'} |") == (10, 4)


def test_compressed_matrix_detected_with_instructions(tmp_path):
    ark = tmp_path / "c.ark"
    ark.write_bytes(b"u1 " + _compressed_matrix_bytes())
    (tmp_path / "c.scp").write_text(f"u1 {ark}:3\n")
    with pytest.raises(CompressedMatrixError, match="copy-feats --compress=false"):
        read_matrix(f"{ark}:3")
    with pytest.raises(CompressedMatrixError):
        peek_matrix_shape(f"{ark}:3")
    with pytest.raises(CompressedMatrixError):
        list(read_matrices(ark))
