"""synth.chapters: a chapter's utterances are rendered; one that fails is listed, never fatal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from data_prep.corpus.synth import voices as V
from data_prep.corpus.synth.chapters import synth_chapter
from data_prep.corpus.synth.plan import harvest_pool, plan_corpus
from data_prep.corpus.synth.synth_config import SynthConfig

needs_sox_flite = pytest.mark.skipif(bool(V.missing_tools(["flite:slt"])), reason="sox/flite not installed")


@pytest.mark.e2e
@needs_sox_flite
def test_failed_utterance_is_listed_not_fatal(tmp_path):
    cfg = SynthConfig.tiny()
    plan = plan_corpus(cfg, tmp_path, list(harvest_pool(cfg.min_words, cfg.max_words)[0]))
    task = plan.chapters[0]
    good = task.utts[0]
    # transcript of 80 words but only a short text to speak: the engine's duration is implausible
    bad = dataclasses.replace(good, utt_id=good.utt_id[:-4] + "0099", words=("THE",) * 80)
    res = synth_chapter(dataclasses.replace(task, utts=(good, bad)))
    assert [u for u, _, _ in res.ok] == [good.utt_id]
    assert [u for u, _ in res.failed] == [bad.utt_id] and "implausible" in res.failed[0][1]
    assert not (Path(task.chapter_dir) / f"{bad.utt_id}.flac").exists()
