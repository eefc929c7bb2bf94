"""prepare-lang: the lang dir of a text + cmudict, OOVs, up-to-date check (options, inputs, --force)."""

import dataclasses
import logging
import os

import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.lang.lang_dir import LangDir
from data_prep.lang.prepare_lang import LangConfig, prepare_lang
from data_prep.lang.lexicon import SIL, SPN, UNK


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    d = tmp_path_factory.mktemp("lang")
    text = d / "text"
    text.write_text("u1 HELLO WORLD\nu2 READ THE RED BOOK\nu3 A CAT ZZQXJ\n")
    return prepare_lang(LangConfig(text_files=[str(text)], out_dir=str(d / "lang"), sil_prob=0.5))


def test_symbol_tables(lang):
    names = lang.phone_names
    assert names[0] == "<eps>" and names[1] == SIL and names[2] == SPN
    assert len(lang.nonsilence_phones) == 39
    disambig = [names[i] for i in lang.disambig_phone_ids]
    assert disambig[0] == "#0" and disambig == [f"#{i}" for i in range(len(disambig))]
    assert min(lang.disambig_phone_ids) == max(lang.phones[p] for p in lang.nonsilence_phones) + 1
    w = lang.words
    assert w["<eps>"] == 0 and w["#0"] == len(w) - 3 and w["<s>"] == len(w) - 2 and w["</s>"] == len(w) - 1
    assert lang.oov == UNK and lang.lexicon[UNK] == [(SPN,)]
    assert "ZZQXJ" not in w
    assert (lang.path / "oov_counts.txt").read_text() == "ZZQXJ 1\n"
    # READ/RED are homophones: they get distinct disambiguation symbols
    rows = [ln.split() for ln in (lang.path / "lexiconp_disambig.txt").read_text().splitlines()]
    tails = {r[-1] for r in rows if r[0] in ("READ", "RED") and r[2:5] == ["R", "EH", "D"]}
    assert tails == {"#1", "#2"}


def test_resume_option_change_and_force(lang, caplog):
    import json

    cfg = LangConfig(**json.loads((lang.path / "meta.json").read_text())["config"])
    assert cfg.text_files and cfg.out_dir == str(lang.path)
    fst = lang.path / "L.fst"
    os.utime(fst, (1, 1))
    caplog.set_level(logging.INFO)
    again = prepare_lang(cfg)  # same options and inputs: nothing rewritten
    assert fst.stat().st_mtime == 1 and again.words == lang.words and "up to date" in caplog.text
    prepare_lang(dataclasses.replace(cfg, force=True))  # --force: rebuilt although up to date
    assert fst.stat().st_mtime > 1 and "rebuilding (--force)" in caplog.text
    os.utime(fst, (1, 1))
    changed = prepare_lang(dataclasses.replace(cfg, sil_prob=0.25))  # a changed option rebuilds
    assert fst.stat().st_mtime > 1 and "option changed: sil_prob 0.5 -> 0.25" in caplog.text
    assert json.loads((changed.path / "meta.json").read_text())["config"]["sil_prob"] == 0.25
    os.utime(fst, (1, 1))
    with open(cfg.text_files[0], "a") as f:  # a changed input rebuilds
        f.write("u4 THE DOG\n")
    grown = prepare_lang(dataclasses.replace(cfg, sil_prob=0.25))
    assert fst.stat().st_mtime > 1 and "input changed: text[0]" in caplog.text and "DOG" in grown.words


@pytest.mark.e2e
def test_cli_prepare_lang(tmp_path):
    from data_prep.cli import main

    text = tmp_path / "text"
    text.write_text("u1 HELLO THERE\n")
    lexfile = tmp_path / "lex.txt"
    lexfile.write_text("HELLO HH AH0 L OW1\nTHERE DH EH1 R\n")
    assert main(["prepare-lang", "--text", str(text), "--out", str(tmp_path / "lang"), "--lexicon", str(lexfile)]) == 0
    lang = LangDir.load(tmp_path / "lang")
    assert lang.nonsilence_phones == ["AH", "DH", "EH", "HH", "L", "OW", "R"]
    assert lang.lexicon["HELLO"] == [("HH", "AH", "L", "OW")]


def test_decoding_lang_from_plain_text_or_the_whole_lexicon(lang, tmp_path):
    """The decoding lang dir: words of plain sentences (no utterance ids: the first word counts too), or every
    lexicon word; same phones as the alignment lang dir built from the same lexicon."""
    sents = tmp_path / "lm_text.txt"
    sents.write_text("HELLO THERE\nA RED CAT\n")
    dec = prepare_lang(LangConfig(plain_text=[str(sents)], out_dir=str(tmp_path / "lang_test")))
    assert {"HELLO", "THERE", "A", "RED", "CAT"} <= set(dec.words) and "WORLD" not in dec.words
    assert [dec.phone_names[i] for i in dec.real_phone_ids] == [lang.phone_names[i] for i in lang.real_phone_ids]
    lex = tmp_path / "lexicon.txt"
    lex.write_text("HELLO HH AH0 L OW1\nWORLD W ER1 L D\nZEBRA Z IY1 B R AH0\n")
    full = prepare_lang(LangConfig(lexicon_path=str(lex), lexicon_words=True, out_dir=str(tmp_path / "lang_lex")))
    assert {"HELLO", "WORLD", "ZEBRA"} <= set(full.words)
    with pytest.raises(ValueError, match="give the words"):
        LangConfig(out_dir=str(tmp_path / "none"))
