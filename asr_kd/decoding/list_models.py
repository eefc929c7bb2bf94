"""``asr-kd list-models``: the decodable systems of a run, one per line, for shell recipes.

Each line is ``NAME ARGS``: a system of :func:`asr_kd.nn.model_dirs.run_systems` (``baseline``,
``ensemble``, ``student_T1`` ... ``student_logit_matching``) and the shell-quoted model options that
``asr-kd decode``, ``loglikes`` and ``export`` take for it::

    baseline --model exp/baseline/final.pt
    ensemble --ensemble exp/teachers
    student_T2 --model exp/students/T2/final.pt

``--best-student`` prints only the student chosen on dev (``EXP/students/best.json``); ``--table1`` the
systems of the paper's Table 1: the baseline, the ensemble and that student (what a CPU recipe decodes when
decoding every temperature's student would not fit its budget; the temperature itself is chosen on dev frame
accuracy, not on WER). The recipes
(``recipes/shared/common.sh``) decode and export through these lines, so a model dir is found in one place.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json
from asr_kd.nn.model_dirs import FINAL, System, run_systems


@dataclass
class ListModelsConfig:
    exp: str = option("exp", help="experiment directory of the run")
    best_student: bool = option(False, help="only the student chosen on dev (EXP/students/best.json)")
    table1: bool = option(False, help="only the systems of Table 1: baseline, ensemble and the student chosen "
                                      "on dev")


def model_args(system: System) -> list[str]:
    """The model options of ``asr-kd decode`` / ``export`` for one system."""
    if system.kind == "ensemble":
        return ["--ensemble", str(system.dirs[0].parent)]
    return [arg for d in system.dirs for arg in ("--model", str(d / FINAL))]


def list_systems(cfg: ListModelsConfig) -> list[System]:
    exp = Path(cfg.exp)
    systems = run_systems(exp)
    if cfg.best_student or cfg.table1:
        best_json = exp / "students" / "best.json"
        if not best_json.is_file():
            raise SystemExit(f"{best_json} not found (distil the students first)")
        best = exp / "students" / read_json(best_json)["best"]
        keep = {"baseline", "ensemble"} if cfg.table1 and not cfg.best_student else set()
        systems = [s for s in systems if s.name in keep or (s.kind == "model" and s.dirs == (best,))]
    if not systems:
        raise SystemExit(f"no models under {exp}" + (" for students/best.json" if cfg.best_student else ""))
    return systems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ListModelsConfig)


def main(args: argparse.Namespace) -> int:
    for system in list_systems(from_args(ListModelsConfig, args)):
        print(system.name, shlex.join(model_args(system)))
    return 0
