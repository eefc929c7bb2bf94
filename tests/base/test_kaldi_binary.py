"""asr_base.kaldi_binary: round trips of every Kaldi binary type and clear errors on bad data."""

import io

import numpy as np
import pytest

from asr_base import kaldi_binary as kb


def _written(*calls) -> bytes:
    buf = io.BytesIO()
    for fn, *args in calls:
        fn(buf, *args)
    return buf.getvalue()


def test_bytes_are_kaldis():
    assert _written((kb.write_token, "<DIMENSION>")) == b"<DIMENSION> "
    assert _written((kb.write_int32, -1)) == b"\x04\xff\xff\xff\xff"
    assert _written((kb.write_uint32, 3)) == b"\xfc\x03\x00\x00\x00"
    assert _written((kb.write_float, 1.0)) == b"\x04\x00\x00\x80\x3f"
    assert _written((kb.write_int_vector, [1, 2])) == b"\x04\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"
    assert _written((kb.write_float_vector, [0.5])) == b"FV \x04\x01\x00\x00\x00\x00\x00\x00\x3f"
    assert _written((kb.write_float_matrix, np.zeros((1, 2)))) == (
        b"FM \x04\x01\x00\x00\x00\x04\x02\x00\x00\x00" + b"\x00" * 8)


def test_round_trip_of_every_type():
    rng = np.random.default_rng(0)
    vec = rng.normal(size=7).astype(np.float32)
    mat = rng.normal(size=(3, 4)).astype(np.float32)
    ivec = np.array([5, -3, 0, 2**31 - 1], np.int32)
    data = _written((kb.write_token, "<A>"), (kb.write_int32, -7), (kb.write_uint32, 2**32 - 1), (kb.write_float, 0.25),
                    (kb.write_int_vector, ivec), (kb.write_float_vector, vec), (kb.write_float_matrix, mat),
                    (kb.write_int_vector, []), (kb.write_float_matrix, np.zeros((0, 4))), (kb.write_token, "</A>"))
    for source in (data, io.BytesIO(data)):
        r = kb.KaldiReader(source)
        r.expect("<A>")
        assert r.int32() == -7
        assert r.uint32() == 2**32 - 1
        assert r.float32() == 0.25
        np.testing.assert_array_equal(r.int_vector(), ivec)
        got = r.float_vector()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, vec)
        np.testing.assert_array_equal(r.float_matrix(), mat)
        assert r.int_vector().size == 0
        assert r.float_matrix().shape == (0, 4)
        assert r.token() == "</A>"
        assert r.at_end()


def test_file_with_header(tmp_path):
    path = tmp_path / "x.mdl"
    path.write_bytes(kb.BINARY_HEADER + _written((kb.write_token, "<X>"), (kb.write_int32, 3)))
    r = kb.KaldiReader.open(path)
    r.expect("<X>")
    assert r.int32() == 3
    (tmp_path / "text.mdl").write_text("<X> 3\n")
    with pytest.raises(kb.KaldiFormatError, match="not a Kaldi binary file"):
        kb.KaldiReader.open(tmp_path / "text.mdl")


def test_wrong_token_names_what_was_expected():
    r = kb.KaldiReader(_written((kb.write_token, "<NUMPDFS>"), (kb.write_int32, 2)))
    with pytest.raises(kb.KaldiFormatError, match=r"expected token '<DIMENSION>', got '<NUMPDFS>' at byte 0"):
        r.expect("<DIMENSION>")
    r.expect("<NUMPDFS>")  # a failed expect does not consume the token
    assert r.int32() == 2


def test_wrong_size_byte():
    with pytest.raises(kb.KaldiFormatError, match="expected an int32, size byte 8"):
        kb.KaldiReader(b"\x08" + b"\x00" * 8).int32()
    with pytest.raises(kb.KaldiFormatError, match="expected token 'FV'"):
        kb.KaldiReader(_written((kb.write_float_matrix, np.zeros((1, 1))))).float_vector()


@pytest.mark.parametrize("cut", [1, 3, 8, 20])
def test_truncated_data(cut):
    data = _written((kb.write_token, "<A>"), (kb.write_float_matrix, np.ones((2, 3))))
    r = kb.KaldiReader(data[:-cut])
    with pytest.raises(kb.KaldiFormatError, match="truncated data"):
        r.expect("<A>")
        r.float_matrix()


def test_truncated_token_and_errors_are_value_errors():
    with pytest.raises(ValueError, match="end of data inside a token"):
        kb.KaldiReader(b"<DIMEN").token()
    with pytest.raises(ValueError, match="truncated"):
        kb.KaldiReader(b"\x04\x01").int32()
