"""The digits recipe end to end on real speech (FSDD, 8 kHz), reduced to 40 recordings per speaker and the
tiny model/alignment budgets: every stage runs, and the run's own numbers are real and in a sane range."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FSDD = REPO.parent / "shared" / "data" / "fsdd"
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"no FSDD corpus at {FSDD}")]


def test_digits_recipe_runs_end_to_end(tmp_path):
    run = tmp_path / "digits"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(["bash", str(REPO / "recipes/digits/run.sh"), "--dir", str(run), "--size", "tiny",
                           "--utts-per-speaker", "40", "--num-teachers", "2", "--align-system", "tri3"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data, exp = run / "data", run / "exp"
    # data: speaker-independent splits of the real corpus, digit-word transcripts, 8 kHz on purpose
    spk = {}
    for split, n in (("train", 120), ("dev", 40), ("test", 40)):
        text = dict(line.split(" ", 1) for line in (data / split / "text").read_text().splitlines())
        assert len(text) == n and set(text.values()) == set(DIGITS)
        spk[split] = {u.split("-")[0] for u in text}
        assert (data / split / "skipped.tsv").read_text().startswith("utt_id\tpath\treason")
        meta = json.loads((data / "fbank" / split / "meta.json").read_text())
        assert meta["sample_rate"] == 8000 and meta["fbank"]["high_freq"] == -200
        mfcc = json.loads((data / "mfcc" / split / "meta.json").read_text())  # the GMMs' features (--gmm-feats mfcc)
        assert mfcc["sample_rate"] == 8000 and mfcc["dim"] == 13 and mfcc["cmvn"] == "speaker_mean"
    assert spk == {"train": {"george", "lucas", "yweweler"}, "dev": {"nicolas"}, "test": {"jackson"}}
    # the grammar: a unigram over the digit words, from the train transcripts only
    arpa = (data / "lm" / "1gram.arpa").read_text()
    assert "ngram 2=" not in arpa and all(f"\t{w}\n" in arpa for w in DIGITS)
    # alignment of real speech through Kaldi's ladder (tri: MFCC + deltas, tri2: LDA+MLLT, tri3: SAT, the labels):
    # (nearly) every utterance aligned by every system, no OOVs
    ali = json.loads((exp / "tri3" / "report.json").read_text())
    assert ali["config"]["fbank_dir"] == "data/mfcc" and ali["config"]["deltas"] == 2
    assert ali["final_system"] == "tri3" and set(ali["by_stage"]) == {"tri", "tri2", "tri3"}
    for split in ("train", "dev", "test"):
        assert ali["splits"][split]["fraction_aligned"] >= 0.9, (split, ali["splits"][split])
        assert all(ali["by_stage"][s][split]["fraction_aligned"] >= 0.9 for s in ("tri", "tri2")), ali["by_stage"]
        assert ali["oov_rate"][split] == 0.0
    assert (exp / "tri3" / "ali" / "test" / "trans").is_file()  # the test speaker's own fMLLR
    num_pdfs = ali["num_tied_states"]
    acc = json.loads((exp / "results" / "frame_acc_test.json").read_text())["splits"]["test"]["frame_acc"]
    for key in ("baseline", "teachers/ensemble_arithmetic", "students/T2"):
        assert 100.0 / num_pdfs < acc[key] <= 100.0, (key, acc[key])
    # decoding with the digit grammar: every system, real WER well below guessing (90% for 10 words)
    for name in ("baseline", "ensemble", "student_T2"):
        w = json.loads((exp / "decode" / name / "test" / "wer.json").read_text())
        assert w["ref_words"] == 40 and w["wer"] == pytest.approx(100 * w["errors"] / w["ref_words"], abs=1e-3)
        assert w["wer"] < 80.0, (name, w)
    report = (exp / "report.md").read_text()
    assert "## Table 1" in report and "2× ensemble" in report
    assert "Every split aligned by each triphone system" in report
    manifest = json.loads((exp / "export" / "manifest.json").read_text())
    assert manifest["num_pdfs"] == num_pdfs == int(np.load(exp / "tri3" / "pdf_counts.npy").size)
