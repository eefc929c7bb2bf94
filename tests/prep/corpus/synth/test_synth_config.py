"""synth_config: voices are checked, pairs are pairs, command-line lists become tuples."""

from __future__ import annotations

import dataclasses

import pytest

from data_prep.corpus.synth import voices as V
from data_prep.corpus.synth.synth_config import SynthConfig


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown voice"):
        V.get_voice("flite:nobody")
    with pytest.raises(ValueError):
        SynthConfig(voices=("flite:slt",), test_only_voices=("flite:slt",)).validate()


def test_pairs_and_lists():
    cfg = SynthConfig(voices=["flite:slt", "flite:rms"], speed_range=[0.9, 1.1])
    assert cfg.voices == ("flite:slt", "flite:rms") and cfg.speed_range == (0.9, 1.1) and hash(cfg)
    with pytest.raises(ValueError, match="two values"):
        dataclasses.replace(SynthConfig.tiny(), speed_range=(0.9,)).validate()
