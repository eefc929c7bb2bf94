"""Planning the synthetic corpus: every random choice, made up front from the seed.

Speakers (base voice + sox perturbation, dev/test speakers unseen in train, held-out voices in test and, with
``held_out_in_dev``, in dev),
disjoint sentence pools per split, and chapters of utterances (sentences, noise SNR, pads, noise seed).
The workers (:mod:`data_prep.corpus.synth.chapters`) only execute the plan, so the corpus does not
depend on the number of jobs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_prep.corpus.synth.synth_config import SPLITS, SynthConfig
from data_prep.corpus.synth.text import Sentence, harvest_sentences
from data_prep.corpus.synth.voices import Perturbation, get_voice

logger = logging.getLogger(__name__)

SPLIT_SPEAKER_BASE = {"train": 1000, "dev": 2000, "test": 3000}  # speaker ids 1001.., 2001.., 3001..


@dataclass(frozen=True)
class SpeakerSpec:
    speaker_id: int
    split: str
    voice: str
    sex: str
    perturbation: Perturbation

    @property
    def name(self) -> str:
        return f"{self.voice} {self.perturbation.describe()}"


@dataclass(frozen=True)
class UttSpec:
    utt_id: str
    words: tuple[str, ...]
    tts: tuple[str, ...]  # the sentences as given to the engine, one by one
    snr_db: float
    lead_pad: float
    tail_pad: float
    noise_seed: int

    @property
    def transcript(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class ChapterTask:
    split: str
    speaker: SpeakerSpec
    chapter: int
    utts: tuple[UttSpec, ...]
    chapter_dir: str
    timings_dir: str | None


@dataclass
class Plan:
    speakers: list[SpeakerSpec]
    chapters: list[ChapterTask]
    pools: dict[str, list[Sentence]]  # sentence pool of each split (disjoint)
    used: dict[str, list[Sentence]]  # the pool sentences that went into utterances
    harvest_rejects: dict[str, int] = field(default_factory=dict)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _split_index(split: str) -> int:
    return SPLITS.index(split)


def plan_speakers(cfg: SynthConfig) -> list[SpeakerSpec]:
    speakers = []
    for split in SPLITS:
        n = cfg.num_speakers(split)
        rng = _rng(cfg.seed, 1, _split_index(split))
        bases: list[str] = []
        if split == "test" or (split == "dev" and cfg.held_out_in_dev):  # at least half (and one) on held-out voices
            n_held = max(1, math.ceil(n / 2))
            bases += [cfg.test_only_voices[i % len(cfg.test_only_voices)] for i in range(n_held)]
        n_rest = n - len(bases)
        n_espeak = int(round(n_rest * cfg.espeak_fraction)) if cfg.espeak_voices else 0
        if n_espeak:
            bases += [str(v) for v in rng.choice(cfg.espeak_voices, size=n_espeak, replace=n_espeak > len(cfg.espeak_voices))]
        order = list(rng.permutation(len(cfg.voices)))
        bases += [cfg.voices[order[i % len(order)]] for i in range(n_rest - n_espeak)]
        for i, voice in enumerate(bases):
            r = _rng(cfg.seed, 2, _split_index(split), i)
            reverb = r.random() < cfg.reverb_prob
            pert = Perturbation(
                speed=float(r.uniform(*cfg.speed_range)),
                tempo=float(r.uniform(*cfg.tempo_range)),
                pitch_cents=float(r.uniform(*cfg.pitch_cents_range)),
                reverberance=float(r.uniform(5, 30)) if reverb else 0.0,
                room_scale=float(r.uniform(20, 70)),
                snr_db=float(r.uniform(cfg.snr_db_range[0] + 2, cfg.snr_db_range[1] - 2)),
                noise_color=str(r.choice(["white", "pink", "brown"])),
                peak=float(r.uniform(0.3, 0.9)),
            )
            speakers.append(SpeakerSpec(SPLIT_SPEAKER_BASE[split] + i + 1, split, voice, get_voice(voice).sex, pert))
    return speakers


def split_sentence_pool(sentences: list[Sentence], cfg: SynthConfig) -> dict[str, list[Sentence]]:
    """Shuffle and cut the pool into disjoint test / dev / train pools (before any utterance is built)."""
    order = _rng(cfg.seed, 3).permutation(len(sentences))
    shuffled = [sentences[i] for i in order]
    mean_words = float(np.mean([len(s.words) for s in sentences])) if sentences else 10.0
    pools, pos = {}, 0
    for split in ("test", "dev"):
        need = int(math.ceil(cfg.split_seconds(split) * cfg.words_per_second * cfg.speed_range[1] * cfg.tempo_range[1]
                             / mean_words * 1.5)) + 20
        pools[split] = shuffled[pos:pos + need]
        pos += need
    pools["train"] = shuffled[pos:]
    need_train = cfg.split_seconds("train") * cfg.words_per_second / mean_words
    if len(pools["train"]) < need_train:
        raise ValueError(f"sentence pool too small: {len(sentences)} sentences for {cfg.train_hours} h of train")
    return pools


class SentenceQueue:
    """A split's shuffled sentence pool; picks the earliest unused sentence of about the wanted length."""

    def __init__(self, sentences: list[Sentence]):
        self.sentences = sentences
        self.lengths = np.array([len(s.words) for s in sentences], dtype=np.int64)
        self.used = np.zeros(len(sentences), dtype=bool)

    def __len__(self) -> int:
        return int((~self.used).sum())

    def take(self, want: float) -> Sentence | None:
        free = ~self.used
        if not free.any():
            return None
        dist = np.abs(self.lengths - want)
        best = dist[free].min()  # the closest length available, earliest in the shuffled order wins
        i = int(np.flatnonzero(free & (dist <= max(best, 1.0)))[0])
        self.used[i] = True
        return self.sentences[i]


def _take_sentences(queue: SentenceQueue, k: int, target_words: float, min_words: int) -> list[Sentence]:
    """``k`` sentences whose lengths add up to about ``target_words``."""
    chosen: list[Sentence] = []
    for slot in range(k):
        want = max((target_words - sum(len(s.words) for s in chosen)) / (k - slot), float(min_words))
        sent = queue.take(want)
        if sent is None:
            break
        chosen.append(sent)
    return chosen


def plan_corpus(cfg: SynthConfig, out_dir: Path, sentences: list[Sentence]) -> Plan:
    cfg.validate()
    speakers = plan_speakers(cfg)
    pools = split_sentence_pool(sentences, cfg)
    chapters: list[ChapterTask] = []
    used: dict[str, list[Sentence]] = {}
    corpus = out_dir / "LibriSpeech"
    for split in SPLITS:
        queue = SentenceQueue(pools[split])
        spk_list = [s for s in speakers if s.split == split]
        per_speaker = cfg.split_seconds(split) / len(spk_list)
        for spk in spk_list:
            rng = _rng(cfg.seed, 4, spk.speaker_id)
            rate = cfg.words_per_second * spk.perturbation.speed * spk.perturbation.tempo  # words/s in output
            utts: list[tuple] = []
            est = 0.0
            while est < per_speaker and len(queue):
                dur = float(rng.uniform(*cfg.utt_seconds))
                k = int(rng.integers(cfg.sentences_per_utt[0], cfg.sentences_per_utt[1] + 1))
                sents = _take_sentences(queue, k, dur * rate, cfg.min_words)
                if not sents:
                    break
                words = tuple(w for s in sents for w in s.words)
                lead, tail = (float(x) for x in rng.uniform(*cfg.pad_seconds, size=2))
                snr = float(np.clip(spk.perturbation.snr_db + rng.uniform(-2, 2), *cfg.snr_db_range))
                utts.append((words, tuple(s.tts for s in sents), snr, lead, tail, int(rng.integers(2**31))))
                est += len(words) / rate + lead + tail
            if not len(queue) and est < per_speaker:
                logger.warning("%s: sentence pool exhausted, speaker %d gets %.0f s", split, spk.speaker_id, est)
            n_chap = max(1, math.ceil(len(utts) / cfg.max_chapter_utts))
            if n_chap > 10:
                raise ValueError(f"speaker {spk.speaker_id} needs {n_chap} chapters (> 10): raise the speaker count")
            for c, chunk in enumerate(np.array_split(np.arange(len(utts)), n_chap)):
                chap_id = spk.speaker_id * 10 + c
                specs = tuple(
                    UttSpec(f"{spk.speaker_id}-{chap_id}-{j:04d}", *utts[i]) for j, i in enumerate(chunk.tolist())
                )
                if not specs:
                    continue
                chapters.append(ChapterTask(
                    split, spk, chap_id, specs,
                    str(corpus / split / str(spk.speaker_id) / str(chap_id)),
                    str(out_dir / "phone_timings" / split) if cfg.phone_timings else None,
                ))
        used[split] = [s for s, u in zip(queue.sentences, queue.used) if u]
    return Plan(speakers, chapters, pools, used)


@lru_cache(maxsize=1)
def _harvest_all() -> tuple[tuple[Sentence, ...], tuple]:
    sents, rejects = harvest_sentences(min_words=1, max_words=10_000)
    return tuple(sents), tuple(sorted(rejects.items()))


def harvest_pool(min_words: int = 6, max_words: int = 30) -> tuple[tuple[Sentence, ...], dict[str, int]]:
    """The usable sentences with ``min_words..max_words`` words (harvested once per process), and the
    rejection counts."""
    sents, rejects = _harvest_all()
    keep = tuple(s for s in sents if min_words <= len(s.words) <= max_words)
    counts = dict(rejects)
    counts["length"] = counts.get("length", 0) + len(sents) - len(keep)
    return keep, counts
