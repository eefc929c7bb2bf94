"""asr-kd report on a real (tiny) run: models trained, evaluated and scored by our own stages."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest


from asr_kd.cli import main
from asr_base.io import read_json, write_json
from asr_kd.report.collect import collect
from asr_kd.report.markdown import DASH, fmt_fraction, table1_markdown
from asr_kd.report.stage import write_report
from asr_kd.report.summary import ModelInfo, ReportConfig, stop_reason
from asr_kd.decoding.wer import compute_wer, write_results

TEMPS = ["1", "2", "5", "10"]
NUM_PDFS = 12


def _common(root: Path) -> list[str]:
    return ["--train-feats", str(root / "data/fbank/train"), "--train-labels", str(root / "ali/train/pdf.npy"),
            "--dev-feats", str(root / "data/fbank/dev"), "--dev-labels", str(root / "ali/dev/pdf.npy"),
            "--num-pdfs", str(NUM_PDFS), "--hidden-layers", "1", "--hidden-dim", "32", "--left-context", "2",
            "--right-context", "1", "--epochs", "2", "--batch-size", "64", "--lr", "0.05", "--device", "cpu",
            "--log-every", "5"]


def _write_wer(out: Path, seed: int) -> dict:
    """A decode result written by the real scorer (asr_kd.decoding.wer) from reference/hypothesis word lists."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20)]
    refs = {f"spk{i % 3}-u{i:02d}": list(rng.choice(vocab, size=8)) for i in range(10)}
    hyps = {}
    for u, ref in refs.items():
        hyp = list(ref)
        for j in rng.choice(8, size=int(rng.integers(0, 4)), replace=False):
            hyp[j] = "w99"  # substitutions
        hyps[u] = hyp
    failed = {"spk0-u09": "no surviving tokens"} if seed % 2 else {}
    res = compute_wer(refs, hyps, {u: u.split("-")[0] for u in refs}, failed, set(vocab))
    return write_results(out, res, {"rtf": 0.05 + 0.01 * seed})


@pytest.fixture(scope="module")
def run_dir(make_corpus, tmp_path_factory):
    """data/fbank/{train,dev,test}, exp/{baseline,teachers,students,regularizer,results,decode,tri,done}."""
    root = tmp_path_factory.mktemp("run")
    for name, n, seed in (("train", 40, 0), ("dev", 10, 1), ("test", 10, 2)):
        feats, labels = make_corpus(root / "ali" / name, num_utts=n, seed=seed, noise=2.0, max_len=60)
        dst = root / "data/fbank" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        feats.rename(dst)
        meta = read_json(dst / "meta.json")  # what compute-fbank adds to the store's meta
        write_json(dst / "meta.json", dict(meta, audio_seconds=round(meta["num_frames"] * 0.01 + 0.015 * n, 3),
                                           speakers=4, num_skipped=seed))
    c, exp = _common(root), root / "exp"
    assert main(["train", *c, "--out", str(exp / "baseline")]) == 0
    assert main(["train-ensemble", *c, "--num-members", "3", "--out", str(exp / "teachers")]) == 0
    assert main(["distill", *c, "--teachers", str(exp / "teachers"), "--temperatures", *TEMPS,
                 "--out", str(exp / "students")]) == 0
    for s in ("dev", "test"):
        assert main(["evaluate", "--models", str(exp / "baseline"), str(exp / "teachers"), str(exp / "students"),
                     "--feats", str(root / "data/fbank" / s), "--labels", str(root / "ali" / s / "pdf.npy"),
                     "--out", str(exp / f"results/frame_acc_{s}.json")]) == 0
    assert main(["regularizer", *c, "--teacher", str(exp / "baseline"), "--fraction", "0.2", "--epochs", "2",
                 "--test-feats", str(root / "data/fbank/test"), "--test-labels", str(root / "ali/test/pdf.npy"),
                 "--out", str(exp / "regularizer")]) == 0
    # decoding: dev for every model, test only for the baseline (the rest "not decoded yet")
    for i, name in enumerate(["baseline", "ensemble"] + [f"student_T{t}" for t in TEMPS]):
        _write_wer(exp / "decode" / name / "dev", i)
    _write_wer(exp / "decode/baseline/test", 7)
    # alignment report (data_prep.align.stage's format) and recipe step markers
    (exp / "tri").mkdir(parents=True)
    (exp / "tri/num_pdfs").write_text(f"{NUM_PDFS}\n")
    write_json(exp / "tri/report.json", {
        "num_tied_states": NUM_PDFS, "states_used": NUM_PDFS - 1, "seconds": 42.0,
        "mono": {"iterations": [], "num_pdfs": 9}, "tri": {"iterations": [], "num_pdfs": NUM_PDFS, "num_gauss": 40},
        "splits": {s: {"utterances": n, "aligned": n - 1, "failed": 1, "fraction_aligned": (n - 1) / n,
                       "avg_loglik": -61.25, "frames": 100 * n, "aligned_frames": 95 * n, "seconds": 1.0, "rtf": 0.01}
                   for s, n in (("train", 40), ("dev", 10), ("test", 10))}})
    (exp / "done").mkdir()
    for step, secs in (("align", 95), ("baseline", 3725), ("teachers", 12)):
        (exp / "done" / f"{step}.done").write_text(f"{secs}\n")
    return root


def _row(md: str, label: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {label}"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


@pytest.mark.e2e
def test_report_of_a_real_run(run_dir):
    exp = run_dir / "exp"
    out = exp / "report.md"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["report", "--exp", str(exp), "--data", str(run_dir / "data"), "--out", str(out)]) == 0
    md = out.read_text()
    printed = stdout.getvalue()
    acc = {s: read_json(exp / f"results/frame_acc_{s}.json")["splits"][s]["frame_acc"] for s in ("dev", "test")}
    best = read_json(exp / "students/best.json")["best"]
    werj = lambda name, s: read_json(exp / "decode" / name / s / "wer.json")["wer"]  # noqa: E731

    # Table 1: every number is the run's own, "—" where nothing was decoded
    table1 = _section(md, "Table 1")
    assert _row(table1, "Baseline") == ["Baseline (single model, hard labels)", f"{acc['dev']['baseline']:.2f}",
                                        f"{acc['test']['baseline']:.2f}", f"{werj('baseline', 'dev'):.2f}",
                                        f"{werj('baseline', 'test'):.2f}"]
    assert _row(table1, "3× ensemble (arithmetic") == [
        "3× ensemble (arithmetic mean)", f"{acc['dev']['teachers/ensemble_arithmetic']:.2f}",
        f"{acc['test']['teachers/ensemble_arithmetic']:.2f}", f"{werj('ensemble', 'dev'):.2f}", DASH]
    geo = [f"{acc[s]['teachers/ensemble_geometric']:.2f}" for s in ("dev", "test")]
    assert _row(table1, "3× ensemble (geometric")[1:] == geo + [DASH, DASH]
    assert _row(table1, "Distilled")[:3] == [f"Distilled single model ({best}, best on dev)",
                                             f"{acc['dev'][f'students/{best}']:.2f}",
                                             f"{acc['test'][f'students/{best}']:.2f}"]
    # the share of the ensemble's gain recovered, recomputed here from the evaluation output
    b, e, s = (acc["test"][k] for k in ("baseline", "teachers/ensemble_arithmetic", f"students/{best}"))
    assert abs(e - b) > 1e-6  # the tiny ensemble differs from the baseline (fixed seeds)
    expect = f"on test: {100 * (s - b) / (e - b):.0f}%**"  # the headline, in bold: test only
    line = next(ln for ln in table1.splitlines() if "recovered by the distilled model on test" in ln)
    assert line.startswith("- **") and expect in line and expect in printed
    assert "recovered by the distilled model on dev" not in table1  # dev selected: no headline on it
    assert "- Not a result: dev selected" in table1
    assert f"({s:.2f} − {b:.2f}) / ({e:.2f} − {b:.2f})" in line
    assert "| Baseline (single model, hard labels) |" in printed

    # members, T sweep (T order, WER test not decoded), section 6, corpus, models, alignment, times
    members = _section(md, "Teacher ensemble members")
    for i in range(3):
        assert _row(members, f"member_0{i}")[2:] == [f"{acc[s][f'teachers/member_0{i}']:.2f}" for s in ("dev", "test")]
    models = _section(md, "Models")
    assert _row(models, "Baseline")[-1] in ("newbob", "epoch cap") and "*Stopped by*" in models
    assert _row(members, "ensemble of the first 2 (arithmetic)")[2:] == [
        f"{acc[s]['teachers/ensemble_first_2']:.2f}" for s in ("dev", "test")]
    sweep = _section(md, "Temperature sweep")
    rows = [ln for ln in sweep.splitlines() if ln.startswith("| T") or ln.startswith("| **T")]
    assert [r.split("|")[2].strip() for r in rows] == TEMPS
    for t in TEMPS:
        cells = _row(sweep, f"**T{t}**" if best == f"T{t}" else f"T{t}")
        assert cells[2:] == [f"{acc['dev'][f'students/T{t}']:.2f}", f"{acc['test'][f'students/T{t}']:.2f}",
                             f"{werj(f'student_T{t}', 'dev'):.2f}", DASH]
    reg = read_json(exp / "regularizer/report.json")["frame_acc"]
    sec6 = _section(md, "Soft targets as a regularizer")
    assert _row(sec6, "Baseline (100%")[1:3] == [f"{reg['baseline_full_data'][k]:.2f}" for k in ("train", "test")]
    assert _row(sec6, "Hard labels (20%")[1:3] == [f"{reg['hard_0.2'][k]:.2f}" for k in ("train", "test")]
    assert _row(sec6, "Soft targets of the full-data model (20%")[1:3] == [f"{reg['soft_0.2'][k]:.2f}"
                                                                           for k in ("train", "test")]
    meta = read_json(run_dir / "data/fbank/train/meta.json")
    assert _row(_section(md, "Corpus"), "train")[1:4] == [f"{meta['audio_seconds'] / 3600:.3f}",
                                                          f"{meta['num_utts']:,}", f"{meta['num_frames']:,}"]
    models = _section(md, "Models")
    assert f"Tied states (DNN outputs): **{NUM_PDFS}**" in models
    params = read_json(exp / "baseline/config.json")["num_parameters"]
    assert _row(models, "Baseline")[2] == f"{params:,}"
    assert f"{params:,} each, {3 * params:,} total" in models
    assert _row(_section(md, "Alignment"), "dev")[1:4] == ["10", "9", "1"]
    times = _section(md, "Wall time per stage")
    assert _row(times, "baseline")[1:] == ["3,725", "1:02:05"]
    assert _row(times, "**total**")[1] == f"**{95 + 3725 + 12:,}**"
    dec = _section(md, "Decoding")
    assert _row(dec, "baseline | test")[2] == f"{werj('baseline', 'test'):.2f}"

    # plots exist, are PNGs and are linked relative to the report
    for name in ("training_curves", "frame_acc_vs_T", "wer_per_model"):
        png = exp / "report_plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"](report_plots/{name}.png)" in md


@pytest.mark.e2e
def test_partial_run_shows_dashes_and_notes(run_dir, tmp_path):
    """Only the baseline trained, no evaluation output, no decoding, a bad marker: a report, not a crash."""
    exp = tmp_path / "exp"
    shutil.copytree(run_dir / "exp/baseline", exp / "baseline")
    (exp / "done").mkdir()
    (exp / "done/baseline.done").write_text("not a number\n")
    (exp / "results").mkdir()
    (exp / "results/frame_acc_dev.json").write_text("{truncated")  # unreadable: left out with a warning
    run = write_report(ReportConfig(exp=exp, data=tmp_path / "nodata"))
    md = (exp / "report.md").read_text()
    ev = read_json(exp / "baseline/eval.json")  # the model dir's own record (evaluate merged dev and test in)
    assert _row(md, "Baseline") == ["Baseline (single model, hard labels)", f"{ev['dev']['frame_acc']:.2f}",
                                    f"{ev['test']['frame_acc']:.2f}", DASH, DASH]
    assert run.acc_sources == {str(exp / "baseline/eval.json")}
    rows = [ln for ln in _section(md, "Table 1").splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(rows) == 2  # header + baseline: no ensemble or student row without their outputs
    assert run.students == [] and run.wer == {}
    assert "Share of the ensemble's gain recovered: —" in md
    assert "No decoding results yet" in md and "Not run" in _section(md, "Soft targets as a regularizer")
    assert "No feature stores found" in md and "No alignment report" in md
    assert "marker holds 'not a number'" in md
    assert (exp / "report_plots/training_curves.png").is_file()
    assert not (exp / "report_plots/wer_per_model.png").exists()
    assert "Left out: no decoding results" in md and "Left out: no student" in md


def test_empty_exp_dir(tmp_path):
    run = write_report(ReportConfig(exp=tmp_path, data=tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "No trained models found yet" in table1_markdown(run) and "No trained models found" in md
    assert not any((tmp_path / "report_plots").glob("*.png"))


def test_stop_reason_from_the_log_or_the_epoch_cap(tmp_path):
    def model(history, epochs=4):
        return ModelInfo("m", tmp_path, "m", None, config={"train": {"epochs": epochs}}, history=history)

    ep = lambda e, **kw: {"type": "epoch", "epoch": e, **kw}  # noqa: E731
    assert stop_reason(model([ep(0, stop=None), ep(5, stop="newbob")])) == "newbob"
    assert stop_reason(model([ep(3, stop="epochs"), {"type": "train", "epoch": 3}])) == "epoch cap"
    assert stop_reason(model([ep(2), ep(3)])) == "epoch cap"  # a log from before "stop": 4 epochs of a cap of 4
    assert stop_reason(model([ep(2)])) == "newbob"  # 3 epochs of a cap of 4: only newbob stops it early
    assert stop_reason(model([{"type": "train", "epoch": 0}])) is None
    assert stop_reason(model([ep(1, done=False)])) is None  # still training (or stopped by --max-steps)
    assert stop_reason(model([ep(1, done=True), ep(2, done=True), ep(3, done=True)])) == "newbob"  # stopped at 2


def test_recovered_share_formatting():
    paper = {"baseline": 58.9, "ensemble": 61.1, "student": 60.8, "fraction": (60.8 - 58.9) / (61.1 - 58.9)}
    assert fmt_fraction(paper) == "86%"
    assert "not meaningful" in fmt_fraction({"baseline": 60.0, "ensemble": 59.0, "student": 59.5, "fraction": 0.5})
    assert fmt_fraction({"baseline": 60.0, "ensemble": 60.0, "student": 61.0, "fraction": None}).startswith(DASH)
    assert fmt_fraction(None) == DASH
    wer = {"baseline": 20.0, "ensemble": 22.0, "student": 21.0, "fraction": 0.5}  # WER: the ensemble is worse
    assert "not meaningful" in fmt_fraction(wer, lower_is_better=True) and fmt_fraction(wer) == "50%"


def test_gain_from_collected_run(tmp_path):
    """The share is computed on the arithmetic ensemble and the student named in best.json."""
    exp = tmp_path / "exp"
    (exp / "students").mkdir(parents=True)
    write_json(exp / "students/best.json", {"best": "T2"})
    for t in ("T1", "T2"):  # model dirs (final.pt) with their own eval.json
        write_json(exp / "students" / t / "eval.json", {})
        (exp / "students" / t / "final.pt").touch()
    write_json(exp / "results/frame_acc_test.json", {"splits": {"test": {"frame_acc": {
        "baseline": 50.0, "teachers/ensemble_arithmetic": 54.0, "teachers/ensemble_geometric": 55.0,
        "students/T1": 51.0, "students/T2": 53.0}}}})
    run = collect(ReportConfig(exp=exp, data=tmp_path))
    g = run.gain("test")
    assert g["fraction"] == pytest.approx(0.75) and g["student"] == 53.0
    assert run.gain("dev") is None
    assert "on test: 75%** = (53.00 − 50.00) / (54.00 − 50.00)" in table1_markdown(run)


def test_splits_found_in_evaluation_and_decoding(tmp_path):
    """LibriSpeech split names become the columns (dev* before test*); the trainer's own 'dev' is not one."""
    exp = tmp_path / "exp"
    write_json(exp / "baseline/eval.json", {"dev": {"frame_acc": 40.0, "frames": 10}})
    (exp / "baseline/final.pt").touch()
    for split, a in (("test-other", 41.0), ("dev-clean", 42.0), ("test-clean", 43.0)):
        write_json(exp / f"results/frame_acc_{split}.json",
                   {"splits": {split: {"frame_acc": {"baseline": a}, "frames": 10}}})
    _write_wer(exp / "decode/baseline/dev-other", 3)
    run = collect(ReportConfig(exp=exp, data=tmp_path))
    assert run.splits == ["dev-clean", "dev-other", "test-clean", "test-other"]
    assert [r["frame_acc"] for r in run.table1_rows()] == [
        {"dev-clean": 42.0, "dev-other": None, "test-clean": 43.0, "test-other": 41.0}]
    assert run.table1_rows()[0]["wer"]["dev-other"] == read_json(exp / "decode/baseline/dev-other/wer.json")["wer"]
    assert collect(ReportConfig(exp=exp, data=tmp_path, splits=("dev",))).acc("dev", "baseline") == 40.0
