"""``asr-kd list-models``: one line per system of a run, read back by the recipes' shell helper."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest

from asr_kd.cli import main

REPO = Path(__file__).resolve().parents[3]


def _listing(*argv: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list-models", *argv]) == 0
    return out.getvalue().splitlines()


@pytest.fixture
def exp(tmp_path) -> Path:
    exp = tmp_path / "my exp"  # a space: the options are shell-quoted
    for d in ("baseline", "teachers/member_00", "teachers/member_01", "students/T10", "students/T2",
              "students/logit_matching", "students/train_state"):
        (exp / d).mkdir(parents=True)
        if d != "students/train_state":
            (exp / d / "final.pt").touch()
    (exp / "students/best.json").write_text(json.dumps({"best": "T2"}))
    return exp


def test_systems_and_their_model_options(exp):
    e = str(exp)
    assert _listing("--exp", e) == [
        f"baseline --model '{e}/baseline/final.pt'", f"ensemble --ensemble '{e}/teachers'",
        f"student_T2 --model '{e}/students/T2/final.pt'", f"student_T10 --model '{e}/students/T10/final.pt'",
        f"student_logit_matching --model '{e}/students/logit_matching/final.pt'"]
    assert _listing("--exp", e, "--best-student") == [f"student_T2 --model '{e}/students/T2/final.pt'"]
    assert _listing("--exp", e, "--table1") == [
        f"baseline --model '{e}/baseline/final.pt'", f"ensemble --ensemble '{e}/teachers'",
        f"student_T2 --model '{e}/students/T2/final.pt'"]


def test_recipe_helper_reads_the_lines(exp):
    line = _listing("--exp", str(exp), "--best-student")[0]
    script = f'source {REPO}/recipes/shared/common.sh; read_model_args "$1"; printf "%s\\n" "${{model_args[@]}}"'
    out = subprocess.run(["bash", "-c", script, "bash", line], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["--model", f"{exp}/students/T2/final.pt"]


def test_no_models_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no models"):
        main(["list-models", "--exp", str(tmp_path)])
    with pytest.raises(SystemExit, match="best.json"):
        main(["list-models", "--exp", str(tmp_path), "--best-student"])
