"""``asr-kd report``: ``report.md`` and PNG plots generated from a run's own files (no number typed in).

:func:`asr_kd.report.collect.collect` reads the run (see there for which files), :mod:`~asr_kd.report.plots`
draws ``training_curves.png``, ``frame_acc_vs_T.png`` and ``wer_per_model.png`` into ``--plots-dir``
(default ``<out dir>/report_plots``), :func:`asr_kd.report.markdown.render` writes ``--out`` (default
``exp/report.md``), with :mod:`asr_kd.report.beyond`'s sections (codistillation, student sizes, FitNets)
where those runs exist; the Table-1 block is printed to stdout.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asr_base.config import add_options, from_args
from asr_base.io import write_text
from asr_kd.report.beyond import beyond_markdown
from asr_kd.report.collect import collect
from asr_kd.report.markdown import render, table1_markdown
from asr_kd.report.plots import make_plots
from asr_kd.report.summary import ReportConfig, RunSummary

log = logging.getLogger(__name__)


def write_report(cfg: ReportConfig) -> RunSummary:
    """Collect, plot, render and write ``cfg.out_path``; returns what was collected."""
    run = collect(cfg)
    plots, notes = make_plots(run, cfg.plots_path)
    beyond = beyond_markdown(run)  # before render: its files join the report's sources
    text = render(run, plots, notes)
    if beyond:
        text = text.replace("\n## Plots\n", f"\n{beyond}\n## Plots\n", 1)
    write_text(cfg.out_path, text)
    log.info("wrote %s (%d plots in %s)", cfg.out_path, len(plots), cfg.plots_path)
    return run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ReportConfig)


def main(args: argparse.Namespace) -> int:
    cfg = from_args(ReportConfig, args)
    if not Path(cfg.exp).is_dir():
        raise SystemExit(f"--exp {cfg.exp}: no such directory")
    run = write_report(cfg)
    if not cfg.quiet:
        print(f"\nTable 1 ({cfg.out_path}):\n")
        print(table1_markdown(run))
    return 0
