"""Fixtures of the alignment tests: a lang dir of the shared toy lexicon and its monophone HMM (the writer of
simulated splits, ``write_align_split``, is in tests/conftest.py: asr-kd align's tests use it too)."""

import pytest

from data_prep.align.hmm import HmmModel


@pytest.fixture(scope="module")
def lang(make_lexicon, tmp_path_factory):
    from data_prep.lang.lang_dir import write_lang_dir

    return write_lang_dir(make_lexicon(), tmp_path_factory.mktemp("lang") / "lang")


@pytest.fixture(scope="module")
def mono(lang):
    from data_prep.lang.lang_dir import load_topology

    return HmmModel.monophone(load_topology(lang))
