"""am-speed: every model of the given dirs timed on the same frames, the first one the reference."""

from __future__ import annotations

import torch

from asr_base.io import read_json
from asr_kd.cli import main
from asr_kd.nn.model import AcousticDNN, ModelConfig, save_model


def test_am_speed(make_corpus, tmp_path):
    feats, _ = make_corpus(tmp_path / "test", num_utts=4, seed=0)
    for name, layers, dim in (("big", 2, 32), ("sweep/T1", 4, 8), ("sweep/T2", 1, 8)):
        torch.manual_seed(0)
        (tmp_path / name).mkdir(parents=True)
        save_model(tmp_path / name / "final.pt", AcousticDNN(ModelConfig(num_pdfs=12, feat_dim=8, left_context=2,
                                                                         right_context=1, hidden_layers=layers,
                                                                         hidden_dim=dim)))
    out = tmp_path / "speed.json"
    assert main(["am-speed", "--models", str(tmp_path / "big"), str(tmp_path / "sweep"), "--feats", str(feats),
                 "--out", str(out), "--max-frames", "300", "--batch-frames", "128", "--repeats", "1"]) == 0
    rows = read_json(out)["models"]
    assert [r["name"] for r in rows] == ["big", "sweep/T1", "sweep/T2"]
    assert [(r["hidden_layers"], r["hidden_dim"]) for r in rows] == [(2, 32), (4, 8), (1, 8)]
    assert rows[0]["relative_to_first"] == 1.0 and all(r["frames_per_s"] > 0 for r in rows)
    assert rows[2]["num_parameters"] == (8 * 4 * 8 + 8) + (8 * 12 + 12)
