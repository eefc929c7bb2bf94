"""Model-directory discovery: single models, ensembles, student sweeps and the systems of a run."""

from __future__ import annotations

import pytest

from asr_kd.nn.model_dirs import discover, member_dirs, run_systems, student_dirs


@pytest.fixture()
def exp(tmp_path):
    for d in ("baseline", "teachers/member_01", "teachers/member_00", "students/T10", "students/T2",
              "students/T1.5", "students/logit_matching"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "final.pt").write_bytes(b"x")
    (tmp_path / "students/train_state").mkdir()
    (tmp_path / "students/train_state/checkpoint.pt").write_bytes(b"x")
    return tmp_path


def test_discover_each_layout(exp):
    assert discover(exp / "baseline") == ("model", [("baseline", exp / "baseline")])
    kind, entries = discover(exp / "teachers")
    assert kind == "ensemble" and [n for n, _ in entries] == ["teachers/member_00", "teachers/member_01"]
    kind, entries = discover(exp / "students")
    assert kind == "students" and [n for n, _ in entries] == [
        "students/T1.5", "students/T2", "students/T10", "students/logit_matching"]
    with pytest.raises(FileNotFoundError):
        discover(exp / "students/train_state")


def test_members_students_and_systems(exp):
    assert member_dirs(exp / "baseline") == [exp / "baseline"]
    assert [p.name for p in member_dirs(exp / "teachers")] == ["member_00", "member_01"]
    with pytest.raises(FileNotFoundError, match="train the teachers"):
        member_dirs(exp / "students")
    assert student_dirs(exp / "nothing") == []
    systems = run_systems(exp)
    assert [s.name for s in systems] == ["baseline", "ensemble", "student_T1.5", "student_T2", "student_T10",
                                         "student_logit_matching"]
    assert systems[1].kind == "ensemble" and len(systems[1].dirs) == 2
