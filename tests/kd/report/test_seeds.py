"""asr-kd report-seeds: Table 1 as mean ± std over run dirs that differ in their seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from asr_base.io import write_json
from asr_kd.cli import main
from asr_kd.report.seeds import mean_std

# per seed: (baseline, ensemble, chosen student T2) frame accuracy on dev and on test
ACC = {1: {"dev": (50.0, 55.0, 54.0), "test": (40.0, 48.0, 47.0)},
       2: {"dev": (51.0, 56.0, 53.0), "test": (42.0, 50.0, 46.0)},
       3: {"dev": (49.0, 54.0, 54.0), "test": (41.0, 47.0, 46.4)},
       4: {"dev": (50.0, 49.0, 49.5), "test": (42.0, 41.0, 41.5)}}  # an ensemble worse than its baseline


def _fake_run(root: Path, seed: int) -> Path:
    """The files asr-kd report reads: model dirs (config.json names the dev split), best.json, evaluate's JSONs."""
    exp = root / f"run{seed}" / "exp"
    for d in ("baseline", "students/T1", "students/T2"):
        (exp / d).mkdir(parents=True)
        (exp / d / "final.pt").touch()
        write_json(exp / d / "config.json", {"seed": seed, "data": {"dev_feats": "data/fbank/dev"}})
    write_json(exp / "students/best.json", {"best": "T2"})
    for split, (b, e, s) in ACC[seed].items():
        write_json(exp / f"results/frame_acc_{split}.json", {"splits": {split: {"frame_acc": {
            "baseline": b, "teachers/ensemble_arithmetic": e, "students/T1": s - 1, "students/T2": s}}}})
    return exp.parent


def test_mean_std():
    assert mean_std([2.0]) == (2.0, None)
    m, s = mean_std([1.0, 2.0, 6.0])
    assert m == pytest.approx(3.0) and s == pytest.approx(math.sqrt(7.0))


def test_report_seeds_aggregates_every_cell(tmp_path, capsys):
    runs = [_fake_run(tmp_path, s) for s in (1, 2, 3)]
    out = tmp_path / "seeds.md"
    assert main(["report-seeds", "--runs", *map(str, runs), "--out", str(out)]) == 0
    md, agg = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    assert agg["seeds"] == [1, 2, 3] and agg["selection_splits"] == ["dev"]
    assert agg["cells"]["student/frame_acc/test"] == [47.0, 46.0, 46.4]
    m, s = mean_std([47.0, 46.0, 46.4])
    row = next(ln for ln in md.splitlines() if ln.startswith("| Distilled"))
    assert f"{m:.2f} ± {s:.2f}" in row
    shares = [100 * (ACC[k]["test"][2] - ACC[k]["test"][0]) / (ACC[k]["test"][1] - ACC[k]["test"][0]) for k in (1, 2, 3)]
    assert agg["cells"]["recovered/frame_acc/test"] == pytest.approx(shares)
    # seed 4's ensemble is worse than its baseline: its share (50%) is not meaningful and stays out of the mean
    runs4 = [*runs, _fake_run(tmp_path, 4)]
    assert main(["report-seeds", "--runs", *map(str, runs4), "--out", str(tmp_path / "s4.md")]) == 0
    agg4 = json.loads((tmp_path / "s4.json").read_text())
    assert agg4["cells"]["recovered/frame_acc/test"] == pytest.approx([*shares, None])
    m, s = mean_std(shares)
    headline = next(ln for ln in md.splitlines() if "recovered on test" in ln)
    assert headline.startswith("- **") and f"{m:.2f} ± {s:.2f}%" in headline
    assert next(ln for ln in md.splitlines() if "recovered on dev" in ln).startswith("- Not a result (dev selected early stopping")
    assert "| WER dev (%)" in md and "—" in row  # nothing decoded: a dash, not a number
    assert md in capsys.readouterr().out


def test_report_seeds_refuses_a_dir_without_exp(tmp_path):
    with pytest.raises(SystemExit, match="no exp/ directory"):
        main(["report-seeds", "--runs", str(tmp_path), "--out", str(tmp_path / "s.md")])
