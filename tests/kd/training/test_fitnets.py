"""FitNets and students of another size: hint stage (dev hint loss falls), then distillation from the hinted
student; a thin-and-deep student's architecture is its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr_base.io import read_json
from asr_kd.cli import main
from asr_kd.nn.model import AcousticDNN, load_model, ModelConfig, save_model


@pytest.fixture(scope="module")
def setup(make_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("fitnets")
    for name, n, seed in (("train", 30, 0), ("dev", 8, 1)):
        feats, labels = make_corpus(root / name, num_utts=n, seed=seed, noise=2.0)
        (root / "fbank").mkdir(exist_ok=True)
        feats.rename(root / "fbank" / name)
    common = ["--train-feats", str(root / "fbank/train"), "--train-labels", str(root / "train/pdf.npy"),
              "--dev-feats", str(root / "fbank/dev"), "--dev-labels", str(root / "dev/pdf.npy"), "--num-pdfs", "12",
              "--hidden-layers", "2", "--hidden-dim", "24", "--left-context", "2", "--right-context", "1",
              "--epochs", "1", "--min-epochs", "1", "--batch-size", "32", "--epoch-frames", "480", "--lr", "0.05",
              "--device", "cpu"]
    for i in range(2):  # two (untrained) teachers: the hint and distillation mechanics need no trained ones
        torch.manual_seed(i)
        (root / f"teachers/member_{i:02d}").mkdir(parents=True)
        save_model(root / f"teachers/member_{i:02d}/final.pt",
                   AcousticDNN(ModelConfig(num_pdfs=12, feat_dim=8, left_context=2, right_context=1, hidden_layers=2,
                                           hidden_dim=24)))
    return root, common + ["--teachers", str(root / "teachers"), "--temperatures", "2",
                           "--student-hidden-layers", "4", "--student-hidden-dim", "8"]


@pytest.mark.e2e
def test_hints_then_distillation(setup):
    root, args = setup
    hinted = root / "fitnets"
    assert main(["fitnets", *args, "--hint-epochs", "2", "--teacher-hint-layer", "1", "--out", str(hinted)]) == 0
    hint = read_json(hinted / "hint/hint.json")
    assert (hint["teacher_hint_layer"], hint["student_guided_layer"]) == (1, 2)
    assert hint["log"][1]["dev_hint_loss"] < hint["log"][0]["dev_hint_loss"]
    assert hint["guided_rescale"] > 0 and hint["guided_init_rms"] > 0
    student = load_model(hinted / "T2/final.pt")
    assert (student.config.hidden_layers, student.config.hidden_dim) == (4, 8)
    assert read_json(hinted / "T2/config.json")["num_parameters"] == student.num_parameters()
    # stage 2 started from the hint stage's student (an input of its up-to-date check)
    assert "init_student" in read_json(hinted / ".stamp.json")["inputs"]
    # a student file of the wrong architecture is a clear error
    with pytest.raises(SystemExit):
        main(["distill", *args[:-4], "--init-student", str(hinted / "hint/hint.pt"), "--out", str(root / "bad")])


def test_match_init_scale_restores_the_scale_not_the_features():
    from asr_kd.training.fitnets import match_init_scale

    torch.manual_seed(0)
    guided = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4), torch.nn.ReLU())
    x = torch.randn(64, 6)
    with torch.no_grad():
        before = guided(x)
        init_rms = float(before.pow(2).mean().sqrt())
        guided[2].weight.mul_(7.0)  # what the hint stage does to the scale
        guided[2].bias.mul_(7.0)
        assert match_init_scale(guided, x, init_rms) == pytest.approx(7.0, rel=1e-5)
        torch.testing.assert_close(guided(x), before, rtol=1e-5, atol=1e-6)  # ReLU is positively homogeneous
        dead = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU())
        dead[0].weight.zero_(); dead[0].bias.fill_(-1.0)
        assert match_init_scale(dead, x, init_rms) == 1.0
