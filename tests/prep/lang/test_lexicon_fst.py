"""lexicon_fst: L.fst with optional silence, L_disambig.fst with disambiguation symbols and #0 loops."""

import math

import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.lang.lang_dir import write_lang_dir

LEXICON = {"CAT": [("K", "AE", "T")], "READ": [("R", "EH", "D")], "RED": [("R", "EH", "D")], "A": [("AH",)],
           "BOOK": [("B", "UH", "K")]}


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    return write_lang_dir(LEXICON, tmp_path_factory.mktemp("lang") / "lang", sil_prob=0.5)


def _arcs(fst):
    out = []
    for s in range(fst.num_states):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            a = it.value
            out.append((s, a.ilabel, a.olabel, float(a.weight.value), a.nextstate))
            it.next()
    return out


def test_l_fst_structure(lang):
    L = lang.load_l_fst(disambig=False)
    arcs = _arcs(L)
    assert L.start == 0
    assert math.isclose(float(L.final(1).value), 0.0)
    # start: optional silence with probability 0.5 each way
    start = [a for a in arcs if a[0] == 0]
    assert sorted(round(a[3], 4) for a in start) == [round(math.log(2), 4)] * 2
    # the word CAT is output once on the arc of its first phone K
    cat = [a for a in arcs if a[2] == lang.words["CAT"]]
    assert len(cat) == 1 and cat[0][1] == lang.phones["K"]
    # arc-sorted on output labels
    assert L.is_olabel_sorted
    assert [a[2] for a in arcs if a[0] == 1] == sorted(a[2] for a in arcs if a[0] == 1)
    assert not any(a[1] in lang.disambig_phone_ids for a in arcs)


def test_l_disambig_has_self_loops_and_disambig(lang):
    Ld = lang.load_l_fst(disambig=True)
    arcs = _arcs(Ld)
    p0, w0 = lang.phones["#0"], lang.words["#0"]
    loops = [a for a in arcs if a[1] == p0 and a[2] == w0]
    assert loops and all(a[0] == a[4] for a in loops)
    used = {a[1] for a in arcs}
    assert set(lang.disambig_phone_ids[1:]) <= used  # every #k>0 appears (homophones, silence)


def test_no_silence_arcs_without_sil_prob(tmp_path):
    lang = write_lang_dir(LEXICON, tmp_path / "lang", sil_prob=0.0)
    arcs = _arcs(lang.load_l_fst())
    sil = [a for a in arcs if a[1] == lang.phones["SIL"]]
    assert sil and all(a[2] == lang.words["!SIL"] for a in sil)  # only the word !SIL, no optional silence
