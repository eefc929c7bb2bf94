"""Report sections beyond the paper: codistillation, student sizes and FitNets (only when their dirs exist).

Reads, inside ``--exp`` (every piece optional):

* codistillation: every ``<dir>/codistill.json`` (``asr-kd codistill``; members in ``<dir>/member_XX``),
  compared with the baseline and the two-stage route (teacher ensemble, then the best student): frame
  accuracy (``asr-kd evaluate`` keys ``<dir>/member_XX`` and ``<dir>/ensemble_arithmetic``, else the dev
  accuracy of ``codistill.json``), WER (``exp/decode/<dir>_member_00``, ``<dir>_ensemble``) and training
  time (``codistill.json``'s wall and CPU seconds; the recipe's ``exp/done/<step>.done`` wall seconds);
* student sizes: every student sweep dir ``students_*`` and ``fitnets_*`` (its ``best.json`` picks the
  student on dev) and the teacher-size best student: architecture, parameters,
  frame accuracy, WER (``exp/decode/<dir>_<student>``) and acoustic-model speed on the CPU
  (``exp/results/am_speed.json``, ``asr-kd am-speed``);
* FitNets: ``<dir>/hint/hint.json`` (hint and guided layers, dev hint loss per epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asr_kd.nn.model_dirs import is_model_dir, student_dirs
from asr_kd.report.collect import _read_json
from asr_kd.report.markdown import DASH, fmt, fmt_int, md_table
from asr_kd.report.summary import RunSummary


def _codistill_dirs(exp: Path) -> list[Path]:
    return sorted(p.parent for p in exp.glob("*/codistill.json"))


def _sweeps(exp: Path) -> list[Path]:
    """Student sweep dirs of other sizes: ``students_*`` and ``fitnets_*`` holding student model dirs."""
    return sorted(p for p in exp.iterdir() if p.is_dir() and p.name.startswith(("students_", "fitnets_"))
                  and student_dirs(p)) if exp.is_dir() else []


def _wer(run: RunSummary, name: str, split: str) -> float | None:
    return ((run.wer.get(name) or {}).get(split) or {}).get("wer")


def _done(run: RunSummary, step: str) -> int | None:
    return next((secs for name, secs, _ in run.stage_times if name == step), None)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def codistill_section(run: RunSummary, sources: list[str]) -> str:
    exp = Path(run.cfg.exp)
    dirs = _codistill_dirs(exp)
    if not dirs:
        return ""
    splits = run.splits
    head = ["System", "Members × architecture"] + [f"Frame acc. {s} (%)" for s in splits] + \
           [f"WER {s} (%)" for s in splits] + ["Training wall (s)", "Training CPU (s)"]
    body = []
    if run.baseline:
        body.append(["Baseline (hard labels)", _arch(run.baseline.config, 1)]
                    + [fmt(run.acc(s, run.baseline.key)) for s in splits]
                    + [fmt(_wer(run, "baseline", s)) for s in splits] + [fmt_int(_done(run, "baseline")), DASH])
    if run.members and run.students and run.best_student:
        best = next((st for st in run.students if st.name == run.best_student), None)
        two = [_done(run, "teachers"), _done(run, "students")]
        total = sum(two) if all(t is not None for t in two) else None
        for label, key, wname, arch in ((f"Teacher ensemble ({len(run.members)}×, arithmetic)",
                                         run.ensemble_key("arithmetic"), "ensemble",
                                         _arch(run.members[0].config, len(run.members))),
                                        (f"Two-stage: student {run.best_student} of the ensemble",
                                         best.key if best else None, best.decode_name if best else None,
                                         _arch(best.config) if best else DASH)):
            body.append([label, arch]
                        + [fmt(run.acc(s, key)) for s in splits] + [fmt(_wer(run, wname, s)) for s in splits]
                        + [fmt_int(total) if "student" in label.lower() else fmt_int(two[0]), DASH])
    notes = []
    for d in dirs:
        rep = _read_json(d / "codistill.json", sources) or {}
        opts = rep.get("options", {})
        cfgs = [(_read_json(m / "config.json", sources) or {}) for m in sorted(d.glob("member_*")) if is_model_dir(m)]
        n = rep.get("num_members", len(cfgs))
        arch = _arch(cfgs[0], n) if cfgs else DASH
        dev = (rep.get("dev") or {})
        mean_acc = {s: _mean([run.acc(s, f"{d.name}/{m.name}") for m in sorted(d.glob("member_*"))]) for s in splits}
        if mean_acc.get("dev") is None and dev.get("members"):
            mean_acc["dev"] = _mean(list(dev["members"].values()))
        how = "stacked, 1 process" if rep.get("processes", 1) == 1 else f"{rep['processes']} processes"
        body.append([f"Codistillation `{d.name}`: one member (mean of {n})", arch]
                    + [fmt(mean_acc.get(s)) for s in splits] + [fmt(_wer(run, f"{d.name}_member_00", s)) for s in splits]
                    + [fmt_int(round(rep["train_wall_s"])) if "train_wall_s" in rep else DASH,
                       fmt_int(round(rep["train_cpu_s"])) if "train_cpu_s" in rep else DASH])
        ens = {s: run.acc(s, f"{d.name}/ensemble_arithmetic") for s in splits}
        if ens.get("dev") is None:
            ens["dev"] = dev.get("ensemble_arithmetic")
        body.append([f"Codistillation `{d.name}`: ensemble of its {n} members", arch]
                    + [fmt(ens.get(s)) for s in splits] + [fmt(_wer(run, f"{d.name}_ensemble", s)) for s in splits]
                    + ["(same run)", ""])
        notes.append(f"- `{d.name}`: {how}; alpha {opts.get('alpha', DASH)}, T {opts.get('temperature', DASH)}, "
                     f"snapshot of the others every {opts.get('refresh_every', DASH)} steps, burn-in "
                     f"{opts.get('burn_in_steps', 0)} steps, data shards {opts.get('data_shards', 1)}.")
    return "\n".join([md_table(head, body, "ll" + "r" * (len(head) - 2)), "",
                      "Training time of the baseline and the two-stage route: the recipe's `exp/done/*.done` wall "
                      "seconds (two-stage = teachers + students); codistillation: its own wall and CPU seconds "
                      "(`codistill.json`). WER of a codistilled member: `member_00`.", "", *notes, ""])


def _arch(cfg: dict, members: int = 1) -> str:
    m = cfg.get("model", cfg)
    if "hidden_layers" not in m:
        return DASH
    return (f"{members} × " if members > 1 else "") + f"{m['hidden_layers']} × {m['hidden_dim']}"


def sizes_section(run: RunSummary, sources: list[str]) -> str:
    exp = Path(run.cfg.exp)
    sweeps = _sweeps(exp)
    if not sweeps:
        return ""
    speed = {Path(r["dir"]).resolve(): r for r in ((_read_json(exp / "results" / "am_speed.json", sources) or {})
                                                    .get("models", []))}
    splits = run.splits
    head = ["Student", "Architecture", "Parameters", "Hints"] + [f"Frame acc. {s} (%)" for s in splits] + \
           [f"WER {s} (%)" for s in splits] + ["AM frames/s (CPU)"]
    rows: list[tuple[str, Path, str, dict]] = []
    if run.best_student:
        st = next((s for s in run.students if s.name == run.best_student), None)
        if st:
            rows.append((st.key, st.dir, st.decode_name or "", st.config))
    for sweep in sweeps:
        best = (_read_json(sweep / "best.json", sources) or {}).get("best")
        for d in student_dirs(sweep):
            if best is None or d.name == best:
                rows.append((f"{sweep.name}/{d.name}", d, f"{sweep.name}_{d.name}",
                             _read_json(d / "config.json", sources) or {}))
    body = []
    for key, d, decode_name, cfg in rows:
        hinted = (d.parent / "hint" / "hint.json").is_file()
        sp = speed.get(d.resolve(), {})
        body.append([key, _arch(cfg), fmt_int(cfg.get("num_parameters")), "yes" if hinted else "no"]
                    + [fmt(run.acc(s, key)) for s in splits] + [fmt(_wer(run, decode_name, s)) for s in splits]
                    + [fmt_int(round(sp["frames_per_s"])) if sp else DASH])
    return "\n".join([md_table(head, body, "llrl" + "r" * (len(head) - 4)), "",
                      "Per sweep dir the student chosen on dev (`best.json`). AM frames/s: context window + forward + "
                      "log-softmax on the CPU (`asr-kd am-speed`, `exp/results/am_speed.json`).", ""])


def fitnets_section(run: RunSummary, sources: list[str]) -> str:
    exp = Path(run.cfg.exp)
    hints = sorted(exp.glob("*/hint/hint.json")) if exp.is_dir() else []
    if not hints:
        return ""
    body = []
    for h in hints:
        rep: dict[str, Any] = _read_json(h, sources) or {}
        log = rep.get("log") or []
        body.append([f"`{h.parent.parent.name}`", Path(rep.get("hint_teacher", DASH)).name,
                     fmt_int(rep.get("teacher_hint_layer")), _arch(rep.get("student", {})),
                     fmt_int(rep.get("student_guided_layer")), fmt_int(rep.get("epochs")),
                     fmt(log[0]["dev_hint_loss"], 4) if log else DASH, fmt(log[-1]["dev_hint_loss"], 4) if log else DASH,
                     fmt(rep["guided_rescale"], 2) if "guided_rescale" in rep else DASH])
    head = ["Run", "Hint teacher", "Teacher layer", "Student", "Guided layer", "Hint epochs",
            "Dev hint loss (first epoch)", "(last epoch)", "Guided layer scaled by 1/"]
    return "\n".join([md_table(head, body, "llrlrrrrr"), "",
                      "Stage 1 fits the student's guided layer through a linear regressor to the teacher's hint layer "
                      "(squared error); before stage 2 the guided layer is scaled back to its initial RMS activation "
                      "(the hint fixes its features, not their scale; `asr_kd.training.fitnets`), and stage 2 distils "
                      "the whole student from there. The students with and without hints are compared in *Student "
                      "sizes*.", ""])


def beyond_markdown(run: RunSummary) -> str:
    """The three sections (each only when its dirs exist), or ""; the files read are added to ``run.sources``."""
    parts = []
    for title, fn in (("Codistillation (Anil et al. 2018)", codistill_section),
                      ("Student sizes", sizes_section), ("FitNets hints (Romero et al. 2015)", fitnets_section)):
        text = fn(run, run.sources)
        if text:
            parts += [f"## {title}", "", text]
    return "\n".join(parts)
