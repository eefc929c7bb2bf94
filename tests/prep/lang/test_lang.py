"""prepare-lang: lang dir files, topology, L/L_disambig FSTs (kaldifst), resume."""

import math

import pytest

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.lang.lang_dir import LangDir, load_topology, make_topo, parse_topo_num_pdf_classes, prepare_lang, write_lang_dir
from data_prep.lang.lexicon import SIL, SPN, UNK


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    d = tmp_path_factory.mktemp("lang")
    text = d / "text"
    text.write_text("u1 HELLO WORLD\nu2 READ THE RED BOOK\nu3 A CAT ZZQXJ\n")
    return prepare_lang([text], d / "lang", sil_prob=0.5)


def _arcs(fst):
    out = []
    for s in range(fst.num_states):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            a = it.value
            out.append((s, a.ilabel, a.olabel, float(a.weight.value), a.nextstate))
            it.next()
    return out


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


def test_topology(lang):
    assert lang.num_pdf_classes(lang.phones[SIL]) == 5
    assert lang.num_pdf_classes(lang.phones["AA"]) == 3
    topo = load_topology(lang)
    assert list(topo.phones) == lang.real_phone_ids
    assert topo.num_pdf_classes(lang.phones[SPN]) == 5 and topo.num_pdf_classes(lang.phones["K"]) == 3
    text = make_topo([3, 4], [1], 3, 5)
    assert parse_topo_num_pdf_classes(text) == {3: 3, 4: 3, 1: 5}


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


def test_resume_and_force(lang, tmp_path, caplog):
    text_files = lang.path / "meta.json"
    assert text_files.is_file()
    cfg = __import__("json").loads(text_files.read_text())["config"]
    mtime = (lang.path / "L.fst").stat().st_mtime_ns
    again = prepare_lang(cfg["text_files"], lang.path, sil_prob=0.5)
    assert (lang.path / "L.fst").stat().st_mtime_ns == mtime
    assert again.words == lang.words


def test_write_lang_dir_small_lexicon(tmp_path):
    lex = {"AB": [("A", "B")], "BA": [("B", "A")], "A": [("A",)]}
    lang = write_lang_dir(lex, tmp_path / "lang", sil_prob=0.0)
    assert lang.nonsilence_phones == ["A", "B"]
    assert set(lang.lexicon) == {"AB", "BA", "A", "!SIL", UNK}
    loaded = LangDir.load(tmp_path / "lang")
    assert loaded.phones == lang.phones
    with pytest.raises(ValueError):
        write_lang_dir({"X": [("NOPE",)]}, tmp_path / "bad", nonsilence_phones=["A"])


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
