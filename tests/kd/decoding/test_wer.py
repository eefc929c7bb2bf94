"""WER scoring: a hand-computed example, failures counted as deletions, OOV reference words, files."""

from __future__ import annotations

import json

import pytest

from asr_kd.decoding.wer import compute_wer, read_text, utterance_counts, write_hyps, write_results


def test_hand_computed_example(tmp_path):
    refs = {"s1-a": "the cat sat on the mat", "s1-b": "hello world", "s2-a": "a b c d"}
    hyps = {
        "s1-a": "the cat sat in the the mat".split(),  # 1 sub (on->in) + 1 ins (the) -> 2 errors / 6
        "s1-b": "hello".split(),  # 1 del -> 1 / 2
        "s2-a": "a x c d e".split(),  # 1 sub + 1 ins -> 2 / 4
    }
    r = compute_wer(refs, hyps, {"s1-a": "s1", "s1-b": "s1", "s2-a": "s2"})
    t = r.total
    assert (t.ref_words, t.substitutions, t.deletions, t.insertions) == (12, 2, 1, 2)
    assert t.wer == pytest.approx(100 * 5 / 12)
    assert r.per_speaker["s1"].errors == 3 and r.per_speaker["s1"].ref_words == 8
    assert r.per_speaker["s2"].wer == pytest.approx(50.0)
    summary = write_results(tmp_path, r, {"model": "x"})
    assert json.loads((tmp_path / "wer.json").read_text())["wer"] == pytest.approx(100 * 5 / 12, abs=1e-3)
    assert summary["model"] == "x" and summary["failed"] == 0
    rows = (tmp_path / "per_utt.tsv").read_text().splitlines()
    assert rows[0].startswith("utt\tspeaker") and len(rows) == 4
    assert rows[1].split("\t")[:8] == ["s1-a", "s1", "6", "1", "0", "1", "2", "0"]
    spk = (tmp_path / "per_spk.tsv").read_text().splitlines()
    assert spk[1].split("\t") == ["s1", "8", "1", "1", "1", "3", "37.50"]


def test_failures_and_missing_are_deletions_and_listed():
    refs = {"u1": "a b c", "u2": "d e", "u3": "f"}
    r = compute_wer(refs, {"u1": ["a", "b", "c"], "u2": ["d", "e"]}, failures={"u2": "no frames"})
    assert r.total.deletions == 3 and r.total.ref_words == 6 and r.num_failed == 2
    status = {u.utt: u.status for u in r.utts}
    assert status == {"u1": "ok", "u2": "failed: no frames", "u3": "failed: no hypothesis"}


def test_oov_reference_words_counted():
    r = compute_wer({"u1": "a zebra b"}, {"u1": ["a", "b"]}, vocab={"a", "b"})
    assert r.oov_ref_words == 1 and r.total.deletions == 1 and r.utts[0].oov == 1
    assert r.summary()["oov_ref_words"] == 1


def test_edge_cases():
    assert utterance_counts([], ["x"]).insertions == 1
    assert utterance_counts(["x", "y"], []).deletions == 2
    assert utterance_counts([], []).errors == 0
    r = compute_wer({"u1": ""}, {"u1": [], "zz": ["extra"]})
    assert r.total.ref_words == 0 and r.extra_hyps == ["zz"]
    assert r.summary()["wer"] is None


def test_text_round_trip(tmp_path):
    write_hyps(tmp_path / "hyp.txt", {"b": ["x", "y"], "a": []})
    assert (tmp_path / "hyp.txt").read_text() == "a\nb x y\n"
    assert read_text(tmp_path / "hyp.txt") == {"a": [], "b": ["x", "y"]}
    (tmp_path / "dup").write_text("a x\na y\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_text(tmp_path / "dup")
