"""``data-prep synth-corpus``: synthesise the offline "mini" speech corpus in LibriSpeech layout.

Output under ``--out-dir`` (see docs/formats.md)::

    LibriSpeech/<split>/<spk>/<chap>/<spk>-<chap>-<utt>.flac     16 kHz mono 16-bit FLAC
    LibriSpeech/<split>/<spk>/<chap>/<spk>-<chap>.trans.txt      "UTTID WORD WORD ..." (upper case)
    LibriSpeech/SPEAKERS.TXT                                     LibriSpeech's "ID | SEX | SUBSET | MINUTES | NAME"
    lm_text.txt            train-side sentences, one per line (never a dev/test sentence)
    phone_timings/<split>/<utt>.txt   "start end phone" (s) from the TTS engine (flite/festival voices only)
    speakers.json          every speaker: split, base voice, perturbation
    synth_failures.tsv     utterances that could not be synthesised (after one retry), with the reason
    synth_manifest.json    config + statistics; written last: its presence means the corpus is complete

Splits ``train``, ``dev``, ``test``. dev/test speakers are unseen in training (new voice + perturbation
combinations; the ``--test-only-voices`` base voices appear in test only) and the sentence pool is split
before utterances are assembled, so no dev/test sentence occurs in train or in ``lm_text.txt``.

Deterministic for a given ``--seed`` (independent of ``--jobs``): every random choice is made up front in
the planning step; the workers only run the TTS, sox (``-D -R``: no dither, repeatable) and seeded noise.
Resumable: a chapter whose state file exists is not redone; a complete corpus with the same config is
skipped; a different config is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from asr_base.io import read_json, write_json, write_text
from data_prep.corpus.synth.text import Sentence, harvest_sentences, text_sources_fingerprint
from data_prep.corpus.synth.voices import (
    ESPEAK_VOICES, NATURAL_VOICES, SAMPLE_RATE, Perturbation, get_voice, missing_tools, render, sox_perturb,
    unavailable_voices,
    synthesize_utterances, write_flac,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
SPLIT_SPEAKER_BASE = {"train": 1000, "dev": 2000, "test": 3000}  # speaker ids 1001.., 2001.., 3001..
FORMAT_VERSION = 1
MANIFEST = "synth_manifest.json"
CONFIG_FILE = "synth_config.json"
STATE_DIR = ".synth_state"
DEFAULT_TEST_ONLY = ("festival:ked_diphone",)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the corpus content (``jobs`` does not)."""

    seed: int = 0
    train_hours: float = 2.0
    dev_minutes: float = 15.0
    test_minutes: float = 15.0
    num_train_speakers: int = 40
    num_dev_speakers: int = 8
    num_test_speakers: int = 8
    # Base voices for train and dev (and for the rest of test); test_only_voices are held out for test.
    voices: tuple[str, ...] = tuple(v for v in NATURAL_VOICES if v not in DEFAULT_TEST_ONLY)
    test_only_voices: tuple[str, ...] = DEFAULT_TEST_ONLY
    espeak_voices: tuple[str, ...] = ESPEAK_VOICES
    espeak_fraction: float = 0.15  # share of speakers per split built on espeak-ng
    utt_seconds: tuple[float, float] = (8.0, 15.0)
    sentences_per_utt: tuple[int, int] = (2, 3)
    min_words: int = 6
    max_words: int = 30
    max_chapter_utts: int = 12
    words_per_second: float = 2.75  # TTS speaking rate before perturbation, for planning only
    speed_range: tuple[float, float] = (0.92, 1.08)
    tempo_range: tuple[float, float] = (0.92, 1.08)
    pitch_cents_range: tuple[float, float] = (-150.0, 150.0)
    reverb_prob: float = 0.4
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

    def num_speakers(self, split: str) -> int:
        return {"train": self.num_train_speakers, "dev": self.num_dev_speakers, "test": self.num_test_speakers}[split]

    def split_seconds(self, split: str) -> float:
        return {"train": self.train_hours * 3600, "dev": self.dev_minutes * 60, "test": self.test_minutes * 60}[split]

    def identity(self) -> dict:
        d = json.loads(json.dumps(asdict(self)))  # tuples -> lists, as read back from JSON
        d["format_version"] = FORMAT_VERSION
        d["text_sources"] = text_sources_fingerprint()
        return d


# ------------------------------------------------------------------------------------------ planning


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
        if split == "test":  # at least half of test (and at least one speaker) on held-out voices
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


# ------------------------------------------------------------------------------------------ workers


@dataclass
class ChapterResult:
    split: str
    speaker_id: int
    chapter: int
    ok: list[tuple[str, str, float]]  # (utt_id, transcript, seconds)
    failed: list[tuple[str, str]]  # (utt_id, reason)


def _render_one(task: ChapterTask, utt: UttSpec, tts) -> float:
    """sox + noise + FLAC (+ phone timings) for one utterance; returns its duration. Raises on failure."""
    if tts.wav is None:
        raise RuntimeError(tts.error or "no audio")
    p = task.speaker.perturbation
    speech = sox_perturb(tts.wav, p)
    secs = len(speech) / SAMPLE_RATE
    wps = len(utt.words) / max(secs, 1e-3)
    if not 0.7 <= wps <= 7.0:  # the engine skipped or garbled the text
        raise RuntimeError(f"implausible duration {secs:.2f} s for {len(utt.words)} words")
    samples = render(speech, p, utt.snr_db, utt.lead_pad, utt.tail_pad, np.random.default_rng(utt.noise_seed))
    write_flac(Path(task.chapter_dir) / f"{utt.utt_id}.flac", samples)
    if task.timings_dir and tts.segments:
        scale = p.time_scale
        lines = [f"{s * scale + utt.lead_pad:.3f} {e * scale + utt.lead_pad:.3f} {ph}\n" for s, e, ph in tts.segments]
        write_text(Path(task.timings_dir) / f"{utt.utt_id}.txt", "".join(lines))
    return len(samples) / SAMPLE_RATE


def synth_chapter(task: ChapterTask) -> ChapterResult:
    """Worker: synthesise one chapter (festival: one batch process), retry failures once one by one."""
    voice = get_voice(task.speaker.voice)
    Path(task.chapter_dir).mkdir(parents=True, exist_ok=True)
    ok, failed = [], []
    with tempfile.TemporaryDirectory(prefix="synth_") as tmp:
        tts_all = synthesize_utterances(voice, [(u.utt_id, u.tts) for u in task.utts], Path(tmp) / "batch")
        for utt in task.utts:
            reason = ""
            for attempt in range(2):
                try:
                    tts = tts_all[utt.utt_id] if attempt == 0 else \
                        synthesize_utterances(voice, [(utt.utt_id, utt.tts)], Path(tmp) / f"retry_{utt.utt_id}")[utt.utt_id]
                    ok.append((utt.utt_id, utt.transcript, _render_one(task, utt, tts)))
                    reason = ""
                    break
                except Exception as e:  # noqa: BLE001 - one utterance never stops the chapter
                    reason = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ")[:300]
            if reason:
                failed.append((utt.utt_id, reason))
    return ChapterResult(task.split, task.speaker.speaker_id, task.chapter, ok, failed)


def _write_chapter(task: ChapterTask, res: ChapterResult, state_dir: Path) -> None:
    trans = Path(task.chapter_dir) / f"{task.speaker.speaker_id}-{task.chapter}.trans.txt"
    write_text(trans, "".join(f"{u} {t}\n" for u, t, _ in sorted(res.ok)))
    write_json(state_dir / task.split / f"{task.chapter}.json", dataclasses.asdict(res))


def _load_state(state_dir: Path, task: ChapterTask) -> ChapterResult | None:
    path = state_dir / task.split / f"{task.chapter}.json"
    if not path.is_file():
        return None
    d = read_json(path)
    res = ChapterResult(d["split"], d["speaker_id"], d["chapter"], [tuple(x) for x in d["ok"]],
                        [tuple(x) for x in d["failed"]])
    trans = Path(task.chapter_dir) / f"{task.speaker.speaker_id}-{task.chapter}.trans.txt"
    if not trans.is_file() or not all((Path(task.chapter_dir) / f"{u}.flac").is_file() for u, _, _ in res.ok):
        return None
    return res


# --------------------------------------------------------------------------------------- orchestration


def speakers_txt(speakers: list[SpeakerSpec], minutes: dict[int, float]) -> str:
    lines = [
        "; Synthetic speakers of the asr-kd mini corpus (TTS voice + sox perturbation + noise)",
        "; Fields: speaker ID | sex | subset | minutes of audio | name (base voice and perturbation)",
        ";ID  |SEX| SUBSET           |MINUTES| NAME",
    ]
    for s in sorted(speakers, key=lambda s: s.speaker_id):
        if s.speaker_id in minutes:
            lines.append(f"{s.speaker_id:<5}| {s.sex} | {s.split:<17}| {minutes[s.speaker_id]:5.2f} | {s.name}")
    return "\n".join(lines) + "\n"


def _owned_paths(out_dir: Path) -> list[Path]:
    lib = out_dir / "LibriSpeech"
    return [lib / s for s in SPLITS] + [lib / "SPEAKERS.TXT", out_dir / "lm_text.txt", out_dir / "phone_timings",
            out_dir / STATE_DIR, out_dir / "speakers.json", out_dir / "synth_failures.tsv", out_dir / MANIFEST,
            out_dir / CONFIG_FILE]


def _remove_owned(out_dir: Path) -> None:
    for p in _owned_paths(out_dir):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


class ConfigMismatch(RuntimeError):
    pass


def corpus_is_complete(out_dir: Path, identity: dict) -> bool:
    mpath = out_dir / MANIFEST
    if not mpath.is_file():
        return False
    m = read_json(mpath)
    if m.get("config") != identity:
        return False
    n = sum(1 for _ in (out_dir / "LibriSpeech").glob("*/*/*/*.flac"))
    return n == sum(v["utterances"] for v in m["splits"].values())


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


def synthesize_corpus(cfg: SynthConfig, out_dir: str | Path, jobs: int = 2, force: bool = False,
                      progress: bool = True) -> dict:
    """Build (or resume, or skip) the corpus under ``out_dir``; returns the manifest dict."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    cfg.validate()
    identity = cfg.identity()
    if force:
        _remove_owned(out_dir)
    elif corpus_is_complete(out_dir, identity):
        logger.info("complete corpus with the same config in %s: skipping (use --force to regenerate)", out_dir)
        return read_json(out_dir / MANIFEST)
    else:
        for f in (out_dir / MANIFEST, out_dir / CONFIG_FILE):
            if f.is_file() and read_json(f).get("config", read_json(f)) != identity:
                raise ConfigMismatch(f"{out_dir} holds a corpus made with a different config ({f.name}); "
                                     "use --force to replace it or choose another --out-dir")
    wanted = cfg.voices + cfg.test_only_voices + (cfg.espeak_voices if cfg.espeak_fraction > 0 else ())
    needed, absent = missing_tools(wanted), unavailable_voices(wanted)
    if needed or absent:
        raise RuntimeError(f"missing programs: {', '.join(needed) or '-'}; voices not installed: "
                           f"{', '.join(absent) or '-'} (Debian: apt-get install sox flite festival festlex-cmu "
                           "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng)")
    t0 = time.time()
    sentences, rejects = harvest_pool(cfg.min_words, cfg.max_words)
    logger.info("%d usable sentences of %d-%d words", len(sentences), cfg.min_words, cfg.max_words)
    plan = plan_corpus(cfg, out_dir, list(sentences))
    write_json(out_dir / CONFIG_FILE, identity)
    state_dir = out_dir / STATE_DIR

    results: list[ChapterResult] = []
    todo: list[ChapterTask] = []
    for task in plan.chapters:
        prev = _load_state(state_dir, task)
        (results.append(prev) if prev is not None else todo.append(task))
    if results:
        logger.info("resuming: %d of %d chapters already done", len(results), len(plan.chapters))
    n_utts = sum(len(t.utts) for t in todo)
    logger.info("synthesising %d utterances in %d chapters with %d job(s)", n_utts, len(todo), jobs)
    by_key = {(t.split, t.chapter): t for t in todo}
    todo.sort(key=lambda t: -len(t.utts))  # long chapters first: better load balance
    with tqdm(total=n_utts, desc="synth-corpus", unit="utt", disable=not progress) as bar:
        pool = multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 and len(todo) > 1 else None
        try:
            outs = pool.imap_unordered(synth_chapter, todo) if pool is not None else map(synth_chapter, todo)
            for res in outs:
                _write_chapter(by_key[(res.split, res.chapter)], res, state_dir)
                results.append(res)
                bar.update(len(res.ok) + len(res.failed))
        finally:
            if pool is not None:
                pool.terminate()  # all results are in (or we are failing): stop the workers
                pool.join()

    return _finish(cfg, identity, out_dir, plan, results, dict(rejects), time.time() - t0)


def _finish(cfg: SynthConfig, identity: dict, out_dir: Path, plan: Plan, results: list[ChapterResult],
            rejects: dict, wall: float) -> dict:
    seconds_by_spk: dict[int, float] = {}
    failed_rows = []
    split_stats = {s: {"utterances": 0, "seconds": 0.0, "speakers": 0, "failed": 0} for s in SPLITS}
    for res in sorted(results, key=lambda r: (r.split, r.chapter)):
        st = split_stats[res.split]
        st["utterances"] += len(res.ok)
        st["failed"] += len(res.failed)
        for _, transcript, secs in res.ok:
            st["seconds"] += secs
            seconds_by_spk[res.speaker_id] = seconds_by_spk.get(res.speaker_id, 0.0) + secs
        failed_rows += [f"{res.split}\t{u}\t{reason}\n" for u, reason in res.failed]
    spk_by_id = {s.speaker_id: s for s in plan.speakers}
    for s in SPLITS:
        split_stats[s]["speakers"] = sum(1 for k in seconds_by_spk if spk_by_id[k].split == s)
        split_stats[s]["hours"] = round(split_stats[s]["seconds"] / 3600, 4)
        split_stats[s]["seconds"] = round(split_stats[s]["seconds"], 2)
        split_stats[s]["voices"] = sorted({spk_by_id[k].voice for k in seconds_by_spk if spk_by_id[k].split == s})
    minutes = {k: v / 60 for k, v in seconds_by_spk.items()}
    write_text(out_dir / "LibriSpeech" / "SPEAKERS.TXT", speakers_txt(plan.speakers, minutes))
    lm_sents = [s.transcript for s in (plan.pools if cfg.lm_text == "pool" else plan.used)["train"]]
    write_text(out_dir / "lm_text.txt", "".join(f"{s}\n" for s in lm_sents))
    write_json(out_dir / "speakers.json", [
        {"speaker_id": s.speaker_id, "split": s.split, "voice": s.voice, "sex": s.sex,
         "perturbation": asdict(s.perturbation)} for s in plan.speakers])
    write_text(out_dir / "synth_failures.tsv", "split\tutt_id\treason\n" + "".join(failed_rows))
    manifest = {
        "config": identity,
        "splits": split_stats,
        "sentences": {"usable": sum(len(p) for p in plan.pools.values()),
                      **{f"{s}_pool": len(p) for s, p in plan.pools.items()},
                      "lm_text_lines": len(lm_sents), "rejected": rejects},
        "failed_utterances": len(failed_rows),
        "wall_seconds": round(wall, 1),
    }
    write_json(out_dir / MANIFEST, manifest)
    for s in SPLITS:
        st = split_stats[s]
        logger.info("%s: %d utterances, %.3f h, %d speakers, %d failed", s, st["utterances"], st["hours"],
                    st["speakers"], st["failed"])
    logger.info("corpus written to %s in %.1f s", out_dir, wall)
    return manifest


# ------------------------------------------------------------------------------------------------ CLI


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SynthConfig()
    parser.add_argument("--out-dir", default="data/corpus", help="output directory (LibriSpeech/ goes inside)")
    parser.add_argument("--seed", type=int, default=argparse.SUPPRESS, help=f"random seed (default {d.seed})")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny preset for tests: 2 train speakers, 1 dev, 1 test, a few short utterances "
                             "(flite voices only; explicit size options still override it)")
    parser.add_argument("--train-hours", type=float, default=argparse.SUPPRESS, help=f"train audio (default {d.train_hours})")
    parser.add_argument("--dev-minutes", type=float, default=argparse.SUPPRESS, help=f"dev audio (default {d.dev_minutes})")
    parser.add_argument("--test-minutes", type=float, default=argparse.SUPPRESS, help=f"test audio (default {d.test_minutes})")
    parser.add_argument("--num-train-speakers", type=int, default=argparse.SUPPRESS, help=f"(default {d.num_train_speakers})")
    parser.add_argument("--num-dev-speakers", type=int, default=argparse.SUPPRESS, help=f"(default {d.num_dev_speakers})")
    parser.add_argument("--num-test-speakers", type=int, default=argparse.SUPPRESS, help=f"(default {d.num_test_speakers})")
    parser.add_argument("--voices", type=_csv, default=argparse.SUPPRESS,
                        help=f"comma-separated base voices for train/dev (default {','.join(d.voices)})")
    parser.add_argument("--test-only-voices", type=_csv, default=argparse.SUPPRESS,
                        help=f"base voices held out for test (default {','.join(d.test_only_voices)})")
    parser.add_argument("--espeak-fraction", type=float, default=argparse.SUPPRESS,
                        help=f"share of speakers on espeak-ng voices (default {d.espeak_fraction})")
    parser.add_argument("--no-phone-timings", action="store_true", help="do not write phone_timings/")
    parser.add_argument("--lm-text", choices=["pool", "used"], default=argparse.SUPPRESS,
                        help="lm_text.txt: all train-side sentences (pool, default) or only those in train utterances")
    parser.add_argument("--list-voices", action="store_true", help="print the known voices and exit")
    parser.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete corpus exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    base = SynthConfig.tiny() if args.tiny else SynthConfig()
    # Options left out keep the preset's value (argparse.SUPPRESS: the attribute is then absent).
    names = ("seed", "train_hours", "dev_minutes", "test_minutes", "num_train_speakers", "num_dev_speakers",
             "num_test_speakers", "voices", "test_only_voices", "espeak_fraction", "lm_text")
    over = {k: getattr(args, k, None) for k in names}
    if args.no_phone_timings:
        over["phone_timings"] = False
    return dataclasses.replace(base, **{k: v for k, v in over.items() if v is not None})


def main(args: argparse.Namespace) -> int:
    if args.list_voices:
        from data_prep.corpus.synth.voices import VOICES

        for v in VOICES.values():
            print(f"{v.key}\t{v.sex}\t{'timings' if v.has_timings else 'no timings'}")
        return 0
    try:
        cfg = config_from_args(args)
        synthesize_corpus(cfg, args.out_dir, jobs=args.jobs, force=args.force, progress=not args.no_progress)
    except (ConfigMismatch, ValueError, RuntimeError) as e:
        logger.error("%s", e)
        return 2
    return 0
