"""asr_base.stamp: a step is skipped only when its options and inputs are unchanged, and the log says why."""

from __future__ import annotations

import logging
import os

from asr_base.stamp import Step, path_digest


def test_step_rebuilds_on_option_or_input_change(tmp_path, caplog):
    src = tmp_path / "in.txt"
    src.write_text("a")
    stamp = tmp_path / "out" / ".stamp.json"

    def step(**cfg):
        return Step(stamp, "demo", config={"leaves": 800, **cfg}, inputs={"src": src})

    assert not step().up_to_date()
    step().done(n=3)
    caplog.set_level(logging.INFO)
    assert step().up_to_date()
    assert step().info() == {"n": 3}
    assert not step(leaves=400).up_to_date()
    assert "option changed: leaves 800 -> 400" in caplog.text
    assert not step().up_to_date(force=True)
    src.write_text("b")
    assert not step().up_to_date()
    assert "input changed: src" in caplog.text
    step().done()
    assert step().up_to_date()


def test_digests_of_files_and_dirs(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_bytes(b"1")
    first = path_digest(d)
    (d / ".stamp.json").write_text("{}")  # stamps do not count
    assert path_digest(d) == first
    (d / "x").write_bytes(b"22")
    assert path_digest(d) != first
    assert path_digest(tmp_path / "missing") == "absent"
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    g = tmp_path / "g"
    g.write_bytes(b"abc")
    os.utime(g, (0, 0))
    assert path_digest(f) == path_digest(g)  # small files: content, not time
