"""topology: Kaldi text topologies (3-state phones, 5-state silence) that Kaldi's HmmTopology reads."""

from asr_base.kaldi import kaldi_hmm_gmm, kaldifst  # noqa: F401  (import order, see asr_base/kaldi.py)
from data_prep.lang.lang_dir import load_topology, write_lang_dir
from data_prep.lang.lexicon import SIL, SPN
from data_prep.lang.topology import make_topo, parse_topo_num_pdf_classes


def test_parse_topo_num_pdf_classes():
    assert parse_topo_num_pdf_classes(make_topo([3, 4], [1], 3, 5)) == {3: 3, 4: 3, 1: 5}
    assert parse_topo_num_pdf_classes(make_topo([3], [1, 2], 1, 1)) == {3: 1, 1: 1, 2: 1}


def test_kaldi_reads_the_topology_of_a_lang_dir(tmp_path):
    lang = write_lang_dir({"AB": [("A", "B")], "K": [("K",)]}, tmp_path / "lang")
    assert lang.num_pdf_classes(lang.phones[SIL]) == 5 and lang.num_pdf_classes(lang.phones["A"]) == 3
    topo = load_topology(lang)
    assert list(topo.phones) == lang.real_phone_ids
    assert topo.num_pdf_classes(lang.phones[SPN]) == 5 and topo.num_pdf_classes(lang.phones["K"]) == 3
    assert list(load_topology(tmp_path / "lang").phones) == lang.real_phone_ids
