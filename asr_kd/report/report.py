"""``asr-kd report``: ``report.md`` and PNG plots generated from a run's own files (no number typed in).

Reads (paths relative to ``--exp`` / ``--data``; every piece is optional -- what is missing shows as "—"
or its section says why it is left out):

* frame accuracy: ``exp/results/*.json`` (``asr-kd evaluate``: per split ``frame_acc`` keyed
  ``baseline``, ``teachers/member_XX``, ``teachers/ensemble_{arithmetic,geometric}``, ``students/T2``),
  falling back to each model directory's ``eval.json`` and ``teachers/ensemble.json``;
* WER: ``exp/decode/<name>/<split>/wer.json`` (``asr-kd decode``) with ``<name>`` ``baseline``,
  ``ensemble``, ``student_<student dir>`` (e.g. ``student_T2``); any other decode dir is listed too;
* models: ``exp/baseline``, ``exp/teachers/member_*`` (+ ``ensemble.json``), ``exp/students/<T>`` (+
  ``best.json``): ``config.json`` (architecture, parameters, temperature), ``train_log.jsonl`` (curves);
* section 6: ``exp/regularizer/report.json``; alignment: ``exp/tri/report.json`` and ``exp/tri/num_pdfs``;
* corpus: ``data/fbank/<split>/meta.json``; stage wall times: ``exp/done/<step>.done`` (seconds).

Writes ``--out`` (default ``exp/report.md``) and the plots into ``--plots-dir`` (default
``<out dir>/report_plots``): ``training_curves.png``, ``frame_acc_vs_T.png``, ``wer_per_model.png``;
prints the Table-1 block to stdout. Python: :func:`collect` -> :class:`RunSummary`, :func:`render`,
:func:`table1_markdown`, :func:`make_plots`, :func:`write_report`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_kd.training.evaluate import gain_recovered
from asr_base.io import atomic_path, read_json, write_text

log = logging.getLogger(__name__)

DASH = "—"
SPLIT_ORDER = ("train", "dev", "test")


# ------------------------------------------------------------------------------------------------ config

@dataclass
class ReportConfig:
    exp: Path = Path("exp")
    data: Path = Path("data")
    out: Path | None = None  # default: <exp>/report.md
    plots_dir: Path | None = None  # default: <out dir>/report_plots
    results: list[Path] | None = None  # frame-accuracy JSONs (default: <exp>/results/*.json)
    # sub-directories of <exp> (absolute paths are used as they are)
    baseline: str = "baseline"
    teachers: str = "teachers"
    students: str = "students"
    regularizer: str = "regularizer"
    alignment: str = "tri"
    decode: str = "decode"
    done: str = "done"
    splits: tuple[str, ...] = ()  # evaluation splits (columns); empty: those evaluated or decoded

    def path(self, sub: str) -> Path:
        return Path(self.exp) / sub

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.exp) / "report.md"

    @property
    def plots_path(self) -> Path:
        return Path(self.plots_dir) if self.plots_dir else self.out_path.parent / "report_plots"


# ---------------------------------------------------------------------------------------------- gathering

@dataclass
class ModelInfo:
    """One trained model directory (baseline, a teacher member or a student)."""

    name: str  # display name (baseline, member_00, T2)
    dir: Path
    key: str  # its system name in asr-kd evaluate's output (baseline, teachers/member_00, students/T2)
    decode_name: str | None  # its directory under exp/decode
    config: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)  # eval.json
    history: list[dict] = field(default_factory=list)  # train_log.jsonl (member history: scalar values)
    temperature: float | None = None

    @property
    def num_parameters(self) -> int | None:
        return self.config.get("num_parameters")


@dataclass
class RunSummary:
    cfg: ReportConfig
    splits: list[str]
    frame_acc: dict[str, dict[str, float]]  # split -> evaluate system name -> %
    acc_sources: set[str]
    wer: dict[str, dict[str, dict]]  # decode name -> split -> wer.json
    baseline: ModelInfo | None
    members: list[ModelInfo]
    ensemble: dict  # ensemble.json (may be empty)
    ensemble_dir: Path
    students: list[ModelInfo]
    best_student: str | None
    best_json: dict
    regularizer: dict | None
    alignment: dict | None
    num_tied_states: int | None
    corpus: dict[str, dict]  # split -> meta.json
    stage_times: list[tuple[str, int | None, str]]  # (step, seconds or None, raw text)
    sources: list[str]

    # ---- lookups
    def acc(self, split: str, key: str) -> float | None:
        return self.frame_acc.get(split, {}).get(key)

    def ensemble_key(self, mean: str = "arithmetic") -> str:
        return f"{self.ensemble_dir.name}/ensemble_{mean}"

    def student(self, name: str | None) -> ModelInfo | None:
        return next((s for s in self.students if s.name == name), None)

    def wer_of(self, decode_name: str | None, split: str) -> float | None:
        w = self.wer.get(decode_name or "", {}).get(split)
        return None if w is None or w.get("wer") is None else float(w["wer"])

    @property
    def num_members(self) -> int:
        return int(self.ensemble.get("num_members") or len(self.members))

    def table1_rows(self) -> list[dict]:
        """Rows of the Table-1 layout: ``{label, system, frame_acc: {split: %}, wer: {split: %}}``."""
        rows = []
        if self.baseline is not None or any(self.baseline_key in a for a in self.frame_acc.values()):
            rows.append(self._row("Baseline (single model, hard labels)", self.baseline_key, "baseline"))
        n = self.num_members
        for mean, dec in (("arithmetic", "ensemble"), ("geometric", "ensemble_geometric")):
            key = self.ensemble_key(mean)
            if any(key in a for a in self.frame_acc.values()) or (mean == "arithmetic" and dec in self.wer):
                rows.append(self._row(f"{f'{n}× e' if n else 'E'}nsemble ({mean} mean)", key, dec))
        best = self.student(self.best_student)
        if best is not None:
            rows.append(self._row(f"Distilled single model ({best.name}, best on dev)", best.key, best.decode_name))
        return rows

    @property
    def baseline_key(self) -> str:
        return self.baseline.key if self.baseline else Path(self.cfg.baseline).name

    def _row(self, label: str, key: str, decode_name: str | None) -> dict:
        return {"label": label, "system": key, "decode": decode_name,
                "frame_acc": {s: self.acc(s, key) for s in self.splits},
                "wer": {s: self.wer_of(decode_name, s) for s in self.splits}}

    def gain(self, split: str, metric: str = "frame_acc") -> dict | None:
        """Share of the (arithmetic) ensemble's gain over the baseline reached by the best student."""
        best = self.student(self.best_student)
        if best is None:
            return None
        if metric == "frame_acc":
            b, e, s = (self.acc(split, k) for k in (self.baseline_key, self.ensemble_key(), best.key))
        else:  # WER: lower is better, the same formula on the error rates
            b, e, s = (self.wer_of(d, split) for d in ("baseline", "ensemble", best.decode_name))
        if b is None or e is None or s is None:
            return None
        return {"baseline": b, "ensemble": e, "student": s, "fraction": gain_recovered(b, e, s)}


def _read_json(path: Path, sources: list[str]) -> Any | None:
    """JSON content, or None (missing or unreadable: logged, never fatal)."""
    if not path.is_file():
        return None
    try:
        obj = read_json(path)
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); left out of the report", path, e)
        return None
    sources.append(str(path))
    return obj


def _read_jsonl(path: Path, sources: list[str]) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            log.warning("%s:%d: not JSON, skipped (a line being written?)", path, i)
    sources.append(str(path))
    return out


def _model(d: Path, key: str, decode_name: str | None, sources: list[str], name: str | None = None) -> ModelInfo:
    m = ModelInfo(name or d.name, d, key, decode_name,
                  config=_read_json(d / "config.json", sources) or {},
                  eval=_read_json(d / "eval.json", sources) or {},
                  history=_read_jsonl(d / "train_log.jsonl", sources))
    t = m.config.get("temperature")
    if t is None:
        match = re.fullmatch(r"T(\d+(?:\.\d+)?)", d.name)
        t = float(match.group(1)) if match else None
    m.temperature = float(t) if t is not None else None
    return m


def _is_model_dir(d: Path) -> bool:
    return d.is_dir() and any((d / f).is_file() for f in ("final.pt", "config.json", "eval.json"))


def _eval_acc(ev: dict, split: str) -> Any:
    return (ev.get(split) or {}).get("frame_acc")


def _split_sort_key(name: str) -> tuple:
    """train*, dev*, test*, then the rest (dev-clean before dev-other, as LibriSpeech lists them)."""
    rank = next((i for i, p in enumerate(SPLIT_ORDER) if name.startswith(p)), len(SPLIT_ORDER))
    return rank, name


def collect(cfg: ReportConfig) -> RunSummary:
    """Everything the report shows, read from the run's files."""
    sources: list[str] = []
    exp = Path(cfg.exp)

    # ---- models
    bdir = cfg.path(cfg.baseline)
    baseline = _model(bdir, bdir.name, "baseline", sources) if _is_model_dir(bdir) else None
    tdir = cfg.path(cfg.teachers)
    members = [_model(d, f"{tdir.name}/{d.name}", None, sources) for d in sorted(tdir.glob("member_*"))
               if _is_model_dir(d)]
    ensemble = _read_json(tdir / "ensemble.json", sources) or {}
    tdir_eval = _read_json(tdir / "eval.json", sources) or {}
    sdir = cfg.path(cfg.students)
    students = [_model(d, f"{sdir.name}/{d.name}", f"student_{d.name}", sources)
                for d in (sorted(p for p in sdir.iterdir() if p.name != "train_state") if sdir.is_dir() else [])
                if _is_model_dir(d)]
    students.sort(key=lambda s: (s.temperature is None, s.temperature or 0.0, s.name))
    best_json = _read_json(sdir / "best.json", sources) or {}

    # ---- frame accuracy: evaluate's results first, then the model dirs' own eval.json
    frame_acc: dict[str, dict[str, float]] = {}
    acc_sources: set[str] = set()
    results = cfg.results if cfg.results is not None else sorted((exp / "results").glob("*.json"))
    for path in results:
        r = _read_json(Path(path), sources)
        if not isinstance(r, dict) or "splits" not in r:
            continue
        for split, d in r["splits"].items():
            frame_acc.setdefault(split, {}).update({k: float(v) for k, v in d.get("frame_acc", {}).items()})
            acc_sources.add(str(path))

    def fallback(split: str, key: str, value: Any, source: Path) -> None:
        if isinstance(value, (int, float)) and key not in frame_acc.get(split, {}):
            frame_acc.setdefault(split, {})[key] = float(value)
            acc_sources.add(str(source))

    evaluated = set(frame_acc)  # splits asr-kd evaluate scored
    own_splits: set[str] = set()  # splits the model dirs record themselves (training: its held-out split)
    for m in ([baseline] if baseline else []) + members + students:
        for split in m.eval:
            own_splits.add(split)
            fallback(split, m.key, _eval_acc(m.eval, split), m.dir / "eval.json")
    for split, ev in tdir_eval.items():
        acc = (ev or {}).get("frame_acc") or {}
        for mean in ("arithmetic", "geometric"):
            fallback(split, f"{tdir.name}/ensemble_{mean}", acc.get(mean), tdir / "eval.json")
    for split, ev in ensemble.items():
        if isinstance(ev, dict) and "ensemble_arithmetic" in ev:
            for mean in ("arithmetic", "geometric"):
                fallback(split, f"{tdir.name}/ensemble_{mean}", ev.get(f"ensemble_{mean}"), tdir / "ensemble.json")

    # ---- WER
    wer: dict[str, dict[str, dict]] = {}
    ddir = cfg.path(cfg.decode)
    for d in sorted(ddir.iterdir()) if ddir.is_dir() else []:
        for w in sorted(d.glob("*/wer.json")):
            obj = _read_json(w, sources)
            if isinstance(obj, dict):
                wer.setdefault(d.name, {})[w.parent.name] = obj

    # ---- the evaluation splits (columns): given, or those evaluated / decoded (else the models' own)
    if cfg.splits:
        splits = list(cfg.splits)
    else:
        found = (evaluated | {s for d in wer.values() for s in d}) or own_splits
        splits = sorted((s for s in found if not s.startswith("train")), key=_split_sort_key) or ["dev", "test"]

    best = best_json.get("best")
    if best is None and students:  # no best.json yet: the best on the first evaluation split that has them all
        accs = {s.name: frame_acc.get(splits[0], {}).get(s.key) for s in students}
        if accs and all(a is not None for a in accs.values()):
            best = max(accs, key=accs.get)

    # ---- alignment, corpus, stage times, section 6
    adir = cfg.path(cfg.alignment)
    alignment = _read_json(adir / "report.json", sources)
    num_pdfs = None
    if (adir / "num_pdfs").is_file():
        try:
            num_pdfs = int((adir / "num_pdfs").read_text().split()[0])
            sources.append(str(adir / "num_pdfs"))
        except (ValueError, IndexError):
            log.warning("%s: not an integer", adir / "num_pdfs")
    if num_pdfs is None and alignment:
        num_pdfs = alignment.get("num_tied_states")
    if num_pdfs is None:
        num_pdfs = next((m.config.get("model", {}).get("num_pdfs") for m in ([baseline] if baseline else []) + members
                         + students if m.config.get("model")), None)
    corpus = {}
    fbank = Path(cfg.data) / "fbank"
    for meta in sorted(fbank.glob("*/meta.json"), key=lambda p: _split_sort_key(p.parent.name)):
        obj = _read_json(meta, sources)
        if isinstance(obj, dict):
            corpus[meta.parent.name] = obj
    regularizer = _read_json(cfg.path(cfg.regularizer) / "report.json", sources)
    stage_times = []
    markers = cfg.path(cfg.done)
    for p in sorted(markers.glob("*.done"), key=lambda p: (p.stat().st_mtime_ns, p.name)) if markers.is_dir() else []:
        raw = p.read_text(encoding="utf-8", errors="replace").strip()
        secs = int(raw) if re.fullmatch(r"\d+", raw) else None
        stage_times.append((p.stem, secs, raw))
        sources.append(str(p))
    return RunSummary(cfg, splits, frame_acc, acc_sources, wer, baseline, members, ensemble, tdir, students, best,
                      best_json, regularizer, alignment, num_pdfs, corpus, stage_times, sources)


# -------------------------------------------------------------------------------------------- formatting

def fmt(x: float | None, digits: int = 2, suffix: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:.{digits}f}{suffix}"


def fmt_int(x: Any) -> str:
    return DASH if x is None else f"{int(x):,}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return DASH
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fmt_fraction(g: dict | None, lower_is_better: bool = False) -> str:
    """``86%``; with a note when the ensemble is no better than the baseline (the share is then meaningless)."""
    if g is None:
        return DASH
    if g["fraction"] is None:
        return f"{DASH} (the ensemble is not different from the baseline)"
    text = f"{100 * g['fraction']:.0f}%"
    worse = g["ensemble"] > g["baseline"] if lower_is_better else g["ensemble"] < g["baseline"]
    return text + (" (the ensemble is worse than the baseline: not meaningful)" if worse else "")


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table1_markdown(run: RunSummary) -> str:
    """The Table-1 block: baseline, ensemble(s), best student; frame accuracy and WER; share of the gain."""
    rows = run.table1_rows()
    if not rows:
        return "No trained models found yet (no baseline, ensemble or students under " f"{run.cfg.exp})."
    header = ["System"] + [f"Frame acc. {s} (%)" for s in run.splits] + [f"WER {s} (%)" for s in run.splits]
    body = [[r["label"]] + [fmt(r["frame_acc"][s]) for s in run.splits] + [fmt(r["wer"][s]) for s in run.splits]
            for r in rows]
    lines = [md_table(header, body), ""]
    for split in run.splits:
        g = run.gain(split)
        if g is not None:
            lines.append(f"- Ensemble frame-accuracy gain over the baseline recovered by the distilled model on "
                         f"{split}: **{fmt_fraction(g)}** = ({fmt(g['student'])} − {fmt(g['baseline'])}) / "
                         f"({fmt(g['ensemble'])} − {fmt(g['baseline'])})")
    for split in run.splits:
        g = run.gain(split, "wer")
        if g is not None:
            lines.append(f"- Ensemble WER reduction recovered on {split}: {fmt_fraction(g, lower_is_better=True)} = "
                         f"({fmt(g['baseline'])} − {fmt(g['student'])}) / "
                         f"({fmt(g['baseline'])} − {fmt(g['ensemble'])})")
    if not any(run.gain(s) for s in run.splits):
        lines.append("- Share of the ensemble's gain recovered: " + DASH +
                     " (needs baseline, ensemble and best-student frame accuracy on the same split)")
    return "\n".join(lines).rstrip() + "\n"


def _members_section(run: RunSummary) -> str:
    if not run.members:
        return "No teacher members found.\n"
    body, accs = [], {s: [] for s in run.splits}
    for m in run.members:
        row = [m.name, str(m.config.get("seed", DASH))]
        for s in run.splits:
            a = run.acc(s, m.key)
            row.append(fmt(a))
            if a is not None:
                accs[s].append(a)
        body.append(row)
    for label, f in (("mean", lambda v: sum(v) / len(v)), ("min", min), ("max", max)):
        body.append([f"*{label}*", ""] + [fmt(f(accs[s])) if accs[s] else DASH for s in run.splits])
    for mean in ("arithmetic", "geometric"):
        body.append([f"**ensemble ({mean})**", ""] + [fmt(run.acc(s, run.ensemble_key(mean))) for s in run.splits])
    return md_table(["Member", "seed"] + [f"Frame acc. {s} (%)" for s in run.splits], body) + "\n"


def _sweep_section(run: RunSummary) -> str:
    if not run.students:
        return "No distilled students found.\n"
    sel = run.best_json.get("selected_on", "dev frame accuracy")
    body = []
    for st in run.students:
        t = fmt(st.temperature, 0 if st.temperature is not None and float(st.temperature).is_integer() else 2) \
            if st.temperature is not None else ("logit matching" if st.name == "logit_matching" else DASH)
        body.append([("**" + st.name + "**") if st.name == run.best_student else st.name, t]
                    + [fmt(run.acc(s, st.key)) for s in run.splits]
                    + [fmt(run.wer_of(st.decode_name, s)) for s in run.splits])
    cfg = run.students[0].config
    header = ["Student", "T"] + [f"Frame acc. {s} (%)" for s in run.splits] + [f"WER {s} (%)" for s in run.splits]
    text = md_table(header, body, "ll" + "r" * (2 * len(run.splits)))
    notes = [f"Best student (bold): **{run.best_student or DASH}**, selected on {sel}."]
    if cfg:
        notes.append(f"Loss `{cfg.get('loss', DASH)}`, hard-label weight {cfg.get('hard_weight', DASH)}, "
                     f"{cfg.get('ensemble_mean', DASH)} mean of {cfg.get('num_teachers', DASH)} teachers; "
                     "students are used at T = 1.")
    return text + "\n\n" + " ".join(notes) + "\n"


def _regularizer_section(run: RunSummary) -> str:
    r = run.regularizer
    if not r:
        return (f"Not run (no `{run.cfg.path(run.cfg.regularizer) / 'report.json'}`; the mini recipe runs it with "
                "`--regularizer true`).\n")
    frac = r.get("fraction")
    pct = f"{100 * frac:g}%" if isinstance(frac, (int, float)) else "a fraction"
    labels = {"baseline_full_data": "Baseline (100% of training set, hard labels)"}
    body = []
    for name, row in r.get("frame_acc", {}).items():
        label = labels.get(name) or (f"Hard labels ({pct} of training set)" if name.startswith("hard_")
                                     else f"Soft targets of the full-data model ({pct} of training set)"
                                     if name.startswith("soft_") else name)
        body.append([label, fmt(row.get("train")), fmt(row.get("test")), fmt_int(row.get("train_frames"))])
    text = md_table(["System & training set", "Train frame acc. (%)", "Test frame acc. (%)", "Train frames"], body)
    note = (f"Soft targets at T = {r.get('temperature', DASH)}, hard-label weight {r.get('hard_weight', DASH)}, "
            f"teacher `{r.get('teacher', DASH)}`. ")
    if r.get("note"):
        note += r["note"][:1].upper() + r["note"][1:] + "."
    return text + "\n\n" + note.strip() + "\n"


def _corpus_section(run: RunSummary) -> str:
    if not run.corpus:
        return f"No feature stores found (`{Path(run.cfg.data) / 'fbank'}/<split>/meta.json`).\n"
    body = []
    for split, m in run.corpus.items():
        secs = m.get("audio_seconds")
        body.append([split, fmt(secs / 3600 if secs is not None else None, 3), fmt_int(m.get("num_utts")),
                     fmt_int(m.get("num_frames")), fmt_int(m.get("speakers")), fmt_int(m.get("num_skipped"))])
    return md_table(["Split", "Hours", "Utterances", "Frames", "Speakers", "Skipped utts"], body) + "\n"


def _models_section(run: RunSummary) -> str:
    lines = [f"Tied states (DNN outputs): **{fmt_int(run.num_tied_states)}**", ""]
    body = []

    def arch(m: ModelInfo) -> str:
        c = m.config.get("model") or {}
        if not c:
            return DASH
        return (f"{c.get('hidden_layers')} × {c.get('hidden_dim')} ReLU, window {c.get('left_context')}+1+"
                f"{c.get('right_context')} × {c.get('feat_dim')}")

    def epochs(m: ModelInfo) -> str:
        return fmt_int(m.config.get("epochs_trained", sum(1 for h in m.history if h.get("type") == "epoch") or None))

    if run.baseline:
        body.append(["Baseline", arch(run.baseline), fmt_int(run.baseline.num_parameters), epochs(run.baseline)])
    if run.members:
        params = [m.num_parameters for m in run.members]
        total = sum(params) if all(p is not None for p in params) else None
        body.append([f"Teacher ensemble ({len(run.members)} members)", arch(run.members[0]),
                     f"{fmt_int(params[0])} each, {fmt_int(total)} total",
                     "/".join(epochs(m) for m in run.members)])
    for st in run.students:
        body.append([f"Student {st.name}", arch(st), fmt_int(st.num_parameters), epochs(st)])
    if not body:
        return lines[0] + "\n\nNo trained models found.\n"
    lines.append(md_table(["Model", "Architecture", "Parameters", "Epochs"], body, "llrr"))
    return "\n".join(lines) + "\n"


def _alignment_section(run: RunSummary) -> str:
    a = run.alignment
    if not a:
        return f"No alignment report (`{run.cfg.path(run.cfg.alignment) / 'report.json'}`).\n"
    body = []
    for split, s in sorted(a.get("splits", {}).items(), key=lambda kv: _split_sort_key(kv[0])):
        body.append([split, fmt_int(s.get("utterances")), fmt_int(s.get("aligned")), fmt_int(s.get("failed")),
                     fmt(100 * s["fraction_aligned"] if s.get("fraction_aligned") is not None else None, 1),
                     fmt(s.get("avg_loglik"), 3), fmt_int(s.get("aligned_frames"))])
    lines = [md_table(["Split", "Utterances", "Aligned", "Failed", "Aligned (%)", "Avg loglik/frame",
                       "Aligned frames"], body) if body else "No per-split alignment results.", ""]
    tri = a.get("tri", {})
    lines.append(f"Tied states: {fmt_int(a.get('num_tied_states'))}, used on train: {fmt_int(a.get('states_used'))}; "
                 f"monophone pdfs: {fmt_int(a.get('mono', {}).get('num_pdfs'))}, triphone Gaussians: "
                 f"{fmt_int(tri.get('num_gauss'))}; alignment stage {fmt(a.get('seconds'), 0)} s.")
    occ = run.cfg.path(run.cfg.alignment) / "occupancy.png"
    if occ.is_file():
        lines.append(f"\n![state occupancy]({_rel(occ, run.cfg.out_path.parent)})")
    return "\n".join(lines) + "\n"


def _decode_section(run: RunSummary) -> str:
    if not run.wer:
        return f"No decoding results yet (`{run.cfg.path(run.cfg.decode)}/<model>/<split>/wer.json`).\n"
    body = []
    for name in _decode_order(run):
        for split, w in sorted(run.wer[name].items(), key=lambda kv: _split_sort_key(kv[0])):
            body.append([name, split, fmt(w.get("wer")), f"{fmt_int(w.get('errors'))} / {fmt_int(w.get('ref_words'))}",
                         "/".join(fmt_int(w.get(k)) for k in ("substitutions", "deletions", "insertions")),
                         f"{fmt_int(w.get('failed'))} / {fmt_int(w.get('utterances'))}", fmt(w.get("rtf"), 3)])
    return md_table(["Model", "Split", "WER (%)", "Errors / words", "S/D/I", "Failed / utts", "RTF"], body,
                    "llrrrrr") + "\n"


def _times_section(run: RunSummary) -> str:
    if not run.stage_times:
        return f"No stage markers (`{run.cfg.path(run.cfg.done)}/<step>.done`).\n"
    body = [[name, fmt_int(s) if s is not None else f"{DASH} (marker holds {raw!r})", fmt_seconds(s)]
            for name, s, raw in run.stage_times]
    total = sum(s for _, s, _ in run.stage_times if s is not None)
    body.append(["**total**", f"**{total:,}**", f"**{fmt_seconds(total)}**"])
    return md_table(["Step (in order of completion)", "Seconds", "h:mm:ss"], body) + "\n"


def _decode_order(run: RunSummary) -> list[str]:
    first = ["baseline", "ensemble", "ensemble_geometric"] + [s.decode_name for s in run.students]
    return [n for n in first if n in run.wer] + sorted(n for n in run.wer if n not in first)


def _rel(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


def render(run: RunSummary, plots: dict[str, Path], notes: dict[str, str] | None = None) -> str:
    """The whole report.md."""
    notes = notes or {}
    cfg = run.cfg
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    out_dir = cfg.out_path.parent
    parts = [
        f"# asr-kd report: `{Path(cfg.exp).resolve()}`",
        "",
        f"Generated {now} by `asr-kd report` from this run's own files (listed under *Sources*). "
        f"Frame accuracy is over aligned frames; WER through the decoding graph; \"{DASH}\" = not produced (yet).",
        "",
        "## Table 1: baseline, ensemble and distilled model",
        "",
        table1_markdown(run),
        "## Teacher ensemble members",
        "",
        _members_section(run),
        "## Temperature sweep",
        "",
        _sweep_section(run),
        "## Soft targets as a regularizer (paper section 6)",
        "",
        _regularizer_section(run),
        "## Corpus",
        "",
        _corpus_section(run),
        "## Models",
        "",
        _models_section(run),
        "## Alignment",
        "",
        _alignment_section(run),
        "## Decoding",
        "",
        _decode_section(run),
        "## Wall time per stage",
        "",
        _times_section(run),
        "## Plots",
        "",
    ]
    titles = {"training_curves": "Training curves", "frame_acc_vs_T": "Frame accuracy vs temperature",
              "wer_per_model": "WER per model"}
    for key, title in titles.items():
        if key in plots:
            parts += [f"### {title}", "", f"![{title}]({_rel(plots[key], out_dir)})", ""]
        else:
            parts += [f"### {title}", "", f"Left out: {notes.get(key, 'no data')}.", ""]
    parts += ["## Sources", "", "Frame accuracies from: " + (", ".join(f"`{s}`" for s in sorted(run.acc_sources))
                                                            or DASH) + ".", "",
              "<details><summary>All files read</summary>", "",
              "\n".join(f"- `{s}`" for s in dict.fromkeys(run.sources)) or DASH, "", "</details>", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------- plots

def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _scalar(v: Any) -> Any:
    return v[0] if isinstance(v, list) and v else v


def plot_training_curves(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    models = ([("baseline", run.baseline)] if run.baseline else []) + [("teacher", m) for m in run.members] + \
             [("student", s) for s in run.students]
    models = [(role, m) for role, m in models if m.history]
    if not models:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    cmap = plt.get_cmap("viridis")
    seen_teacher = False
    for role, m in models:
        train = [r for r in m.history if r.get("type") == "train"]
        epochs = [r for r in m.history if r.get("type") == "epoch"]
        if role == "baseline":
            style = dict(color="black", linewidth=2, label="baseline")
        elif role == "teacher":
            style = dict(color="tab:blue", alpha=0.5, linewidth=1, label=None if seen_teacher else "teachers")
            seen_teacher = True
        else:
            i = run.students.index(m)
            style = dict(color=cmap(0.15 + 0.7 * i / max(len(run.students) - 1, 1)), linewidth=1.5,
                         label=f"student {m.name}")
        if train:
            steps = [r["global_step"] for r in train]
            axes[0].plot(steps, [_scalar(r.get("frame_acc")) for r in train], **style)
            axes[1].plot(steps, [_scalar(r.get("loss")) for r in train], **style)
        if epochs:
            axes[2].plot([r["epoch"] + 1 for r in epochs], [_scalar(r.get("dev_acc")) for r in epochs], marker="o",
                         **style)
    axes[0].set(xlabel="step", ylabel="frame accuracy (%)", title="training frame accuracy (running)")
    axes[1].set(xlabel="step", ylabel="loss", title="training loss (students: distillation objective)",
                yscale="log")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(xlabel="epoch", ylabel="frame accuracy (%)", title="held-out frame accuracy per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_acc_vs_t(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt

    studs = [s for s in run.students if s.temperature]
    if not studs:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, split in enumerate(run.splits):
        pts = [(s.temperature, run.acc(split, s.key)) for s in studs]
        pts = [(t, a) for t, a in pts if a is not None]
        if not pts:
            continue
        c = colors[i % len(colors)]
        ax.plot([t for t, _ in pts], [a for _, a in pts], marker="o", color=c, label=f"students, {split}")
        drawn = True
        for key, ls, name in ((run.baseline_key, ":", "baseline"), (run.ensemble_key(), "--", "ensemble")):
            a = run.acc(split, key)
            if a is not None:
                ax.axhline(a, color=c, linestyle=ls, linewidth=1, label=f"{name}, {split}")
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ts = sorted({s.temperature for s in studs})
    ax.set_xticks(ts, [f"{t:g}" for t in ts])
    ax.minorticks_off()
    ax.set(xlabel="temperature T", ylabel="frame accuracy (%)", title="distilled students: frame accuracy vs T")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_wer(run: RunSummary, path: Path) -> bool:
    import matplotlib.pyplot as plt
    import numpy as np

    names = _decode_order(run)
    splits = sorted({s for n in names for s in run.wer[n]}, key=_split_sort_key)
    if not names or not any(run.wer_of(n, s) is not None for n in names for s in splits):
        return False
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.5))
    width = 0.8 / len(splits)
    x = np.arange(len(names))
    for i, split in enumerate(splits):
        vals = [run.wer_of(n, split) for n in names]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, [v if v is not None else 0.0 for v in vals], width,
                      label=split)
        for b, v in zip(bars, vals):
            ax.annotate(fmt(v, 1) if v is not None else "n/a", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set(ylabel="WER (%)", title="word error rate per model")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def make_plots(run: RunSummary, plots_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Write the PNGs that have data; returns ``({key: path}, {key: why left out})``."""
    import matplotlib

    matplotlib.use("Agg")
    made, notes = {}, {}
    jobs = [("training_curves", plot_training_curves, "no train_log.jsonl in any model directory"),
            ("frame_acc_vs_T", plot_acc_vs_t, "no student with a temperature and a frame accuracy"),
            ("wer_per_model", plot_wer, "no decoding results (wer.json) yet")]
    for key, fn, why in jobs:
        path = Path(plots_dir) / f"{key}.png"
        try:
            ok = fn(run, path)
        except Exception as e:  # a plot must never cost the report
            log.warning("plot %s failed: %s", key, e)
            ok, why = False, f"plotting failed ({type(e).__name__}: {e})"
        if ok:
            made[key] = path
        else:
            path.unlink(missing_ok=True)  # no stale plot from an earlier run
            notes[key] = why
    return made, notes


def write_report(cfg: ReportConfig) -> RunSummary:
    """Collect, plot, render and write ``cfg.out_path``; returns what was collected."""
    run = collect(cfg)
    plots, notes = make_plots(run, cfg.plots_path)
    write_text(cfg.out_path, render(run, plots, notes))
    log.info("wrote %s (%d plots in %s)", cfg.out_path, len(plots), cfg.plots_path)
    return run


# -------------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp", default="exp", help="experiment directory of the run")
    parser.add_argument("--data", default="data", help="data directory (feature stores in DATA/fbank/<split>)")
    parser.add_argument("--out", default=None, help="report file; unset: EXP/report.md")
    parser.add_argument("--plots-dir", default=None, help="PNG directory; unset: <out dir>/report_plots")
    parser.add_argument("--results", nargs="*", default=None,
                        help="frame-accuracy JSONs of asr-kd evaluate; unset: EXP/results/*.json")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="evaluation splits (table columns); unset: every split evaluated or decoded "
                             "(dev* before test*)")
    d = ReportConfig()
    g = parser.add_argument_group("locations inside --exp")
    for name in ("baseline", "teachers", "students", "regularizer", "alignment", "decode", "done"):
        g.add_argument(f"--{name}-dir", dest=name, default=getattr(d, name), help=f"{name} (relative to --exp)")
    parser.add_argument("--quiet", action="store_true", help="do not print the Table-1 block to stdout")


def main(args: argparse.Namespace) -> int:
    cfg = ReportConfig(exp=Path(args.exp), data=Path(args.data), out=Path(args.out) if args.out else None,
                       plots_dir=Path(args.plots_dir) if args.plots_dir else None,
                       results=[Path(p) for p in args.results] if args.results is not None else None,
                       baseline=args.baseline, teachers=args.teachers, students=args.students,
                       regularizer=args.regularizer, alignment=args.alignment, decode=args.decode, done=args.done,
                       splits=tuple(args.splits or ()))
    if not Path(cfg.exp).is_dir():
        raise SystemExit(f"--exp {cfg.exp}: no such directory")
    run = write_report(cfg)
    if not args.quiet:
        print(f"\nTable 1 ({cfg.out_path}):\n")
        print(table1_markdown(run))
    return 0
