"""synth.plan: speakers, disjoint sentence pools and chapters, deterministic for a seed."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from data_prep.corpus.synth import text as T
from data_prep.corpus.synth.plan import harvest_pool, plan_corpus
from data_prep.corpus.synth.synth_config import SPLITS, SynthConfig


def test_real_pool_is_large_and_in_cmudict():
    sents, _ = harvest_pool(6, 30)
    assert len(sents) > 20000  # Debian fortunes + wordnet give tens of thousands
    vocab = T.load_cmudict_words()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(sents), 500, replace=False):
        s = sents[i]
        assert 6 <= len(s.words) <= 30
        assert all(w.lower() in vocab and re.fullmatch(r"[A-Z']+", w) for w in s.words)
        assert not re.search(r"[0-9&$%/@#]", s.tts)


def test_plan_default_config_speakers_and_sentences_disjoint(tmp_path):
    cfg = SynthConfig()
    sents, _ = harvest_pool(cfg.min_words, cfg.max_words)
    plan = plan_corpus(cfg, tmp_path, list(sents))
    by_split = {s: [x for x in plan.speakers if x.split == s] for s in SPLITS}
    assert [len(by_split[s]) for s in SPLITS] == [40, 8, 8]
    assert len({x.speaker_id for x in plan.speakers}) == 56
    combos = {(x.voice, x.perturbation) for x in plan.speakers}
    assert len(combos) == 56  # every speaker its own voice + perturbation
    train_voices = {x.voice for x in by_split["train"] + by_split["dev"]}
    assert set(cfg.test_only_voices) & {x.voice for x in by_split["test"]}
    assert not set(cfg.test_only_voices) & train_voices
    espeak = sum(x.voice.startswith("espeak:") for x in by_split["train"])
    assert 0 < espeak < 0.3 * len(by_split["train"])  # a minority
    for x in plan.speakers:
        assert 0.92 <= x.perturbation.speed <= 1.08 and 20 <= x.perturbation.snr_db <= 40
    # sentence pools are disjoint, and every utterance is made of its split's sentences
    pools = {s: {x.transcript for x in plan.pools[s]} for s in SPLITS}
    assert not pools["train"] & pools["dev"] and not pools["train"] & pools["test"] and not pools["dev"] & pools["test"]
    est = {s: 0.0 for s in SPLITS}
    for task in plan.chapters:
        rate = cfg.words_per_second * task.speaker.perturbation.speed * task.speaker.perturbation.tempo
        for u in task.utts:
            assert 2 <= len(u.tts) <= 3  # 2-3 sentences joined
            assert " ".join(u.tts).count(".") + " ".join(u.tts).count("?") + " ".join(u.tts).count("!") == len(u.tts)
            est[task.split] += len(u.words) / rate + u.lead_pad + u.tail_pad
            assert re.fullmatch(rf"{task.speaker.speaker_id}-{task.chapter}-\d{{4}}", u.utt_id)
        assert len(task.utts) <= cfg.max_chapter_utts
    used = {s: {x.transcript for x in plan.used[s]} for s in SPLITS}
    assert all(used[s] <= pools[s] for s in SPLITS)
    assert 0.9 * 7200 < est["train"] < 1.15 * 7200 and 0.9 * 900 < est["dev"] < 1.15 * 900


def test_plan_is_deterministic_and_seed_dependent(tmp_path):
    cfg = SynthConfig.tiny(seed=3)
    sents = list(harvest_pool(cfg.min_words, cfg.max_words)[0])
    a, b = plan_corpus(cfg, tmp_path, sents), plan_corpus(cfg, tmp_path, sents)
    assert a.chapters == b.chapters and a.speakers == b.speakers
    c = plan_corpus(dataclasses.replace(cfg, seed=4), tmp_path, sents)
    assert [u.words for t in a.chapters for u in t.utts] != [u.words for t in c.chapters for u in t.utts]


def test_held_out_in_dev_changes_only_dev(tmp_path):
    cfg = SynthConfig()
    sents = list(harvest_pool(cfg.min_words, cfg.max_words)[0])
    a = plan_corpus(cfg, tmp_path, sents)
    b = plan_corpus(dataclasses.replace(cfg, held_out_in_dev=True), tmp_path, sents)
    for split in ("train", "test"):
        assert [x for x in a.speakers if x.split == split] == [x for x in b.speakers if x.split == split]
        assert [t for t in a.chapters if t.split == split] == [t for t in b.chapters if t.split == split]
    dev_a, dev_b = ([x.voice for x in p.speakers if x.split == "dev"] for p in (a, b))
    assert not set(cfg.test_only_voices) & set(dev_a)
    assert sum(v in cfg.test_only_voices for v in dev_b) == 4  # half of the 8 dev speakers
    assert len({x.speaker_id for x in b.speakers}) == 56
    assert "held_out_in_dev" not in cfg.identity() and b.speakers != a.speakers
    assert dataclasses.replace(cfg, held_out_in_dev=True).identity()["held_out_in_dev"] is True
