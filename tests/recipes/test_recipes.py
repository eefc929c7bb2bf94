"""The mini recipe end to end with ``--size tiny`` (every stage, a few minutes in all):

- every artefact exists and the run's own numbers (alignment, frame accuracy, WER, report, export checks) are
  present and in a sane range (``recipe.check_run``, tests/recipes/conftest.py);
- a rerun rebuilds nothing (every stage finds its stamps up to date); ``--stage/--stop-stage`` run exactly the
  requested stages; ``--seeds`` reruns the model stages on the same data;
- transcribe from the export and graph alone; a second run killed with SIGKILL and rerun is byte-identical.
The LibriSpeech recipe's test is test_librispeech_recipe.py.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory, recipe) -> tuple[Path, subprocess.CompletedProcess]:
    d = tmp_path_factory.mktemp("mini")
    proc = recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    return d, proc


def test_mini_recipe_produces_every_artefact(recipe, mini_run):
    d, proc = mini_run
    steps = recipe.steps_run(proc.stderr)
    # the graph is built in the background while the models train: it ends somewhere before decoding
    assert [st for st in steps if st != "graph"] == ["synth_corpus", "data_dirs", "features", "lang_lm", "align",
                                                     "baseline", "teachers", "students", "frame_accuracy", "decode",
                                                     "export"]
    assert steps.index("align") < steps.index("graph") < steps.index("decode")
    for split in ("train", "dev", "test"):
        store = d / "data/fbank" / split
        meta = json.loads((store / "meta.json").read_text())
        feats = np.load(store / "feats.npy", mmap_mode="r")
        assert feats.dtype == np.float16 and feats.shape == (meta["num_frames"], 40)
        # the aligner's MFCC frames and the DNNs' fbank frames are the same frames, centred (conf/*.conf)
        mfcc_meta = json.loads((d / "data/mfcc" / split / "meta.json").read_text())
        assert meta["fbank"]["snip_edges"] is False and mfcc_meta["fbank"]["snip_edges"] is False
        assert mfcc_meta["num_frames"] == meta["num_frames"]
        labels = np.load(d / "exp/tri/ali" / split / "pdf.npy")
        assert labels.shape == (feats.shape[0],)
        num_pdfs = int((d / "exp/tri/num_pdfs").read_text())
        assert labels.max() < num_pdfs and (labels >= 0).mean() > 0.5
    conf = (REPO / "recipes/mini/conf/distill.conf").read_text().splitlines()
    temps = next(ln.split()[1:] for ln in conf if ln.startswith("--temperatures"))
    assert temps, "conf/distill.conf names no temperature"
    for model in ["baseline", *[f"teachers/member_{i:02d}" for i in range(3)], *[f"students/T{t}" for t in temps]]:
        assert (d / "exp" / model / "final.pt").is_file(), model
    report = (d / "exp/report.md").read_text()
    assert "Table 1" in report and "Temperature sweep" in report and "Decoding vocabulary" in report
    lm_words = {w for ln in (d / "data/corpus/lm_text.txt").read_text().splitlines() for w in ln.split()}
    recipe.check_decoding_vocabulary(d, lm_words, ["dev", "test"])
    recipe.check_tuning(d, "dev", ["test"])
    assert "Table 1" in proc.stdout or "Table 1" in proc.stderr  # printed at the end of the run
    recipe.check_run(d, ["dev", "test"], table1_only=True)
    speakers = json.loads((d / "exp/tri/report.json").read_text())["splits"]["dev"]["sanity"]["boundaries"]["by_speaker"]
    assert speakers and all(0.0 <= s["nearest_within_tol"] <= 1.0 for s in speakers.values())  # the TTS's timings
    assert "![phone-boundary offsets](tri/boundary_offsets.png)" in report and (d / "exp/tri/boundary_offsets.png").is_file()


def test_mini_rerun_rebuilds_nothing(recipe, mini_run):
    """A rerun calls every step; each stage finds its outputs up to date (stamps) and rewrites none."""
    d, _ = mini_run
    artefacts = ["data/corpus/synth_manifest.json", "data/train/text", "data/fbank/train/feats.npy",
                 "data/mfcc/train/feats.npy",
                 "data/lang/L.fst", "data/lm/3gram.arpa", "exp/tri/final.mdl", "exp/tri/ali/dev/pdf.npy",
                 "exp/baseline/final.pt", "exp/teachers/member_00/final.pt", "exp/students/T2/final.pt",
                 "exp/results/frame_acc_dev.json", "exp/graph/HCLG.fst", "exp/decode/baseline/dev/hyp.txt",
                 "data/lang_test/L.fst", "exp/decode/baseline/dev/sweep.json", "exp/decode/baseline/test/hyp.txt",
                 "exp/export/model.onnx"]
    before = {a: (d / a).stat().st_mtime_ns for a in artefacts}
    proc = recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    assert len(recipe.steps_run(proc.stderr)) == 12
    assert {a: (d / a).stat().st_mtime_ns for a in artefacts} == before
    assert proc.stderr.count("up to date") >= 12 and "rebuilding" not in proc.stderr


def test_mini_stage_selection(recipe, mini_run, tmp_path):
    d, _ = mini_run
    shutil.copytree(d / "data/corpus", tmp_path / "data/corpus")
    proc = recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(tmp_path), "--stage", "1", "--stop-stage", "2")
    assert recipe.steps_run(proc.stderr) == ["data_dirs", "features"]
    assert sorted(p.name for p in (tmp_path / "exp/done").iterdir()) == ["data_dirs.done", "features.done"]
    assert (tmp_path / "data/fbank/test/feats.npy").is_file() and not (tmp_path / "data/lang").exists()


def test_mini_seeds_rerun_models_on_the_same_data(recipe, mini_run, tmp_path):
    """--seeds: stage 15 trains and decodes seed 2's models on seed 1's data, alignment and graph, and writes
    Table 1 as mean ± std over both runs (a copy of the tiny run, so the other tests keep theirs)."""
    d, _ = mini_run
    run = tmp_path / "run"
    shutil.copytree(d, run, symlinks=True)
    graph_mtime = (run / "exp/graph/HCLG.fst").stat().st_mtime_ns
    proc = recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(run), "--seeds", "1 2", "--stage", "15")
    seed2 = run / "seeds/seed_2"
    assert (seed2 / "data").resolve() == (run / "data").resolve()
    assert (seed2 / "exp/tri").resolve() == (run / "exp/tri").resolve()
    assert recipe.steps_run(proc.stderr)[-1] == "seeds"
    assert (seed2 / "exp/graph/HCLG.fst").stat().st_mtime_ns == graph_mtime  # the graph is seed 1's, not rebuilt
    cfg1 = json.loads((run / "exp/teachers/member_00/config.json").read_text())
    cfg2 = json.loads((seed2 / "exp/teachers/member_00/config.json").read_text())
    assert cfg1["seed"] != cfg2["seed"]
    agg = json.loads((run / "exp/seeds.json").read_text())
    assert agg["seeds"] == [1, 2] and agg["selection_splits"] == ["dev"]
    for split in ("dev", "test"):
        acc = [json.loads((r / f"exp/results/frame_acc_{split}.json").read_text())["splits"][split]["frame_acc"]
               ["baseline"] for r in (run, seed2)]
        assert agg["cells"][f"baseline/frame_acc/{split}"] == pytest.approx(acc)
        assert len(agg["cells"][f"ensemble/wer/{split}"]) == 2 and None not in agg["cells"][f"ensemble/wer/{split}"]
    assert "± " in (run / "exp/seeds.md").read_text()


def test_mini_optional_stages_on_a_finished_run(recipe, mini_run, tmp_path):
    """--rescore true on a finished run: stage 3 adds the 4-gram, the models stay, and stage 9 decodes again
    with rescoring: every system's dev and test have rescore/ results, test at dev's best rescored point.
    --decode-speed true: RTF and WER per beam of the export on test, at dev's scale, in the report.
    --regularizer true: section 6 with conf/regularizer.conf (epochs of whole passes over the 3%).
    --nnet-align true: stage 16 realigns every split with the ensemble into exp/tri_nnet, boundaries beside tri's."""
    from asr_kd.decoding.decode import best_point  # noqa: PLC0415

    d, _ = mini_run
    run = tmp_path / "run"
    shutil.copytree(d, run, symlinks=True)
    model_mtime = (run / "exp/baseline/final.pt").stat().st_mtime_ns
    proc = recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(run), "--rescore", "true",
                      "--decode-speed", "true", "--regularizer", "true", "--nnet-align", "true", "--stage", "3",
                      "--stop-stage", "16")
    assert "rebuilding" in proc.stderr and (run / "data/lm/4gram.arpa").is_file()
    assert (run / "exp/baseline/final.pt").stat().st_mtime_ns == model_mtime
    assert "ngram 4=" in (run / "data/lm/4gram.arpa").read_text()[:200]
    for system in (run / "exp/decode").iterdir():
        dev, test = system / "dev/rescore", system / "test/rescore"
        point = list(best_point(dev / "sweep.json"))
        assert json.loads((dev / "wer.json").read_text())["one_best"] == point
        assert json.loads((test / "wer.json").read_text())["one_best"] == point
        w = json.loads((system / "test/wer.json").read_text())
        assert w["rescored"]["wer"] == json.loads((test / "wer.json").read_text())["wer"]
        assert w.get("search") != "one-pass"  # rescoring needs test's lattices
    report = (run / "exp/report.md").read_text()
    assert "LM rescoring with `4gram.arpa`" in report
    speed = json.loads((run / "exp/results/decode_speed_test.json").read_text())
    student = json.loads((run / "exp/students/best.json").read_text())["best"]
    assert speed["acoustic_scale"] == best_point(run / f"exp/decode/student_{student}/dev/sweep.json")[0]
    assert [r["beam"] for r in speed["rows"]] == [5.0, 7.0]
    assert all(r["rtf"] > 0 and r["cpu_rtf"] > 0 and 0 <= r["wer"] for r in speed["rows"])
    assert "Decoding speed (`asr-kd decode-speed`)" in report and "decode_speed.png" in report
    reg = json.loads((run / "exp/regularizer/report.json").read_text())
    assert reg["fraction"] == 0.03 and reg["temperature"] == 2 and reg["passes_per_epoch"] > 1
    assert set(reg["frame_acc"]) == {"baseline_full_data", "hard_0.03", "soft_0.03"}
    nnet = json.loads((run / "exp/tri_nnet/report.json").read_text())
    assert set(nnet["splits"]) == {"train", "dev", "test"} and set(nnet["by_stage"]) >= {"tri", "tri_nnet"}
    assert all(s["fraction_aligned"] > 0.9 and s["sanity"]["boundaries"]["reference_boundaries"] > 0
               for s in nnet["splits"].values())
    assert (run / "exp/tri_nnet/pdf_counts.npy").is_file() and (run / "exp/tri_nnet/boundary_offsets.png").is_file()
    report = (run / "exp/report.md").read_text()  # rewritten by stage 16: the realignment beside tri
    assert "| tri | test |" in report and "| tri_nnet | test |" in report


def _kaldi_table(path: Path) -> dict[str, list[str]]:
    return {ln.split()[0]: ln.split()[1:] for ln in path.read_text().splitlines() if ln.strip()}


def test_transcribe_from_export_and_graph_alone(recipe, mini_run, tmp_path):
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


def test_mini_rerun_after_kill9_is_byte_identical(recipe, mini_run):
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
    recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d))
    want, got = _artefacts(reference), _artefacts(d)
    assert sorted(got) == sorted(want), f"different files {killed}"
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"{len(differ)} artefacts differ {killed}: {differ[:10]}"
