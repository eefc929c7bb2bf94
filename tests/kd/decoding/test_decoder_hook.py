"""The decoder hook: ark I/O, the external-decoder file contract end to end with our stand-in command."""

from __future__ import annotations

import shlex
import sys

import numpy as np
import pytest

from asr_kd.decoding.decoder import DecoderConfig
from asr_kd.decoding.decoder_hook import (BuiltinWfstDecoder, Decoder, ExternalDecoder, read_ctm, read_hyp_text,
                                 read_loglikes, write_loglikes_ark)

SEQS = [["CAT"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["DOG", "DOG", "CAT"]]
STANDIN = f"{shlex.quote(sys.executable)} -m asr_kd.decoding.decoder_hook --graph {{graph}} --beam {{beam}} " \
          f"--acoustic-scale {{acoustic_scale}}"


@pytest.fixture(scope="module")
def system(toy, tmp_path_factory):
    lang, ctx, gdir = toy.build(tmp_path_factory.mktemp("toy"))
    rng = np.random.default_rng(5)
    items = {f"utt{i}": toy.spell(lang, ctx, s, ctx.num_pdfs, rng, sil_between=i % 2 == 0) for i, s in enumerate(SEQS)}
    return gdir, items


def test_ark_scp_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mats = {"a": rng.standard_normal((5, 3)).astype(np.float32), "b": rng.standard_normal((2, 3)).astype(np.float32)}
    utts, frames = write_loglikes_ark(tmp_path / "x.ark", tmp_path / "x.scp", mats)
    assert utts == ["a", "b"] and frames == 7
    for spec in (f"ark:{tmp_path / 'x.ark'}", f"scp:{tmp_path / 'x.scp'}", str(tmp_path / "x.scp")):
        back = dict(read_loglikes(spec))
        assert back.keys() == mats.keys()
        for k in mats:
            np.testing.assert_array_equal(back[k], mats[k])
    with pytest.raises(ValueError, match="Kaldi key"):
        write_loglikes_ark(tmp_path / "y.ark", None, {"has space": mats["a"]})
    with pytest.raises(FileNotFoundError):
        list(read_loglikes("ark:/nonexistent.ark"))


def test_builtin_is_a_decoder(system):
    gdir, items = system
    dec = BuiltinWfstDecoder(gdir, DecoderConfig(num_jobs=1))
    assert isinstance(dec, Decoder)
    out = dec.decode(items)
    assert out.hyps == {f"utt{i}": s for i, s in enumerate(SEQS)}


@pytest.mark.e2e
@pytest.mark.parametrize("fmt,extra", [("text", ""), ("text", "--word-ids"), ("ctm", "--ctm")])
def test_external_decoder_with_standin(tmp_path, system, fmt, extra):
    gdir, items = system
    bad = dict(items, zz_nan=np.full_like(items["utt0"], np.nan))
    cmd = f"{STANDIN} {extra} ark:{{loglikes_ark}} {{hyp}}"
    dec = ExternalDecoder(cmd, tmp_path / "work", fmt, graph_dir=gdir, config=DecoderConfig())
    assert isinstance(dec, Decoder)
    out = dec.decode(bad)
    assert out.hyps == {f"utt{i}": s for i, s in enumerate(SEQS)}
    assert set(out.failures) == {"zz_nan"}  # the stand-in (like Kaldi) leaves failed utterances out
    assert (tmp_path / "work" / "loglikes.scp").is_file()


def test_external_decoder_errors(tmp_path, system):
    gdir, items = system
    with pytest.raises(ValueError, match="placeholder"):
        ExternalDecoder("decode {nope}", tmp_path / "w1", graph_dir=gdir).decode(items)
    with pytest.raises(RuntimeError, match="status 3"):
        ExternalDecoder("echo failing >&2; exit 3", tmp_path / "w2", graph_dir=gdir).decode(items)
    with pytest.raises(RuntimeError, match="no hypotheses"):
        ExternalDecoder("true", tmp_path / "w3", graph_dir=gdir).decode(items)
    with pytest.raises(ValueError):
        ExternalDecoder("true", tmp_path / "w4", output_format="lattice")


def test_hyp_readers(tmp_path):
    words = ["<eps>", "A", "B"]
    (tmp_path / "ids.txt").write_text("u1 1 2\nu2\n")
    assert read_hyp_text(tmp_path / "ids.txt", words) == {"u1": ["A", "B"], "u2": []}
    (tmp_path / "bad.txt").write_text("u1 1 9\n")
    with pytest.raises(ValueError, match="outside"):
        read_hyp_text(tmp_path / "bad.txt", words)
    (tmp_path / "h.ctm").write_text("u1 1 0.50 0.20 B\nu1 1 0.10 0.30 A\n;; comment\nu2 A 0.0 1.0 2\n")
    assert read_ctm(tmp_path / "h.ctm", words) == {"u1": ["A", "B"], "u2": ["B"]}
    (tmp_path / "short.ctm").write_text("u1 1 0.5\n")
    with pytest.raises(ValueError, match="expected"):
        read_ctm(tmp_path / "short.ctm")
