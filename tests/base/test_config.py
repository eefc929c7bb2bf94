"""asr_base.config: one way from a typed dataclass config to command-line options and back."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from asr_base.config import add_options, from_args, from_dict, option, to_argv, to_dict


@dataclass
class Demo:
    out: str = option(help="output dir")
    num_leaves: int = option(800, help="tied states")
    lr: float = option(0.1)
    splits: list[str] = option(["train", "dev"], help="splits")
    realign: list[int] = option([1, 2, 3])
    rspecs: list[str] = option(["ark:a"], split=False)
    mean: Literal["arithmetic", "geometric"] = option("arithmetic")
    limit: int | None = option(None)
    force: bool = option(False, help="redo")
    amp: bool = option(True)
    internal: int = option(5, cli=False)


def parse(argv, **kw):
    p = argparse.ArgumentParser()
    add_options(p, Demo, **kw)
    return p.parse_args(argv)


def test_options_from_fields_and_back():
    args = parse(["--out", "x", "--num-leaves", "400", "--splits", "a", "b", "--realign", "4,8", "12",
                  "--mean", "geometric", "--limit", "7", "--force", "--no-amp",
                  "--rspecs", "ark,t:x.txt", "ark:gunzip -c ali.1.gz|"])
    cfg = from_args(Demo, args)
    assert cfg == Demo(out="x", num_leaves=400, splits=["a", "b"], realign=[4, 8, 12], mean="geometric", limit=7,
                       force=True, amp=False, rspecs=["ark,t:x.txt", "ark:gunzip -c ali.1.gz|"])
    assert from_args(Demo, parse(to_argv(cfg))) == cfg
    assert from_dict(Demo, to_dict(cfg) | {"unknown": 1}) == cfg


def test_defaults_required_and_choices():
    cfg = from_args(Demo, parse(["--out", "o"]))
    assert cfg == Demo(out="o") and cfg.splits == ["train", "dev"] and cfg.splits is not Demo(out="o").splits
    assert to_argv(cfg) == ["--out", "o"]
    with pytest.raises(SystemExit):
        parse([])  # --out is required
    with pytest.raises(SystemExit):
        parse(["--out", "o", "--mean", "harmonic"])
    with pytest.raises(SystemExit):
        parse(["--out", "o", "--internal", "3"])  # cli=False fields are not options


def test_preset_base_only_overridden_by_given_options():
    preset = Demo(out="p", num_leaves=10, lr=0.5)
    cfg = from_args(Demo, parse(["--out", "o", "--lr", "0.25"]), base=preset)
    assert (cfg.out, cfg.num_leaves, cfg.lr) == ("o", 10, 0.25)


def test_help_shows_defaults_and_groups(capsys):
    p = argparse.ArgumentParser(prog="demo")
    add_options(p, Demo, title="demo options", defaults={"num_leaves": 123})
    p.print_help()
    text = capsys.readouterr().out
    assert "demo options" in text and "--num-leaves" in text and "(default: 123)" in text
    assert "(default: train dev)" in text and "--no-amp" in text
