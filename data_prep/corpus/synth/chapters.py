"""Synthesising one planned chapter (in a worker process) and its crash-safe state file.

A chapter is done when its state file ``<out>/.synth_state/<split>/<chapter>.json`` exists and its
``trans.txt`` and every FLAC it lists are there: a crashed run resumes chapter by chapter.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_base.io import read_json, write_json, write_text
from data_prep.corpus.synth.plan import ChapterTask, UttSpec
from data_prep.corpus.synth.voices import SAMPLE_RATE, get_voice, render, sox_perturb, synthesize_utterances, write_flac


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
        stretch = task.speaker.perturbation.engine_stretch
        tts_all = synthesize_utterances(voice, [(u.utt_id, u.tts) for u in task.utts], Path(tmp) / "batch",
                                        stretch=stretch)
        for utt in task.utts:
            reason = ""
            for attempt in range(2):
                try:
                    tts = tts_all[utt.utt_id] if attempt == 0 else \
                        synthesize_utterances(voice, [(utt.utt_id, utt.tts)], Path(tmp) / f"retry_{utt.utt_id}",
                                              stretch=stretch)[utt.utt_id]
                    ok.append((utt.utt_id, utt.transcript, _render_one(task, utt, tts)))
                    reason = ""
                    break
                except Exception as e:  # noqa: BLE001 - one utterance never stops the chapter
                    reason = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ")[:300]
            if reason:
                failed.append((utt.utt_id, reason))
    return ChapterResult(task.split, task.speaker.speaker_id, task.chapter, ok, failed)


def write_chapter(task: ChapterTask, res: ChapterResult, state_dir: Path) -> None:
    trans = Path(task.chapter_dir) / f"{task.speaker.speaker_id}-{task.chapter}.trans.txt"
    write_text(trans, "".join(f"{u} {t}\n" for u, t, _ in sorted(res.ok)))
    write_json(state_dir / task.split / f"{task.chapter}.json", dataclasses.asdict(res))


def load_state(state_dir: Path, task: ChapterTask) -> ChapterResult | None:
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
