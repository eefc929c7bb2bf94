"""Tree questions: phone clustering finds the groups in the data, ARPAbet classes, JSON round trip."""

import numpy as np

from data_prep.align.tree.questions import Questions, arpabet_questions, cluster_phone_questions, default_questions
from data_prep.align.tree.stats import TreeStats
from data_prep.lang.lang_dir import write_lang_dir

D = 4


def test_cluster_phone_questions_find_groups(lang, tree_phones):
    rng = np.random.default_rng(3)
    ids = np.array([lang.phones[p] for p in tree_phones])
    n = 30000
    center = rng.choice(ids, n)
    group_a = np.isin(center, [lang.phones[p] for p in ("AA", "IY", "M")])
    feats = rng.standard_normal((n, D)) + np.where(group_a, 4.0, -4.0)[:, None]
    st = TreeStats.from_frames(np.zeros(n), center, np.zeros(n), np.ones(n), feats)
    q = cluster_phone_questions(st, lang)
    a = tuple(sorted(lang.phones[p] for p in ("AA", "IY", "M")))
    b = tuple(sorted(lang.phones[p] for p in ("K", "S", "T")))
    assert q.phone_sets[0] in (a, b) and q.phone_sets[1] in (a, b)
    assert all(len(s) >= 1 for s in q.phone_sets) and len(q.phone_sets) == 2 * (len(tree_phones) - 1)
    full = default_questions(st, lang)
    assert (0,) in full.phone_sets and (1,) in full.pdf_class_sets
    assert Questions.from_json(full.to_json()).phone_sets == full.phone_sets


def test_arpabet_questions_group_stress_variants(tmp_path):
    lang = write_lang_dir({"X": [("AH0", "B")], "Y": [("AH1", "K")], "Z": [("S", "IY2")]}, tmp_path / "lang")
    questions = arpabet_questions(lang)
    q = dict(zip(questions.names, questions.phone_sets))
    ids = lang.phones
    assert tuple(sorted((ids["AH0"], ids["AH1"]))) in questions.phone_sets  # AH with its stress variants
    assert set(q["vowel"]) == {ids["AH0"], ids["AH1"], ids["IY2"]}
    assert set(q["voiced_stop"]) == {ids["B"]}
    assert "nasal" not in q  # no phone of the class in this lang
