"""End-to-end runs of the recipes with the smallest settings (every stage, a few minutes in all).

- the mini recipe with ``--size tiny``: every artefact exists and the run's own numbers (alignment, frame
  accuracy, WER, report, export checks) are present and in a sane range (:func:`check_run`);
- a rerun rebuilds nothing (every stage finds its stamps up to date); ``--stage/--stop-stage`` run exactly the requested stages;
- the LibriSpeech recipe on a local LibriSpeech-layout directory (the tiny synthetic corpus renamed to
  train-clean-100 / dev-clean / test-clean, with a local lexicon file and ARPA LM), so every stage's
  wiring is exercised without a download.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _run(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", str(REPO / script), *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=1500)
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stderr[-4000:]}"
    return proc


def _table1(report: str) -> list[dict[str, str]]:
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
    systems = [s.name for s in list_systems(ListModelsConfig(exp=str(exp), table1=table1_only))]
    assert systems[:2] == ["baseline", "ensemble"]
    assert len(systems) == 3 if table1_only else "student_T2" in systems
    assert sorted(p.name for p in (exp / "decode").iterdir()) == sorted(systems)  # every system decoded, no other
    table1 = _table1((exp / "report.md").read_text())
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


def _steps_run(stderr: str) -> list[str]:
    """Names of the steps the recipe actually ran (not skipped) from its log."""
    return re.findall(r"stage \d+: (\w+) finished in", stderr)


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    d = tmp_path_factory.mktemp("mini")
    proc = _run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    return d, proc


def test_mini_recipe_produces_every_artefact(mini_run):
    d, proc = mini_run
    assert _steps_run(proc.stderr) == ["synth_corpus", "data_dirs", "features", "lang_lm", "align", "baseline",
                                       "teachers", "students", "frame_accuracy", "graph", "decode", "export"]
    for split in ("train", "dev", "test"):
        store = d / "data/fbank" / split
        meta = json.loads((store / "meta.json").read_text())
        feats = np.load(store / "feats.npy", mmap_mode="r")
        assert feats.dtype == np.float16 and feats.shape == (meta["num_frames"], 40)
        labels = np.load(d / "exp/tri/ali" / split / "pdf.npy")
        assert labels.shape == (feats.shape[0],)
        num_pdfs = int((d / "exp/tri/num_pdfs").read_text())
        assert labels.max() < num_pdfs and (labels >= 0).mean() > 0.5
    for model in ["baseline", *[f"teachers/member_{i:02d}" for i in range(4)], *[f"students/T{t}" for t in (1, 2, 5, 10)]]:
        assert (d / "exp" / model / "final.pt").is_file(), model
    report = (d / "exp/report.md").read_text()
    assert "Table 1" in report and "Temperature sweep" in report and "Decoding vocabulary" in report
    lm_words = {w for ln in (d / "data/corpus/lm_text.txt").read_text().splitlines() for w in ln.split()}
    check_decoding_vocabulary(d, lm_words, ["dev", "test"])
    check_tuning(d, "dev", ["test"])
    assert "Table 1" in proc.stdout or "Table 1" in proc.stderr  # printed at the end of the run
    check_run(d, ["dev", "test"], table1_only=True)


def test_mini_rerun_rebuilds_nothing(mini_run):
    """A rerun calls every step; each stage finds its outputs up to date (stamps) and rewrites none."""
    d, _ = mini_run
    artefacts = ["data/corpus/synth_manifest.json", "data/train/text", "data/fbank/train/feats.npy",
                 "data/lang/L.fst", "data/lm/3gram.arpa", "exp/tri/final.mdl", "exp/tri/ali/dev/pdf.npy",
                 "exp/baseline/final.pt", "exp/teachers/member_00/final.pt", "exp/students/T2/final.pt",
                 "exp/results/frame_acc_dev.json", "exp/graph/HCLG.fst", "exp/decode/baseline/dev/hyp.txt",
                 "data/lang_test/L.fst", "exp/decode/baseline/dev/sweep.json", "exp/decode/baseline/test/hyp.txt",
                 "exp/export/model.onnx"]
    before = {a: (d / a).stat().st_mtime_ns for a in artefacts}
    proc = _run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    assert len(_steps_run(proc.stderr)) == 12
    assert {a: (d / a).stat().st_mtime_ns for a in artefacts} == before
    assert proc.stderr.count("up to date") >= 12 and "rebuilding" not in proc.stderr


def test_mini_stage_selection(mini_run, tmp_path):
    d, _ = mini_run
    shutil.copytree(d / "data/corpus", tmp_path / "data/corpus")
    proc = _run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(tmp_path), "--stage", "1", "--stop-stage", "2")
    assert _steps_run(proc.stderr) == ["data_dirs", "features"]
    assert sorted(p.name for p in (tmp_path / "exp/done").iterdir()) == ["data_dirs.done", "features.done"]
    assert (tmp_path / "data/fbank/test/feats.npy").is_file() and not (tmp_path / "data/lang").exists()


def test_mini_seeds_rerun_models_on_the_same_data(mini_run, tmp_path):
    """--seeds: stage 15 trains and decodes seed 2's models on seed 1's data, alignment and graph, and writes
    Table 1 as mean ± std over both runs (a copy of the tiny run, so the other tests keep theirs)."""
    d, _ = mini_run
    run = tmp_path / "run"
    shutil.copytree(d, run, symlinks=True)
    graph_mtime = (run / "exp/graph/HCLG.fst").stat().st_mtime_ns
    proc = _run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(run), "--seeds", "1 2", "--stage", "15")
    seed2 = run / "seeds/seed_2"
    assert (seed2 / "data").resolve() == (run / "data").resolve()
    assert (seed2 / "exp/tri").resolve() == (run / "exp/tri").resolve()
    assert re.findall(r"stage \d+: (\w+) finished in", proc.stderr)[-1] == "seeds"
    assert (seed2 / "exp/graph/HCLG.fst").stat().st_mtime_ns == graph_mtime  # the graph is seed 1's, not rebuilt
    cfg1 = json.loads((run / "exp/teachers/member_00/config.json").read_text())
    cfg2 = json.loads((seed2 / "exp/teachers/member_00/config.json").read_text())
    assert cfg1["seed"] != cfg2["seed"]
    agg = json.loads((run / "exp/seeds.json").read_text())
    assert agg["seeds"] == [1, 2] and agg["selection_split"] == "dev"
    for split in ("dev", "test"):
        acc = [json.loads((r / f"exp/results/frame_acc_{split}.json").read_text())["splits"][split]["frame_acc"]
               ["baseline"] for r in (run, seed2)]
        assert agg["cells"][f"baseline/frame_acc/{split}"] == pytest.approx(acc)
        assert len(agg["cells"][f"ensemble/wer/{split}"]) == 2 and None not in agg["cells"][f"ensemble/wer/{split}"]
    assert "± " in (run / "exp/seeds.md").read_text()


def test_librispeech_recipe_on_local_copy(mini_run, tmp_path):
    """Every stage of recipes/librispeech/run.sh on a LibriSpeech-layout dir, no download."""
    d, _ = mini_run
    corpus = tmp_path / "corpus/LibriSpeech"
    for ours, theirs in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test", "test-clean")):
        shutil.copytree(d / "data/corpus/LibriSpeech" / ours, corpus / theirs)
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    # a LibriSpeech-style lexicon (WORD PH1 PH2 ... with stress) for every word of the corpus
    from data_prep.lang.lexicon import load_cmudict  # noqa: PLC0415

    words = {w for f in (d / "data").glob("*/text") for line in f.read_text().splitlines() for w in line.split()[1:]}
    cmu = load_cmudict(keep_stress=True).prons
    (lm_dir / "librispeech-lexicon.txt").write_text(
        "".join(f"{w} {' '.join(cmu[w][0])}\n" for w in sorted(words) if w in cmu))
    with gzip.open(lm_dir / "3-gram.pruned.1e-7.arpa.gz", "wt") as f:
        f.write((d / "data/lm/3gram.arpa").read_text())
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "recipes/librispeech/conf", conf)
    (conf / "align_100h.conf").write_text("--num-leaves 60 --mono-gauss 150 --tri-gauss 300 --mono-iters 6 --tri-iters 4 --tri-realign 2\n")
    (conf / "model.conf").write_text("--hidden-layers 2 --hidden-dim 64 --epochs 2 --min-epochs 1 --epoch-frames 20000\n")
    # LibriSpeech's wide lattice search (beam 11, lattice beam 6) on 2 x 64 nets costs minutes per system: the
    # wiring (lattices, dev sweep, test at dev's point) is what this test checks
    (conf / "decode.conf").write_text("--acoustic-scale 0.1 --beam 7 --max-active 1000 --lattice-beam 2 "
                                      "--sweep-acoustic-scales 0.08 0.14 0.2 --sweep-penalties 0 1\n")
    proc = _run("recipes/librispeech/run.sh", "--dir", str(tmp_path / "run"), "--conf", str(conf),
                "--corpus-dir", str(tmp_path / "corpus"), "--lm-dir", str(lm_dir), "--jobs", "2",
                "--num-teachers", "2", "--dev-parts", "dev-clean", "--test-parts", "test-clean",
                "--decode-systems", "table1")
    assert _steps_run(proc.stderr) == ["download", "data_dirs", "features", "lang_lm", "align", "baseline",
                                       "teachers", "students", "frame_accuracy", "graph", "decode", "export"]
    run = tmp_path / "run"
    assert (run / "data/train/wav.scp").is_file()  # combined from the train parts
    lexicon = {ln.split()[0] for ln in (lm_dir / "librispeech-lexicon.txt").read_text().splitlines()}
    check_decoding_vocabulary(run, lexicon, ["dev-clean", "test-clean"])
    check_tuning(run, "dev-clean", ["test-clean"])
    check_run(run, ["dev-clean", "test-clean"], table1_only=True)


def _kaldi_table(path: Path) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split()[1:] for ln in path.read_text().splitlines() if ln.strip()}


def test_transcribe_from_export_and_graph_alone(mini_run, tmp_path):
    """`asr-kd transcribe` in a fresh process, from exp/export + exp/graph alone (no data dir, no store):
    with the split's speakers (per-speaker CMVN as in training) it says what the same one-pass search says on
    the recipe's feature store; one FLAC alone gets its words too; bad audio is listed with its reason and the rest transcribed."""
    import soundfile as sf  # noqa: PLC0415

    from asr_kd.decoding.decoder import DecoderConfig, decode_matrices  # noqa: PLC0415
    from asr_kd.decoding.transcribe_audio import normalise  # noqa: PLC0415
    from asr_kd.export.load import expected_cmvn, load_export  # noqa: PLC0415
    from data_prep.features.cmvn import load_store_cmvn  # noqa: PLC0415
    from data_prep.features.store import FeatureStore  # noqa: PLC0415

    d, _ = mini_run
    exp, test = d / "exp", d / "data/test"
    best = json.loads((exp / "students/best.json").read_text())["best"]
    dc = json.loads((exp / f"decode/student_{best}/test/wer.json").read_text())["config"]["decoder_config"]
    one_pass = DecoderConfig(beam=dc["beam"], max_active=dc["max_active"], acoustic_scale=dc["acoustic_scale"],
                             num_jobs=1)  # transcribe's one-best search (the recipe's test hyps are lattice-tuned)
    model = load_export(exp / "export")
    store = FeatureStore.open(d / "data/fbank/test")
    decoded = decode_matrices(exp / "graph", {u: model.loglikes(np.asarray(store.utt(u), np.float32))
                                              for u in store.utt_index()}, one_pass).hyps
    wav = {u: spec[0] for u, spec in _kaldi_table(test / "wav.scp").items()}
    sf.write(tmp_path / "stereo.wav", np.zeros((16000, 2)), 16000)
    sf.write(tmp_path / "eight_k.wav", 0.01 * np.random.default_rng(0).standard_normal(8000), 8000)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = [str(REPO / ".venv/bin/asr-kd"), "transcribe", "--export", str(exp / "export"), "--graph", str(exp / "graph"),
            "--beam", str(dc["beam"]), "--max-active", str(dc["max_active"]), "--acoustic-scale", str(dc["acoustic_scale"])]
    proc = subprocess.run([*base, "--cmvn", "speaker", "--utt2spk", str(test / "utt2spk"), "--jobs", "2",
                           "--out", str(tmp_path / "out"), str(test / "wav.scp"), str(tmp_path / "stereo.wav"),
                           str(tmp_path / "eight_k.wav")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = {ln.split()[0]: ln.split()[1:] for ln in proc.stdout.splitlines()}
    assert set(printed) == set(decoded) == set(wav)
    same = sum(printed[u] == decoded[u] for u in wav)
    assert same >= 0.8 * len(wav), (same, len(wav), printed, decoded)  # float16 store vs float32: rare ties
    skipped = {r.split("\t")[0]: r.split("\t")[2] for r in (tmp_path / "out/skipped.tsv").read_text().splitlines()[1:]}
    assert "multi-channel" in skipped["stereo"] and "8000 Hz" in skipped["eight_k"] and len(skipped) == 2
    assert _kaldi_table(tmp_path / "out/text") == printed
    ctm = [ln.split() for ln in (tmp_path / "out/ctm").read_text().splitlines()]
    assert [w for row in ctm for w in row[4:]] == [w for u in sorted(printed) for w in printed[u]]
    for u in printed:
        starts = [float(r[2]) for r in ctm if r[0] == u]
        ends = [float(r[2]) + float(r[3]) for r in ctm if r[0] == u]
        assert starts == sorted(starts) and all(e <= sf.info(wav[u]).duration + 0.03 for e in ends)
    # one FLAC alone, default CMVN: the words of the same model on the recipe's own features (the store's
    # float16 fbank, its speaker CMVN undone, normalised per utterance like an unseen speaker's) -- an
    # independent path from audio to words
    utt = max(wav, key=lambda u: len(decoded[u]))
    cmvn = load_store_cmvn(store.root)
    mean, scale = cmvn.transform()
    k = cmvn.index()[store.speakers[store.utt_index()[utt]]]
    raw = np.asarray(store.utt(utt), np.float32) / scale[k] + mean[k]
    mode = expected_cmvn(model.feature_config)["unseen"]
    x = normalise({utt: raw}, mode)[utt]
    want = decode_matrices(exp / "graph", {utt: model.loglikes(x)}, one_pass).hyps[utt]
    one = subprocess.run([*base, wav[utt]], capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert one.stdout.splitlines() == [" ".join([utt, *want])], (one.stdout, want, decoded[utt])


# Fields whose values are measurements of time, not results: the only bytes two runs may differ in
# (README, "Reproducibility"). Stamps (*.stamp.json: input digests carry mtimes), exp/done/*.done (step
# wall seconds) and the report's "Generated <date>" line and timing columns are bookkeeping, not artefacts.
_TIMING_KEY = re.compile(r"(seconds|_s|^rtf|^rtf_.*)$")


def _comparable(path: Path) -> bytes | object:
    """What of a run's file must be identical between runs: JSON without its timing fields, else the bytes."""
    if path.suffix in (".json", ".jsonl"):
        def strip(x):
            if isinstance(x, dict):
                return {k: strip(v) for k, v in x.items() if not _TIMING_KEY.search(k)}
            return [strip(v) for v in x] if isinstance(x, list) else x
        text = path.read_text()
        if path.suffix == ".json":
            return strip(json.loads(text))
        return [strip(json.loads(line)) for line in text.splitlines() if line.strip()]
    return path.read_bytes()


def _artefacts(run: Path) -> dict[str, object]:
    skip = re.compile(r"(\.stamp\.json$|^exp/done/|\.log$|^exp/report\.md$|/\.[^/]+\.tmp$)")
    return {str(p.relative_to(run)): _comparable(p) for p in sorted(run.rglob("*"))
            if p.is_file() and not skip.search(str(p.relative_to(run)))}


def test_mini_rerun_after_kill9_is_byte_identical(mini_run):
    """Same options and seed, same path: a second run, killed with SIGKILL (whole process group) at a
    random point of a random stage and then rerun to the end, leaves exactly the first run's artefacts."""
    import random  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    d, _ = mini_run
    reference = d.with_name(d.name + "_reference")
    d.rename(reference)
    seed = int(os.environ.get("ASR_KD_KILL_SEED", random.randrange(1 << 30)))  # set it to replay a failure
    rng = random.Random(seed)
    stage = rng.choice(["features", "align", "baseline", "teachers", "students", "decode"])
    delay = rng.uniform(0.2, 3.0)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.Popen(["bash", str(REPO / "recipes/mini/run.sh"), "--size", "tiny", "--dir", str(d)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    for line in proc.stderr:  # the recipe logs "stage N: <name>" when a step starts
        if re.search(rf"stage \d+: {stage}$", line.strip()):
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=1500)
    killed = f"(killed {delay:.1f} s into '{stage}'; replay with ASR_KD_KILL_SEED={seed})"
    assert proc.returncode == -signal.SIGKILL, f"the recipe ended before the kill {killed}"
    _run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    want, got = _artefacts(reference), _artefacts(d)
    assert sorted(got) == sorted(want), f"different files {killed}"
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"{len(differ)} artefacts differ {killed}: {differ[:10]}"
