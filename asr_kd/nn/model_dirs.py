"""Where the models of a run are: the one model-directory discovery used by every stage and the recipes.

A *model dir* holds ``final.pt`` (docs/formats.md). Three layouts hold model dirs:

- a single model: ``exp/baseline`` (``final.pt`` inside);
- an ensemble: ``exp/teachers/member_00``, ``member_01``, ...;
- a sweep of students: ``exp/students/T1``, ``T2``, ``T5``, ``T10`` (temperature order), then any other
  student dir such as ``logit_matching`` (name order); ``train_state/`` is not a model.

``asr-kd list-models`` prints the systems of a run for shell recipes (``recipes/shared/common.sh``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["model", "ensemble", "students"]
FINAL = "final.pt"


def is_model_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / FINAL).is_file()


def _student_key(p: Path) -> tuple:
    name = p.name
    if name[:1] == "T" and name[1:].replace(".", "", 1).isdigit():
        return (0, float(name[1:]), name)
    return (1, 0.0, name)


def member_dirs(path: str | os.PathLike) -> list[Path]:
    """Members of an ensemble dir (``member_*``) in order; a single model dir is an ensemble of one."""
    path = Path(path)
    if is_model_dir(path):
        return [path]
    dirs = sorted(p for p in path.glob("member_*") if is_model_dir(p))
    if not dirs:
        raise FileNotFoundError(f"{path}: no {FINAL} and no member_*/{FINAL} (train the teachers first)")
    return dirs


def student_dirs(path: str | os.PathLike) -> list[Path]:
    """Student model dirs of a sweep dir: ``T<temperature>`` in temperature order, then the others by name."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted((p for p in path.iterdir() if p.is_dir() and is_model_dir(p)), key=_student_key)


def discover(path: str | os.PathLike) -> tuple[Kind, list[tuple[str, Path]]]:
    """``(kind, [(system name, model dir)])`` for a model, an ensemble or a student sweep dir."""
    path = Path(path)
    if is_model_dir(path):
        return "model", [(path.name, path)]
    members = sorted(p for p in path.glob("member_*") if is_model_dir(p))
    if members:
        return "ensemble", [(f"{path.name}/{p.name}", p) for p in members]
    students = student_dirs(path)
    if students:
        return "students", [(f"{path.name}/{p.name}", p) for p in students]
    raise FileNotFoundError(f"{path}: not a model, ensemble or student directory (no {FINAL} found)")


@dataclass(frozen=True)
class System:
    """One decodable system of a run: its name (``baseline``, ``ensemble``, ``student_T2``) and model dirs."""

    name: str
    kind: Kind
    dirs: tuple[Path, ...]


def run_systems(exp: str | os.PathLike) -> list[System]:
    """The systems of a run dir, in report order: baseline, the teacher ensemble, every student."""
    exp = Path(exp)
    out: list[System] = []
    if is_model_dir(exp / "baseline"):
        out.append(System("baseline", "model", (exp / "baseline",)))
    teachers = sorted(p for p in (exp / "teachers").glob("member_*") if is_model_dir(p))
    if teachers:
        out.append(System("ensemble", "ensemble", tuple(teachers)))
    out += [System(f"student_{p.name}", "model", (p,)) for p in student_dirs(exp / "students")]
    return out
