"""synth.text: sentences harvested from Debian texts, normalised to upper-case CMUdict transcripts."""

from __future__ import annotations

import pytest

from data_prep.corpus.synth import text as T

VOCAB = frozenset("the a i o cat sat on mat don't it's well known dog dogs team's big red house is very old "
                  "and then we went home to see our friends at night he said no".split())


def norm(s, **kw):
    return T.normalize_sentence(s, VOCAB, "t", **kw)


def test_normalize_accepts_and_uppercases():
    sent, reason = norm("The big red house is very old, and then we went home.")
    assert reason == ""
    assert sent.transcript == "THE BIG RED HOUSE IS VERY OLD AND THEN WE WENT HOME"
    assert sent.tts == "The big red house is very old, and then we went home."


def test_normalize_apostrophes_quotes_hyphens_and_terminal_punctuation():
    sent, _ = norm('"Don\'t see the dog," he said -- it\'s a well-known house!')
    assert sent.words == ("DON'T", "SEE", "THE", "DOG", "HE", "SAID", "IT'S", "A", "WELL", "KNOWN", "HOUSE")
    assert sent.tts.endswith("house!") and "well known" in sent.tts and '"' not in sent.tts
    sent, _ = norm("The team's dogs' house is very old.")
    assert sent.words[1] == "TEAM'S" and sent.words[2] == "DOGS"


@pytest.mark.parametrize("raw,reason", [
    ("The cat sat on the mat 3 times and then went home.", "symbol"),
    ("The cat sat on the mat & then we went home.", "symbol"),
    ("Then Mr. Dog sat on the big red mat.", "abbreviation"),
    ("Then J. R. Dog sat on the big red mat.", "abbreviation"),
    ("Then the BIG cat sat on the red mat.", "all-caps token"),
    ("The cat sat on the mat and then x went home.", "single letter"),
    ("The cat sat on the zebra mat and then home.", "oov"),
    ("The cat sat.", "length"),
    ("Q: the cat sat on the mat and then went home?", "speaker label"),
])
def test_normalize_rejects(raw, reason):
    sent, why = norm(raw)
    assert sent is None and why == reason


def test_normalize_word_limits():
    s = "the dog sat on the mat " * 6  # 36 words
    assert norm(s)[1] == "length"
    assert norm(s, max_words=40)[0] is not None


def test_split_sentences():
    parts = T.split_sentences('The cat sat.  "Then the dog sat!" He said no? and we went')
    assert parts == ["The cat sat.", '"Then the dog sat!"', "He said no? and we went"]


def test_fortune_and_wordnet_parsing(tmp_path):
    fdir, wdir = tmp_path / "fortunes", tmp_path / "wordnet"
    fdir.mkdir()
    wdir.mkdir()
    (fdir / "cats").write_text("The cat sat on the mat and then we went home.\n"
                               "  -- A. Famous Person\n%\nThe big red house is\nvery old. Then we went home.\n%\n")
    (fdir / "cats.dat").write_bytes(b"\x00binary index")
    (wdir / "data.noun").write_text(
        "  1 licence header line\n"
        '00001 03 n 01 cat 0 000 | a small animal; "the cat sat on the mat at night"; "we went home"\n')
    paras = list(T.iter_fortune_paragraphs(fdir))
    assert [p for _, p in paras] == ["The cat sat on the mat and then we went home.",
                                    "The big red house is very old. Then we went home."]
    assert [e for _, e in T.iter_wordnet_examples(wdir)] == ["the cat sat on the mat at night", "we went home"]
    sents, rejects = T.harvest_sentences(VOCAB, raw=T.iter_raw_sentences(fdir, wdir))
    assert sorted(s.transcript for s in sents) == [
        "THE BIG RED HOUSE IS VERY OLD", "THE CAT SAT ON THE MAT AND THEN WE WENT HOME", "THE CAT SAT ON THE MAT AT NIGHT"]
    assert rejects["length"] == 2  # "Then we went home." and "we went home"


def test_harvest_deduplicates():
    raw = [("a", "The cat sat on the big red mat."), ("b", "the cat sat on the big red mat")]
    sents, rejects = T.harvest_sentences(VOCAB, raw=raw)
    assert len(sents) == 1 and rejects == {"duplicate": 1}
