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
Resumable: a chapter whose state file exists is not redone (crash-safe). Up to date
(``<out-dir>/.stamp.json``, :class:`asr_base.stamp.Step`): a complete corpus made with the same options (and
text sources) is skipped; a changed option replaces the corpus and the log says which (``--force``
regenerates it anyway).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json, write_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from data_prep.corpus.synth.chapters import ChapterResult, load_state, synth_chapter, write_chapter
from data_prep.corpus.synth.plan import ChapterTask, Plan, SpeakerSpec, harvest_pool, plan_corpus
from data_prep.corpus.synth.synth_config import SPLITS, SynthConfig
from data_prep.corpus.synth.voices import missing_tools, unavailable_voices

logger = logging.getLogger(__name__)

MANIFEST = "synth_manifest.json"
CONFIG_FILE = "synth_config.json"
STATE_DIR = ".synth_state"


@dataclass
class SynthRun:
    """How to run ``synth-corpus`` (the corpus content is :class:`SynthConfig`)."""

    out_dir: str = option("data/corpus", help="output directory (LibriSpeech/ goes inside)")
    tiny: bool = option(False, help="tiny preset for tests: 2 train speakers, 1 dev, 1 test, a few short "
                                    "utterances (flite voices only; explicit corpus options still override it)")
    list_voices: bool = option(False, help="print the known voices and exit")
    jobs: int = option(2, help="parallel worker processes")
    force: bool = option(False, help="regenerate even if a complete corpus exists")
    progress: bool = option(True, help="progress bar (--no-progress: none)")


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
            out_dir / CONFIG_FILE, out_dir / STAMP_NAME]


def _remove_owned(out_dir: Path) -> None:
    for p in _owned_paths(out_dir):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def corpus_is_intact(out_dir: Path) -> bool:
    """The manifest is there (written last) and so is every FLAC it counts."""
    mpath = out_dir / MANIFEST
    if not mpath.is_file():
        return False
    m = read_json(mpath)
    n = sum(1 for _ in (out_dir / "LibriSpeech").glob("*/*/*/*.flac"))
    return n == sum(v["utterances"] for v in m["splits"].values())


def synthesize_corpus(cfg: SynthConfig, out_dir: str | Path, jobs: int = 2, force: bool = False,
                      progress: bool = True) -> dict:
    """Build (or resume, or skip) the corpus under ``out_dir``; returns the manifest dict."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    cfg.validate()
    identity = cfg.identity()
    step = Step(out_dir / STAMP_NAME, f"synth-corpus {out_dir}", config=identity)
    if corpus_is_intact(out_dir) and step.up_to_date(force):
        return read_json(out_dir / MANIFEST)
    if force:
        _remove_owned(out_dir)
    elif (out_dir / CONFIG_FILE).is_file() and read_json(out_dir / CONFIG_FILE) != identity:
        logger.info("%s holds a corpus made with other options; replacing it", out_dir)
        _remove_owned(out_dir)
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
        prev = load_state(state_dir, task)
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
                write_chapter(by_key[(res.split, res.chapter)], res, state_dir)
                results.append(res)
                bar.update(len(res.ok) + len(res.failed))
        finally:
            if pool is not None:
                pool.terminate()  # all results are in (or we are failing): stop the workers
                pool.join()

    manifest = _finish(cfg, identity, out_dir, plan, results, dict(rejects), time.time() - t0)
    step.done(utterances=sum(s["utterances"] for s in manifest["splits"].values()))
    return manifest


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SynthRun)
    add_options(parser, SynthConfig, title="corpus options (default: the full mini corpus; --tiny: the preset)")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    """The corpus options: the preset (``--tiny``) or the defaults, overridden by every option given."""
    return from_args(SynthConfig, args, base=SynthConfig.tiny() if getattr(args, "tiny", False) else SynthConfig())


def main(args: argparse.Namespace) -> int:
    run = from_args(SynthRun, args)
    if run.list_voices:
        from data_prep.corpus.synth.voices import VOICES

        for v in VOICES.values():
            print(f"{v.key}\t{v.sex}\t{'timings' if v.has_timings else 'no timings'}")
        return 0
    try:
        synthesize_corpus(config_from_args(args), run.out_dir, jobs=run.jobs, force=run.force, progress=run.progress)
    except (ValueError, RuntimeError) as e:
        logger.error("%s", e)
        return 2
    return 0
