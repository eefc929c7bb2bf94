"""The report's sections beyond the paper appear only when their runs exist, with the runs' own numbers."""

from __future__ import annotations

from pathlib import Path

from asr_base.io import write_json
from asr_kd.report.stage import write_report
from asr_kd.report.summary import ReportConfig


def _model_dir(d: Path, layers: int, dim: int, params: int, **extra) -> None:
    d.mkdir(parents=True)
    (d / "final.pt").write_bytes(b"")  # found by model_dirs; the report never loads weights
    write_json(d / "config.json", {"model": {"hidden_layers": layers, "hidden_dim": dim}, "num_parameters": params,
                                   **extra})


def test_beyond_sections(tmp_path):
    exp = tmp_path / "exp"
    _model_dir(exp / "baseline", 3, 384, 894469)
    out = tmp_path / "report.md"
    plain = write_report(ReportConfig(exp=str(exp), data=str(tmp_path / "data"), out=str(out), quiet=True))
    assert "Codistillation" not in out.read_text() and "Student sizes" not in out.read_text()
    assert plain.baseline is not None

    for i in range(2):
        _model_dir(exp / f"codistill/member_{i:02d}", 3, 384, 894469)
    write_json(exp / "codistill/codistill.json", {
        "dev": {"members": {"member_00": 51.25, "member_01": 52.75}, "ensemble_arithmetic": 54.5},
        "num_members": 2, "processes": 2, "train_wall_s": 321.4, "train_cpu_s": 555.6,
        "options": {"alpha": 1.0, "temperature": 2.0, "refresh_every": 50, "burn_in_steps": 10, "data_shards": 1}})
    _model_dir(exp / "students_3x96/T2", 3, 96, 123456, temperature=2.0)
    write_json(exp / "students_3x96/best.json", {"best": "T2"})
    _model_dir(exp / "fitnets_6x64/T5", 6, 64, 65432, temperature=5.0)
    write_json(exp / "fitnets_6x64/best.json", {"best": "T5"})
    write_json(exp / "fitnets_6x64/hint/hint.json", {
        "hint_teacher": "exp/teachers/member_00", "teacher_hint_layer": 2, "student_guided_layer": 3,
        "student": {"hidden_layers": 6, "hidden_dim": 64}, "epochs": 1,
        "log": [{"epoch": 0, "train_hint_loss": 0.5, "dev_hint_loss": 0.1234}], "guided_rescale": 6.789})
    write_json(exp / "results/frame_acc_test.json", {"splits": {"test": {"frame_acc": {
        "codistill/member_00": 40.0, "codistill/member_01": 42.0, "codistill/ensemble_arithmetic": 45.5,
        "students_3x96/T2": 38.25, "fitnets_6x64/T5": 37.5}}}})
    write_json(exp / "results/am_speed.json", {"models": [
        {"dir": str(exp / "students_3x96/T2"), "frames_per_s": 12345.6},
        {"dir": str(exp / "fitnets_6x64/T5"), "frames_per_s": 23456.7}]})
    run = write_report(ReportConfig(exp=str(exp), data=str(tmp_path / "data"), out=str(out), quiet=True,
                                    splits=["dev", "test"]))
    text = out.read_text()
    assert text.index("## Codistillation") < text.index("## Student sizes") < text.index("## FitNets") < \
        text.index("## Plots")
    assert "one member (mean of 2) | 2 × 3 × 384 | 52.00 | 41.00 |" in text  # dev from codistill.json, test mean
    assert "ensemble of its 2 members | 2 × 3 × 384 | 54.50 | 45.50 |" in text
    assert "| 321 | 556 |" in text and "2 processes" in text
    assert "| students_3x96/T2 | 3 × 96 | 123,456 | no | — | 38.25 |" in text and "12,346" in text
    assert "| fitnets_6x64/T5 | 6 × 64 | 65,432 | yes |" in text and "23,457" in text
    assert "| `fitnets_6x64` | member_00 | 2 | 6 × 64 | 3 | 1 | 0.1234 | 0.1234 | 6.79 |" in text
    assert str(exp / "codistill/codistill.json") in run.sources
