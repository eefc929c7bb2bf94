"""lang_dir: symbol tables, phone lists and lexicon files of a written lang dir load back."""

import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.lang.lang_dir import LangDir, write_lang_dir
from data_prep.lang.lexicon import UNK


def test_write_lang_dir_small_lexicon(tmp_path):
    lex = {"AB": [("A", "B")], "BA": [("B", "A")], "A": [("A",)]}
    lang = write_lang_dir(lex, tmp_path / "lang", sil_prob=0.0)
    assert lang.nonsilence_phones == ["A", "B"]
    assert set(lang.lexicon) == {"AB", "BA", "A", "!SIL", UNK}
    loaded = LangDir.load(tmp_path / "lang")
    assert loaded.phones == lang.phones and loaded.words == lang.words
    with pytest.raises(ValueError):
        write_lang_dir({"X": [("NOPE",)]}, tmp_path / "bad", nonsilence_phones=["A"])
    with pytest.raises(ValueError, match="reserved"):
        write_lang_dir({"#0": [("A",)]}, tmp_path / "bad")
    with pytest.raises(FileNotFoundError):
        LangDir.load(tmp_path / "bad")
