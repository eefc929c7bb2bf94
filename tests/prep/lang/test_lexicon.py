"""Lexicon loading, restriction to corpus words, OOV mapping and Kaldi-style disambiguation."""

from collections import Counter

from data_prep.lang.lexicon import (
    ARPABET_PHONES,
    SIL,
    SPN,
    UNK,
    add_disambig,
    load_cmudict,
    map_oov,
    read_lexicon_file,
    read_text_words,
    restrict_lexicon,
    strip_stress,
)


def test_strip_stress():
    assert strip_stress("AH0") == "AH"
    assert strip_stress("ER12") == "ER"
    assert strip_stress("SIL") == "SIL"


def test_cmudict_phone_set_is_arpabet_39():
    src = load_cmudict()
    assert src.phones == sorted(ARPABET_PHONES) and len(src.phones) == 39
    assert ("HH", "AH", "L", "OW") in src.prons["HELLO"]
    stressed = load_cmudict(keep_stress=True)
    assert "AH0" in stressed.phones and "AH" not in stressed.phones


def test_lexicon_file_and_skips(tmp_path):
    f = tmp_path / "lex.txt"
    f.write_text("HELLO HH AH0 L OW1\nHELLO HH AH1 L OW1\nWORLD\tW ER1 L D\nBROKEN\nPROB 0.5 P R AA1 B\n")
    src = read_lexicon_file(f)
    assert src.prons["HELLO"] == [("HH", "AH", "L", "OW")]  # identical after stress stripping
    assert src.prons["PROB"] == [("P", "R", "AA", "B")]  # lexiconp-style probability column dropped
    assert [s[0] for s in src.skipped] == [4]
    assert src.phones == sorted({"HH", "AH", "L", "OW", "W", "ER", "D", "P", "R", "AA", "B"})
    src2 = read_lexicon_file(f, keep_stress=True)
    assert len(src2.prons["HELLO"]) == 2


def test_restrict_and_map_oov(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 HELLO WORLD\nu2 HELLO QQQZX\nu3 QQQZX QQQZX <s> #0\n")
    counts = read_text_words([text])
    assert counts == Counter({"HELLO": 2, "WORLD": 1, "QQQZX": 3, "<s>": 1, "#0": 1})
    lex, oov = restrict_lexicon(load_cmudict(), counts, extra_words=["CAT", "NOTAWORDXX"])
    assert set(lex) == {"HELLO", "WORLD", "CAT", "!SIL", UNK}
    assert lex[UNK] == [(SPN,)] and lex["!SIL"] == [(SIL,)]
    assert oov == Counter({"QQQZX": 3, "<s>": 1, "#0": 1})
    assert map_oov(["HELLO", "QQQZX", "CAT"], lex) == ["HELLO", UNK, "CAT"]


def test_add_disambig_homophones_and_prefixes():
    entries = [("A", ("AH",)), ("AN", ("AH", "N")), ("READ", ("R", "EH", "D")), ("RED", ("R", "EH", "D")),
               ("CAT", ("K", "AE", "T"))]
    out, max_k = add_disambig(entries)
    d = dict(out)
    assert d["A"] == ("AH", "#1")  # prefix of AN
    assert d["AN"] == ("AH", "N")
    assert {d["READ"][-1], d["RED"][-1]} == {"#1", "#2"}
    assert d["CAT"] == ("K", "AE", "T")
    assert max_k == 2
