"""The options that determine the synthetic corpus (``data-prep synth-corpus``): sizes, voices, perturbation.

Every field is a command-line option (``--train-hours``, ``--voices a,b``, ``--speed-range 0.92 1.08``, ...);
``--tiny`` starts from :meth:`SynthConfig.tiny` and explicit options override it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Literal

from asr_base.config import option
from data_prep.corpus.synth.text import text_sources_fingerprint
from data_prep.corpus.synth.voices import ESPEAK_VOICES, NATURAL_VOICES, get_voice

SPLITS = ("train", "dev", "test")
FORMAT_VERSION = 2  # 2: timing-exact chain (engine stretch + sox speed; no tempo -s or pitch)
DEFAULT_TEST_ONLY = ("festival:ked_diphone",)
PAIRS = ("utt_seconds", "sentences_per_utt", "speed_range", "tempo_range", "pitch_cents_range", "snr_db_range",
         "pad_seconds")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the corpus content (``jobs`` does not)."""

    seed: int = option(0, help="random seed")
    train_hours: float = option(2.0, help="train audio (hours)")
    dev_minutes: float = option(15.0, help="dev audio (minutes)")
    test_minutes: float = option(15.0, help="test audio (minutes)")
    num_train_speakers: int = option(40, help="train speakers")
    num_dev_speakers: int = option(8, help="dev speakers (unseen in train)")
    num_test_speakers: int = option(8, help="test speakers (unseen in train)")
    # Base voices for train and dev (and for the rest of test); test_only_voices are held out of train: half of test's
    # speakers (and, with held_out_in_dev, half of dev's) are made from them.
    voices: tuple[str, ...] = option(tuple(v for v in NATURAL_VOICES if v not in DEFAULT_TEST_ONLY),
                                     help="comma-separated base voices for train/dev")
    test_only_voices: tuple[str, ...] = option(DEFAULT_TEST_ONLY, help="base voices held out of train, for test")
    held_out_in_dev: bool = option(False, help="half of dev's speakers on the test-only voices too, so that dev, "
                                               "which selects, is drawn like test (train and test are unchanged)")
    espeak_voices: tuple[str, ...] = option(ESPEAK_VOICES, help="espeak-ng voices")
    espeak_fraction: float = option(0.15, help="share of speakers per split on espeak-ng voices")
    utt_seconds: tuple[float, float] = option((8.0, 15.0), help="min and max planned utterance length (s)")
    sentences_per_utt: tuple[int, int] = option((2, 3), help="min and max sentences joined into an utterance")
    min_words: int = option(6, help="shortest usable sentence (words)")
    max_words: int = option(30, help="longest usable sentence (words)")
    max_chapter_utts: int = option(12, help="utterances per chapter")
    words_per_second: float = option(2.75, help="TTS speaking rate before perturbation, for planning only")
    speed_range: tuple[float, float] = option((0.92, 1.08), help="speed factor range of a speaker (resampling: "
                                                                 "pitch, formants and duration)")
    tempo_range: tuple[float, float] = option((0.92, 1.08), help="tempo factor range of a speaker (duration only, "
                                                                 "stretched inside the TTS engine)")
    pitch_cents_range: tuple[float, float] = option((-150.0, 150.0), help="pitch shift range (cents; like sox "
                                                                          "pitch, as resampling + engine stretch)")
    reverb_prob: float = option(0.4, help="share of speakers with reverberation")
    snr_db_range: tuple[float, float] = option((20.0, 40.0), help="additive noise SNR range (dB)")
    pad_seconds: tuple[float, float] = option((0.1, 0.4), help="leading/trailing silence range (s)")
    phone_timings: bool = option(True, help="write phone_timings/ (--no-phone-timings: do not)")
    lm_text: Literal["pool", "used"] = option(
        "pool", help="lm_text.txt: all train-side sentences (pool) or only those in train utterances (used)")

    def __post_init__(self) -> None:
        for f in fields(self):  # lists from the command line -> tuples (hashable, comparable with defaults)
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    snr_db_range: tuple[float, float] = (20.0, 40.0)
    pad_seconds: tuple[float, float] = (0.1, 0.4)
    phone_timings: bool = True
    lm_text: str = "pool"  # "pool": every train-side sentence; "used": only sentences in train utterances

    @classmethod
    def tiny(cls, seed: int = 0) -> "SynthConfig":
        """A few short utterances from flite voices only: seconds to run, for tests."""
        return cls(seed=seed, train_hours=20.0 / 3600, dev_minutes=8.0 / 60, test_minutes=8.0 / 60,
                   num_train_speakers=2, num_dev_speakers=1, num_test_speakers=1,
                   voices=("flite:rms", "flite:slt", "flite:awb"), test_only_voices=("flite:kal16",),
                   espeak_fraction=0.0, utt_seconds=(3.0, 6.0), sentences_per_utt=(1, 2), max_words=14,
                   max_chapter_utts=2)

    def validate(self) -> None:
        for key in self.voices + self.test_only_voices + self.espeak_voices:
            get_voice(key)
        if set(self.voices) & set(self.test_only_voices):
            raise ValueError("a voice cannot be both a training voice and a test-only voice")
        if not self.voices:
            raise ValueError("need at least one training voice")
        if not self.test_only_voices:
            raise ValueError("need at least one test-only (held-out) voice")
        for split in SPLITS:
            n = self.num_speakers(split)
            if not 1 <= n <= 999:
                raise ValueError(f"--num-{split}-speakers must be in 1..999, got {n}")
            if self.split_seconds(split) <= 0:
                raise ValueError(f"{split}: size must be positive")
        lo, hi = self.sentences_per_utt
        if not 1 <= lo <= hi:
            raise ValueError("sentences_per_utt must be 1 <= min <= max")
        if not 0 <= self.espeak_fraction <= 1:
            raise ValueError("espeak_fraction must be in [0, 1]")
        if self.lm_text not in ("pool", "used"):
            raise ValueError("lm_text must be 'pool' or 'used'")
        for name in PAIRS:
            if len(getattr(self, name)) != 2:
                raise ValueError(f"--{name.replace('_', '-')} takes two values (min max)")

    def num_speakers(self, split: str) -> int:
        return {"train": self.num_train_speakers, "dev": self.num_dev_speakers, "test": self.num_test_speakers}[split]

    def split_seconds(self, split: str) -> float:
        return {"train": self.train_hours * 3600, "dev": self.dev_minutes * 60, "test": self.test_minutes * 60}[split]

    def identity(self) -> dict:
        d = json.loads(json.dumps(asdict(self)))  # tuples -> lists, as read back from JSON
        if not self.held_out_in_dev:  # added later: corpora made before it keep their identity
            del d["held_out_in_dev"]
        d["format_version"] = FORMAT_VERSION
        d["text_sources"] = text_sources_fingerprint()
        return d
