"""asr_base.io: atomic writes leave no partial file; torch artefacts are byte-reproducible."""

from __future__ import annotations

import hashlib

import pytest
import torch

from asr_base.io import atomic_path, save_torch


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_save_torch_same_object_same_bytes_under_any_name(tmp_path):
    """torch.save(obj, path) names the zip's root folder after the (random) temp file; save_torch must not."""
    state = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"n": 3}}
    save_torch(tmp_path / "one.pt", state)
    save_torch(tmp_path / "two.pt", state)
    assert _digest(tmp_path / "one.pt") == _digest(tmp_path / "two.pt")
    back = torch.load(tmp_path / "one.pt", weights_only=True)
    assert torch.equal(back["w"], state["w"]) and back["meta"] == {"n": 3}


def test_save_torch_scripted_module_reproducible(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    save_torch(tmp_path / "a.ts", scripted)
    save_torch(tmp_path / "b.ts", scripted)
    assert _digest(tmp_path / "a.ts") == _digest(tmp_path / "b.ts")
    x = torch.ones(1, 3)
    assert torch.equal(torch.jit.load(tmp_path / "a.ts")(x), scripted(x))
