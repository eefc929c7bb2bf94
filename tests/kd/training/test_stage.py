"""The training stages' shared options and up-to-date check: typed configs from the flags, skip / retrain."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from asr_base.config import to_argv
from asr_base.io import read_json
from asr_kd.cli import main
from asr_kd.training import ensemble, regularizer, train
from asr_kd.training.stage import stage_options


@pytest.fixture(scope="module")
def corpus(make_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    tr = make_corpus(root / "train", num_utts=16, seed=0)
    dv = make_corpus(root / "dev", num_utts=4, seed=1)
    (root / "num_pdfs").write_text("12\n")
    return root, tr, dv


def _data(corpus) -> list[str]:
    _, (tf, tl), (df, dl) = corpus
    return ["--train-feats", str(tf), "--train-labels", str(tl), "--dev-feats", str(df), "--dev-labels", str(dl)]


def _parse(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def test_flags_become_typed_configs_with_stage_defaults(corpus):
    root = corpus[0]
    args = _parse(train, [*_data(corpus), "--num-pdfs-file", str(root / "num_pdfs"), "--hidden-dim", "16",
                          "--no-amp", "--compile", "--epoch-frames", "500", "--resume", "--out", "x"])
    opts = stage_options(args)
    assert (opts.model.num_pdfs, opts.model.feat_dim, opts.model.hidden_dim) == (12, 8, 16)
    assert not opts.train.amp and opts.train.compile and opts.train.epoch_frames == 500 and opts.train.seed == 1
    assert opts.run.resume and not opts.run.force
    assert "--no-amp" in to_argv(opts.train)
    # each stage keeps its own defaults of the shared trainer options
    assert stage_options(_parse(ensemble, [*_data(corpus), "--num-pdfs", "12", "--out", "x"]),
                         ensemble.TRAIN_DEFAULTS).train.seed == 100
    reg = stage_options(_parse(regularizer, [*_data(corpus), "--num-pdfs", "12", "--teacher", "t", "--test-feats",
                                             "f", "--test-labels", "l", "--out", "x"]), regularizer.TRAIN_DEFAULTS)
    assert (reg.train.epochs, reg.train.seed) == (30, 11)
    # --num-pdfs and --num-pdfs-file: exactly one
    with pytest.raises(SystemExit, match="exactly one"):
        stage_options(_parse(train, [*_data(corpus), "--out", "x"]))
    with pytest.raises(SystemExit, match="exactly one"):
        stage_options(_parse(train, [*_data(corpus), "--num-pdfs", "12", "--num-pdfs-file", "f", "--out", "x"]))


def test_finished_model_is_retrained_only_when_options_or_inputs_change(corpus, tmp_path, capsys):
    out = tmp_path / "baseline"
    base = ["train", *_data(corpus), "--num-pdfs", "12", "--hidden-layers", "1", "--hidden-dim", "16",
            "--left-context", "1", "--right-context", "1", "--epochs", "1", "--batch-size", "64", "--device", "cpu",
            "--out", str(out)]

    def trained(*extra) -> bool:
        before = (out / "final.pt").stat().st_mtime_ns if (out / "final.pt").is_file() else None
        assert main([*base, *extra]) == 0
        return (out / "final.pt").stat().st_mtime_ns != before

    assert trained()
    stamp = read_json(out / ".stamp.json")
    assert stamp["config"]["model.hidden_dim"] == 16 and "train.log_every" not in stamp["config"]
    assert set(stamp["inputs"]) == {"train_feats", "train_labels", "dev_feats", "dev_labels"}
    assert not trained()  # identical options: skipped
    assert not trained("--log-every", "7")  # logging cadence does not change the weights
    capsys.readouterr()
    assert trained("--hidden-dim", "24")
    assert "option changed: model.hidden_dim 16 -> 24" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["model"]["hidden_dim"] == 24
    assert trained("--hidden-dim", "24", "--force")
    assert not trained("--hidden-dim", "24")
    # a changed input (the dev labels) retrains
    _, _, (_, dev_labels) = corpus
    data = dev_labels.read_bytes()
    labels = np.load(dev_labels)
    labels[0] = (labels[0] + 1) % 12
    np.save(dev_labels, labels)
    try:
        capsys.readouterr()
        assert trained("--hidden-dim", "24")
        assert "input changed: dev_labels" in capsys.readouterr().err
    finally:
        dev_labels.write_bytes(data)


def test_stopped_run_resumes_and_then_counts_as_up_to_date(corpus, tmp_path):
    out = tmp_path / "m"
    base = ["train", *_data(corpus), "--num-pdfs", "12", "--hidden-layers", "1", "--hidden-dim", "16",
            "--left-context", "1", "--right-context", "1", "--epochs", "2", "--batch-size", "64", "--device", "cpu",
            "--out", str(out)]
    assert main([*base, "--max-steps", "3"]) == 0
    assert (out / "checkpoint.pt").is_file() and not (out / "final.pt").is_file()
    assert not (out / ".stamp.json").is_file()
    assert main([*base, "--resume"]) == 0
    assert (out / "final.pt").is_file() and (out / ".stamp.json").is_file()
    mtime = (out / "final.pt").stat().st_mtime_ns
    assert main(base) == 0
    assert (out / "final.pt").stat().st_mtime_ns == mtime
