"""``asr-kd report-seeds``: Table 1 over several runs of one recipe that differ only in ``--seed``.

Each run dir (``RUN/exp``, ``RUN/data``) is collected exactly as ``asr-kd report`` collects it
(:func:`asr_kd.report.collect.collect`); every Table-1 cell (frame accuracy and WER per split, for the
baseline, the arithmetic-mean ensemble and the dev-chosen student) and the share of the ensemble's gain the
student recovers are given as mean ± sample standard deviation over the runs, with the per-run values beside
them (a run whose ensemble is no better than its baseline has no share: it is left out, shown as a dash). The recovered share is the headline on the report splits only (dev selected the student, its early
stopping and the LM weight). Output: a markdown file and a JSON with the same numbers (``--json``).

The recipes' ``--seeds "1 2 3"`` runs the model stages once per seed on the same corpus, features, alignment
and graph (``recipes/shared/common.sh``: ``seed_runs``) and then this command.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json, write_text
from asr_kd.report.collect import collect
from asr_kd.report.markdown import DASH, md_table
from asr_kd.report.summary import ReportConfig, RunSummary

log = logging.getLogger(__name__)

ROWS = (("baseline", "Baseline"), ("ensemble", "Ensemble (arithmetic mean)"), ("student", "Distilled (dev-chosen T)"))


@dataclass(kw_only=True)
class SeedsConfig:
    runs: list[str] = option(help="run dirs (each with exp/ and data/), one per seed")
    out: str = option(help="markdown file (e.g. exp/seeds.md)")
    json: str | None = option(None, help="JSON with the same numbers; unset: --out with .json")


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _cells(run: RunSummary) -> dict[str, float]:
    """``"<row>/<metric>/<split>"`` -> value for one run (absent cells left out)."""
    rows = run.table1_rows()
    by_role = {"baseline": rows[0] if rows and rows[0]["label"].startswith("Baseline") else None,
               "ensemble": next((r for r in rows if "arithmetic" in r["label"]), None),
               "student": next((r for r in rows if r["label"].startswith("Distilled")), None)}
    out: dict[str, float] = {}
    for role, row in by_role.items():
        for metric in ("frame_acc", "wer"):
            for split, v in (row or {}).get(metric, {}).items():
                if v is not None:
                    out[f"{role}/{metric}/{split}"] = float(v)
    for split in run.splits:
        for metric in ("frame_acc", "wer"):
            g = run.gain(split, metric)
            if g is not None and g["fraction"] is not None and g["ensemble_better"]:  # else: left out
                out[f"recovered/{metric}/{split}"] = 100.0 * g["fraction"]
    return out


def _fmt(values: list[float]) -> str:
    if not values:
        return DASH
    m, s = mean_std(values)
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"


def aggregate(cfg: SeedsConfig) -> dict:
    """Collect every run; returns ``{runs, seeds, splits, selection_splits, cells: {key: [value per run]}}``
    (None where a run lacks the cell)."""
    per_run, seeds, splits, selection = [], [], [], []
    for d in cfg.runs:
        rc = ReportConfig(exp=str(Path(d) / "exp"), data=str(Path(d) / "data"), quiet=True)
        if not Path(rc.exp).is_dir():
            raise SystemExit(f"{d}: no exp/ directory (not a run dir)")
        run = collect(rc)
        per_run.append(_cells(run))
        seeds.append(run.baseline.config.get("seed") if run.baseline else None)
        splits += [s for s in run.splits if s not in splits]
        selection += [s for s in run.selection_splits if s not in selection]
    keys = list(dict.fromkeys(k for c in per_run for k in c))
    return {"runs": [str(d) for d in cfg.runs], "seeds": seeds, "splits": splits, "selection_splits": selection,
            "cells": {k: [c.get(k) for c in per_run] for k in keys}}


def seeds_markdown(agg: dict) -> str:
    splits, sel, cells = agg["splits"], agg["selection_splits"], agg["cells"]
    n = len(agg["runs"])
    vals = lambda key: [v for v in cells.get(key, []) if v is not None]  # noqa: E731
    header = ["System"] + [f"Frame acc. {s} (%)" for s in splits] + [f"WER {s} (%)" for s in splits]
    body = [[label] + [_fmt(vals(f"{role}/{m}/{s}")) for m in ("frame_acc", "wer") for s in splits]
            for role, label in ROWS]
    seeds = ", ".join(str(s) for s in agg["seeds"])
    lines = [f"# Table 1 over {n} seeds", "",
             f"Mean ± sample standard deviation over {n} runs (seeds {seeds}) of the same corpus, features, "
             "alignment and graph; each run's student chosen on its own dev.", "", md_table(header, body), ""]
    for s in splits:
        for metric, what in (("frame_acc", "frame-accuracy gain"), ("wer", "WER reduction")):
            v = vals(f"recovered/{metric}/{s}")
            if not v:
                continue
            per_run = " / ".join(f"{x:.0f}%" for x in v)
            text = f"Share of the ensemble's {what} recovered on {s}: {_fmt(v)}% (per run: {per_run})"
            if s in sel:
                lines.append(f"- Not a result ({s} selected early stopping, T or the LM weight): {text}")
            else:
                lines.append(f"- **{text}**" if metric == "frame_acc" else f"- {text}")
    lines += ["", "Per run:", ""]
    keys = [f"{role}/{m}/{s}" for role, _ in ROWS for m in ("frame_acc", "wer") for s in splits]
    keys += [f"recovered/{m}/{s}" for m in ("frame_acc", "wer") for s in splits]
    rows = [[k] + [DASH if v is None else f"{v:.2f}" for v in cells.get(k, [None] * n)] for k in keys if k in cells]
    lines.append(md_table(["cell"] + [f"seed {s}" for s in agg["seeds"]], rows))
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SeedsConfig)


def main(args: argparse.Namespace) -> int:
    cfg = from_args(SeedsConfig, args)
    agg = aggregate(cfg)
    text = seeds_markdown(agg)
    write_text(cfg.out, text)
    write_json(cfg.json or str(Path(cfg.out).with_suffix(".json")), agg)
    log.info("wrote %s (%d runs)", cfg.out, len(agg["runs"]))
    print(text)
    return 0
