"""Helpers of the recipe tests (plain functions, exposed as the session fixture ``recipe``): running a
recipe, the steps it ran, and the checks that a finished run holds real, consistent numbers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_recipe(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", str(REPO / script), *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=1500)
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stderr[-4000:]}"
    return proc


def table1_rows(report: str) -> list[dict[str, str]]:
    """The rows of Table 1 in report.md as {column header: cell}."""
    section = report.split("## Table 1", 1)[1].split("\n## ", 1)[0]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section.splitlines()
             if ln.startswith("| ")]
    return [dict(zip(cells[0], row)) for row in cells[2:]]  # cells[1]: the | --- | line


def check_decoding_vocabulary(run: Path, allowed: set[str], eval_splits: list[str]) -> None:
    """The decoding graph's words are ``allowed`` (the LM text's / release lexicon's), never a dev/test
    transcript's; every eval-split word outside them is counted as an OOV in wer.json."""
    special = {"<eps>", "#0", "<s>", "</s>", "!SIL", "<UNK>"}
    graph_words = {ln.split()[0] for ln in (run / "exp/graph/words.txt").read_text().splitlines()} - special
    assert graph_words and graph_words <= allowed, sorted(graph_words - allowed)[:10]
    for split in eval_splits:
        refs = [w for ln in (run / "data" / split / "text").read_text().splitlines() for w in ln.split()[1:]]
        expected_oov = sum(w not in graph_words for w in refs)
        for w in (run / "exp/decode").glob(f"*/{split}/wer.json"):
            assert json.loads(w.read_text())["oov_ref_words"] == expected_oov, (w, expected_oov)


def check_tuning(run: Path, tune: str, evals: list[str]) -> None:
    """Dev's lattices were swept, dev reports its best point and test reports exactly dev's point."""
    from asr_kd.decoding.decode import best_point  # noqa: PLC0415

    for d in (run / "exp/decode").iterdir():
        dev = json.loads((d / tune / "sweep.json").read_text())
        assert len(dev["points"]) > 2 and len(list((d / tune / "scoring").glob("hyp_*.txt"))) == len(dev["points"])
        point = list(best_point(d / tune / "sweep.json"))
        best = min(r["errors"] for r in dev["points"])
        assert json.loads((d / tune / "wer.json").read_text())["one_best"] == point
        assert json.loads((d / tune / "wer.json").read_text())["errors"] == best
        for split in evals:
            assert json.loads((d / split / "wer.json").read_text())["one_best"] == point, (d, split)


def check_run(run: Path, eval_splits: list[str], table1_only: bool = False) -> None:
    """A finished run holds real numbers in a sane range, consistent between its files -- not just files.
    ``table1_only``: the recipe decodes Table 1's systems only (the mini recipe's ``--decode-systems table1``)."""
    from asr_kd.decoding.list_models import ListModelsConfig, list_systems  # noqa: PLC0415

    exp = run / "exp"
    num_pdfs = int((exp / "tri/num_pdfs").read_text())
    alignment = json.loads((exp / "tri/report.json").read_text())
    assert set(alignment["splits"]) >= {"train", *eval_splits}
    for split, a in alignment["splits"].items():
        assert 0.75 <= a["fraction_aligned"] <= 1.0 and a["aligned_frames"] > 0, (split, a)
        b = a["sanity"].get("boundaries")
        if b:  # synthetic corpora: reference timings, agreement per speaker adding up to the split's
            assert sum(v["reference_boundaries"] for v in b["by_speaker"].values()) == b["reference_boundaries"]
    systems = [s.name for s in list_systems(ListModelsConfig(exp=str(exp), table1=table1_only))]
    assert systems[:2] == ["baseline", "ensemble"]
    assert len(systems) == 3 if table1_only else "student_T2" in systems
    assert sorted(p.name for p in (exp / "decode").iterdir()) == sorted(systems)  # every system decoded, no other
    table1 = table1_rows((exp / "report.md").read_text())
    for split in eval_splits:
        acc = json.loads((exp / f"results/frame_acc_{split}.json").read_text())["splits"][split]["frame_acc"]
        for key in ("baseline", "teachers/member_00", "teachers/ensemble_arithmetic", "students/T2"):
            assert 100.0 / num_pdfs < acc[key] <= 100.0, (split, key, acc[key])  # better than chance
        wer = {}
        for name in systems:
            w = json.loads((exp / "decode" / name / split / "wer.json").read_text())
            assert w["ref_words"] > 0 and w["failed"] < w["utterances"], (name, split, w)
            assert 0.0 <= w["wer"] <= 200.0 and w["wer"] == pytest.approx(100 * w["errors"] / w["ref_words"], abs=1e-3)
            assert w["audio_seconds"] > 0 and w["rtf"] >= 0
            wer[name] = w["wer"]
        # Table 1 of the report shows exactly these numbers
        best = json.loads((exp / "students/best.json").read_text())["best"]
        for label, key, name in (("Baseline", "baseline", "baseline"),
                                 ("ensemble (arithmetic", "teachers/ensemble_arithmetic", "ensemble"),
                                 ("Distilled single model", f"students/{best}", f"student_{best}")):
            row = next(r for r in table1 if label in r["System"])
            assert row[f"Frame acc. {split} (%)"] == f"{acc[key]:.2f}" and row[f"WER {split} (%)"] == f"{wer[name]:.2f}"
    manifest = json.loads((exp / "export/manifest.json").read_text())
    assert manifest["num_pdfs"] == num_pdfs and manifest["num_members"] == 1
    assert manifest["verification"]["onnx_max_abs_diff"] < 1e-3
    assert manifest["verification"]["torchscript_fresh_process_max_abs_diff"] < 1e-4
    assert "model.onnx" in manifest["files"] and "model.ts" in manifest["files"]
    for name, digest in manifest["files"].items():  # the manifest's checksums match the exported files
        assert hashlib.sha256((exp / "export" / name).read_bytes()).hexdigest() == digest, name
    feature_config = json.loads((exp / "export/feature_config.json").read_text())
    assert feature_config["frame_shift_ms"] == json.loads((run / "data/fbank/train/meta.json").read_text()).get(
        "frame_shift_ms", 10.0)


def steps_run(stderr: str) -> list[str]:
    """Names of the steps the recipe actually ran (not skipped) from its log."""
    return re.findall(r"stage \d+: (\w+) finished in", stderr)



@pytest.fixture(scope="session")
def recipe() -> SimpleNamespace:
    return SimpleNamespace(run=run_recipe, steps_run=steps_run, table1=table1_rows, check_run=check_run,
                           check_tuning=check_tuning, check_decoding_vocabulary=check_decoding_vocabulary)
