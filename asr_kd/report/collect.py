"""Read a run's own files into a :class:`~asr_kd.report.summary.RunSummary` (``asr-kd report``'s input side).

Reads (paths relative to ``--exp`` / ``--data``; every piece is optional -- what is missing is left out
and logged, never fatal):

* models: found by :mod:`asr_kd.nn.model_dirs` (a model dir holds ``final.pt``) under ``exp/baseline``,
  ``exp/teachers`` (``member_*``, + ``ensemble.json``) and ``exp/students`` (+ ``best.json``); each one's
  ``config.json`` (architecture, parameters, temperature), ``eval.json`` and ``train_log.jsonl`` (curves);
* frame accuracy: ``exp/results/*.json`` (``asr-kd evaluate``: per split ``frame_acc`` keyed
  ``baseline``, ``teachers/member_XX``, ``teachers/ensemble_{arithmetic,geometric}``, ``students/T2``),
  falling back to each model directory's ``eval.json`` and ``teachers/ensemble.json``;
* WER: ``exp/decode/<system>/<split>/wer.json`` (``asr-kd decode``) with ``<system>`` the names of
  :func:`asr_kd.nn.model_dirs.run_systems` (``baseline``, ``ensemble``, ``student_T2``); any other decode
  dir is listed too;
* section 6: ``exp/regularizer/report.json``; alignment: ``exp/tri/report.json`` and ``exp/tri/num_pdfs`` (and
  ``exp/tri_nnet/report.json``, the DNN realignment's, when there is one);
* corpus: ``data/fbank/<split>/meta.json``; stage wall times: ``exp/done/<step>.done`` (seconds).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from asr_base.io import read_json
from asr_kd.nn.model_dirs import is_model_dir, member_dirs, run_systems, student_dirs
from asr_kd.report.summary import ModelInfo, ReportConfig, RunSummary, split_sort_key
from data_prep.align.report import stage_summary

log = logging.getLogger(__name__)


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


def _members(tdir: Path) -> list[Path]:
    """The teacher ensemble's member dirs (none yet: empty)."""
    try:
        return [d for d in member_dirs(tdir) if d != tdir]
    except FileNotFoundError:
        return []


def _eval_acc(ev: dict, split: str) -> Any:
    return (ev.get(split) or {}).get("frame_acc")


def collect(cfg: ReportConfig) -> RunSummary:
    """Everything the report shows, read from the run's files."""
    sources: list[str] = []
    exp = Path(cfg.exp)

    # ---- models (asr_kd.nn.model_dirs), named as the recipes name their decode dirs (run_systems)
    decode_names = {s.dirs[0].resolve(): s.name for s in run_systems(exp) if s.kind == "model"}
    bdir = cfg.path(cfg.baseline)
    baseline = _model(bdir, bdir.name, decode_names.get(bdir.resolve()), sources) if is_model_dir(bdir) else None
    tdir = cfg.path(cfg.teachers)
    members = [_model(d, f"{tdir.name}/{d.name}", None, sources) for d in _members(tdir)]
    ensemble = _read_json(tdir / "ensemble.json", sources) or {}
    tdir_eval = _read_json(tdir / "eval.json", sources) or {}
    sdir = cfg.path(cfg.students)
    students = [_model(d, f"{sdir.name}/{d.name}", decode_names.get(d.resolve()), sources)
                for d in student_dirs(sdir)]
    best_json = _read_json(sdir / "best.json", sources) or {}

    # ---- frame accuracy: evaluate's results first, then the model dirs' own eval.json
    frame_acc: dict[str, dict[str, float]] = {}
    acc_sources: set[str] = set()
    results = cfg.results if cfg.results is not None else sorted((exp / "results").glob("*.json"))
    decode_speed = [r for p in sorted((exp / "results").glob("decode_speed_*.json"))
                    if isinstance(r := _read_json(p, sources), dict) and r.get("rows")]
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
        splits = sorted((s for s in found if not s.startswith("train")), key=split_sort_key) or ["dev", "test"]

    best = best_json.get("best")
    if best is None and students:  # no best.json yet: the best on the first evaluation split that has them all
        accs = {s.name: frame_acc.get(splits[0], {}).get(s.key) for s in students}
        if accs and all(a is not None for a in accs.values()):
            best = max(accs, key=accs.get)

    # ---- alignment, corpus, stage times, section 6
    adir = cfg.path(cfg.alignment)
    alignment = _read_json(adir / "report.json", sources)
    nnet = adir.with_name(adir.name + "_nnet")  # asr-kd align's realignment of the same splits (--nnet-align)
    realigned = _read_json(nnet / "report.json", sources) if isinstance(alignment, dict) else None
    if isinstance(realigned, dict) and nnet.name in (realigned.get("by_stage") or {}):
        alignment = {**alignment, "by_stage": {**(alignment.get("by_stage") or
                                                  {adir.name: stage_summary(alignment.get("splits") or {})}),
                                               nnet.name: realigned["by_stage"][nnet.name]}}
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
    for meta in sorted(fbank.glob("*/meta.json"), key=lambda p: split_sort_key(p.parent.name)):
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
    graph = _read_json(cfg.path("graph") / "manifest.json", sources)
    words = cfg.path("graph") / "words.txt"
    graph_words = None
    if words.is_file():
        graph_words = sum(1 for ln in words.read_text(encoding="utf-8").splitlines()
                          if ln.split() and ln.split()[0] not in ("<eps>", "#0", "<s>", "</s>"))
    return RunSummary(cfg, splits, frame_acc, acc_sources, wer, baseline, members, ensemble, tdir, students, best,
                      best_json, regularizer, alignment, num_pdfs, corpus, stage_times, sources, graph, graph_words,
                      decode_speed)

