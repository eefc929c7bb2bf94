"""``data-prep make-data-dir``: one LibriSpeech-layout split -> a Kaldi-style data dir.

Input layout (real LibriSpeech or the synthesised mini corpus)::

    <split>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac
    <split>/<reader>/<chapter>/<reader>-<chapter>.trans.txt     # "UTTID WORD WORD ..." per line
    <split>/../SPEAKERS.TXT                                     # optional: "ID | SEX | SUBSET | MINUTES | NAME"

Output (``--out``, every table sorted in ``LC_ALL=C`` byte order, written atomically): ``wav.scp``
(absolute paths), ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur``, ``utt2num_samples``, ``spk2gender``
(when SPEAKERS.TXT is there), ``skipped.tsv`` (``utt_id<TAB>path<TAB>reason``, header line) and
``make_data_dir.json`` (configuration + counts; written last, so its presence marks a complete dir).

Speakers. Like Kaldi's ``egs/librispeech/s5/local/data_prep.sh`` the "speaker" of an utterance is the
reader *and chapter*, ``<reader>-<chapter>``: each chapter is its own speaker, so per-speaker CMVN is
computed per chapter (recording session), and every utterance id (``<reader>-<chapter>-<n>``) starts
with its speaker id as Kaldi's sorting rules require. ``spk2gender`` follows the same per-chapter keys.

Bad input is listed in ``skipped.tsv``, never fatal and never silent: unreadable/corrupt/truncated
audio, empty audio (no samples or shorter than one 25 ms frame), a sample rate other than
``--sample-rate`` (**rejected**, not resampled: reason ``sample rate X != 16000``), multi-channel audio,
audio without a transcript line, a transcript line without audio, empty transcripts, duplicate
utterance ids, malformed ``trans.txt`` lines and files placed in the wrong speaker/chapter directory.
A summary (kept N, skipped M by reason) is logged and stored in ``make_data_dir.json``.

Audio is checked in a process pool (``--jobs``): ``soundfile.info`` for the header, then a decode
check (``--decode-check full`` decodes every sample, the default; ``ends`` only the first and last
block; ``header`` trusts the header).

Resumable: when ``--out`` holds a complete data dir made with the same options and newer than every
file and directory of the split, the stage is skipped (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from asr_base.io import read_json, write_json, write_text
from data_prep.corpus.data_dir import DataDir, c_sorted, write_table

log = logging.getLogger(__name__)

DECODE_CHECKS = ("full", "ends", "header")
REPORT_FILE = "make_data_dir.json"
SKIPPED_FILE = "skipped.tsv"
OUTPUT_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", "utt2num_samples", SKIPPED_FILE)
# libsndfile reports this frame count when a FLAC header does not declare its length (e.g. 0 samples).
_UNKNOWN_FRAMES = 2**62
_BLOCK = 1 << 20  # frames per read in the decode check (bounds memory on long files)
# Leading bytes of a well-formed file per extension. libsndfile probes other formats (even MPEG) on
# garbage, which can "succeed" on random bytes; checking the magic first gives a clear reason instead.
_MAGIC = {".flac": (b"fLaC", b"ID3"), ".wav": (b"RIFF", b"RF64")}


@dataclass
class MakeDataDirConfig:
    corpus_dir: str
    split: str
    out: str
    sample_rate: int = 16000
    min_duration: float = 0.025  # one 25 ms analysis frame; anything shorter has no fbank frame
    audio_ext: str = "flac"
    decode_check: str = "full"
    jobs: int = 2
    force: bool = False

    def validate(self) -> None:
        if self.decode_check not in DECODE_CHECKS:
            raise ValueError(f"--decode-check must be one of {DECODE_CHECKS}, got {self.decode_check!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"--sample-rate must be positive, got {self.sample_rate}")
        if self.min_duration < 0:
            raise ValueError(f"--min-duration must be >= 0, got {self.min_duration}")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {self.jobs}")

    def fingerprint(self) -> dict:
        """Options that change the output (not --jobs/--force)."""
        d = asdict(self)
        for k in ("jobs", "force", "out", "corpus_dir"):
            d.pop(k)
        return d


@dataclass
class Skip:
    utt_id: str
    path: str
    kind: str  # short category for the summary, e.g. "sample-rate"
    reason: str  # human-readable reason written to skipped.tsv


@dataclass
class AudioCheck:
    """Result of checking one audio file (returned from the worker processes)."""

    utt_id: str
    path: str
    num_samples: int = 0
    sample_rate: int = 0
    kind: str = ""  # empty when the file is good
    reason: str = ""


@dataclass
class SplitScan:
    """Everything found under a split directory before any audio is opened."""

    split_dir: Path
    audio: dict[str, list[str]] = field(default_factory=dict)  # utt -> audio paths (more than one: duplicate)
    speaker_of: dict[str, str] = field(default_factory=dict)  # utt -> "<reader>-<chapter>" of its directory
    trans: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # utt -> [(text, "file:line")]
    skipped: list[Skip] = field(default_factory=list)
    ignored_files: int = 0
    # "<reader>-<chapter>" -> why none of its transcript lines could be used (missing/unreadable trans.txt)
    chapter_trans_problem: dict[str, str] = field(default_factory=dict)
    newest_mtime: float = 0.0  # newest mtime of any file or directory of the split


# --------------------------------------------------------------------------------------------------
# Finding and scanning the split


def find_split_dir(corpus_dir: str | os.PathLike, split: str) -> Path:
    """The split directory: ``<corpus>/LibriSpeech/<split>``, ``<corpus>/<split>`` or ``<corpus>`` itself."""
    corpus = Path(corpus_dir)
    for cand in (corpus / "LibriSpeech" / split, corpus / split):
        if cand.is_dir():
            return cand.absolute()
    if corpus.is_dir() and corpus.name == split:
        return corpus.absolute()
    raise FileNotFoundError(
        f"no split {split!r} under {corpus}: looked for {corpus / 'LibriSpeech' / split}, {corpus / split} "
        f"and {corpus} itself (named {split!r})"
    )


def _clean(s: str) -> str:
    """Make a reason/path safe for one TSV field."""
    return " ".join(str(s).split())


def _subdirs(path: Path, scan: SplitScan) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    out = []
    for e in entries:
        if e.is_dir():
            out.append(e)
            scan.newest_mtime = max(scan.newest_mtime, e.stat().st_mtime)
        else:
            scan.ignored_files += 1
    return out


def _read_trans(path: Path, prefix: str, scan: SplitScan) -> None:
    """Parse one ``<reader>-<chapter>.trans.txt`` into ``scan.trans``; bad lines go to ``scan.skipped``."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        scan.skipped.append(Skip("-", str(path), "unreadable-transcript", f"cannot read transcript file: {e}"))
        scan.chapter_trans_problem[prefix] = f"{path.name} cannot be read"
        return
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        scan.skipped.append(Skip("-", str(path), "unreadable-transcript", f"transcript file is not UTF-8: {e}"))
        scan.chapter_trans_problem[prefix] = f"{path.name} is not UTF-8"
        return
    id_re = re.compile(re.escape(prefix) + r"-\S+\Z")
    for lineno, line in enumerate(content.splitlines(), 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        fields = line.split()
        utt = fields[0]
        if not id_re.match(utt):
            scan.skipped.append(Skip(_clean(utt), where, "malformed-transcript-line",
                                     f"malformed trans.txt line (utterance id must start with {prefix}-): "
                                     f"{_clean(line)[:80]!r}"))
            continue
        scan.trans.setdefault(utt, []).append((" ".join(fields[1:]), where))


def scan_split(split_dir: Path, audio_ext: str = "flac") -> SplitScan:
    """Walk ``<split>/<reader>/<chapter>/`` collecting audio files and transcript lines (no audio opened)."""
    scan = SplitScan(split_dir=split_dir)
    scan.newest_mtime = split_dir.stat().st_mtime
    suffix = "." + audio_ext.lstrip(".")
    for reader in _subdirs(split_dir, scan):
        for chapter in _subdirs(Path(reader.path), scan):
            prefix = f"{reader.name}-{chapter.name}"
            chapter_dir = Path(chapter.path)
            trans_files = []
            with os.scandir(chapter_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                if not e.is_file():
                    scan.ignored_files += 1
                    continue
                scan.newest_mtime = max(scan.newest_mtime, e.stat().st_mtime)
                if e.name.endswith(".trans.txt"):
                    trans_files.append(e)
                elif e.name.endswith(suffix):
                    utt = e.name[: -len(suffix)]
                    path = str(chapter_dir.absolute() / e.name)
                    try:
                        path.encode("utf-8")
                    except UnicodeEncodeError:
                        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                        scan.skipped.append(Skip(_clean(Path(shown).stem), shown, "bad-path",
                                                 "file name is not valid UTF-8"))
                        continue
                    scan.audio.setdefault(utt, []).append(path)
                    scan.speaker_of.setdefault(utt, prefix)
                else:
                    scan.ignored_files += 1
            if f"{prefix}.trans.txt" not in {t.name for t in trans_files}:
                scan.chapter_trans_problem[prefix] = f"no {prefix}.trans.txt in its chapter directory"
            for t in trans_files:
                if t.name != f"{prefix}.trans.txt":
                    scan.skipped.append(Skip("-", str(chapter_dir / t.name), "malformed-transcript-line",
                                             f"unexpected transcript file name (expected {prefix}.trans.txt); "
                                             "its lines were not read"))
                    continue
                _read_trans(chapter_dir / t.name, prefix, scan)
    return scan


def match_transcripts(scan: SplitScan, audio_ext: str = "flac") -> tuple[list[tuple[str, str, str, str]], list[Skip]]:
    """Pair audio with transcript lines. Returns ``[(utt, path, speaker, text)]`` and the skips."""
    skips: list[Skip] = []
    pairs = []
    for utt in c_sorted(set(scan.audio) | set(scan.trans)):
        paths = scan.audio.get(utt, [])
        lines = scan.trans.get(utt, [])
        path = paths[0] if paths else (lines[0][1] if lines else "-")
        if len(paths) > 1:
            skips.append(Skip(utt, path, "duplicate-utterance",
                              f"duplicate utterance id: {len(paths)} audio files ({', '.join(paths)})"))
            continue
        if len(lines) > 1:
            skips.append(Skip(utt, path, "duplicate-utterance",
                              f"duplicate utterance id: {len(lines)} transcript lines "
                              f"({', '.join(w for _, w in lines)})"))
            continue
        if not paths:
            skips.append(Skip(utt, lines[0][1], "transcript-without-audio",
                              f"transcript without audio (no {utt}.{audio_ext.lstrip('.')} next to its trans.txt)"))
            continue
        if not utt.startswith(scan.speaker_of[utt] + "-"):
            skips.append(Skip(utt, path, "misplaced-audio", "audio file name does not start with its directory's "
                              f"<reader>-<chapter>- ({scan.speaker_of[utt]}-)"))
            continue
        if not lines:
            why = scan.chapter_trans_problem.get(scan.speaker_of[utt], "no line for this utterance in any trans.txt")
            skips.append(Skip(utt, path, "missing-transcript", f"missing transcript ({why})"))
            continue
        if any(c.isspace() for c in path):
            skips.append(Skip(utt, path, "bad-path", "audio path contains whitespace (not representable in wav.scp)"))
            continue
        speaker = scan.speaker_of[utt]
        text, _ = lines[0]
        if not text:
            skips.append(Skip(utt, path, "empty-transcript", "empty transcript"))
            continue
        pairs.append((utt, path, speaker, text))
    return pairs, skips


# --------------------------------------------------------------------------------------------------
# Audio checks (run in worker processes)


def _decode_count(f, frames: int, mode: str) -> int:
    """Decode (part of) an open SoundFile; returns the number of samples decoded in ``full`` mode."""
    if mode == "full" or frames >= _UNKNOWN_FRAMES:
        n = 0
        while True:
            block = f.read(_BLOCK, dtype="int16")
            if len(block) == 0:
                return n
            n += len(block)
    # "ends": first and last block only
    f.read(min(frames, 4096), dtype="int16")
    if frames > 4096:
        f.seek(frames - 4096)
        got = len(f.read(4096, dtype="int16"))
        if got != 4096:
            raise ValueError(f"last block decoded {got} of 4096 samples")
    return frames


def check_audio(utt: str, path: str, sample_rate: int, min_samples: int, mode: str) -> AudioCheck:
    """Header + decode check of one file. Never raises: problems come back in ``kind``/``reason``."""
    import soundfile as sf

    res = AudioCheck(utt, path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        res.kind, res.reason = "unreadable-audio", f"cannot stat audio file: {e.strerror or e}"
        return res
    if size == 0:
        res.kind, res.reason = "empty-audio", "empty audio file (0 bytes)"
        return res
    magic = _MAGIC.get(os.path.splitext(path)[1].lower())
    if magic:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            res.kind, res.reason = "unreadable-audio", f"cannot read audio file: {e.strerror or e}"
            return res
        if not head.startswith(magic):
            res.kind, res.reason = "unreadable-audio", (
                f"unreadable audio: not a {os.path.splitext(path)[1][1:].upper()} file (starts with {head!r})")
            return res
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile raises its own error types for corrupt / unknown formats
        res.kind, res.reason = "unreadable-audio", f"unreadable audio: {_clean(e)}"
        return res
    res.sample_rate = int(info.samplerate)
    if info.channels != 1:
        res.kind, res.reason = "multi-channel", f"multi-channel audio ({info.channels} channels), expected mono"
        return res
    if info.samplerate != sample_rate:
        res.kind, res.reason = "sample-rate", f"sample rate {info.samplerate} != {sample_rate}"
        return res
    frames = int(info.frames)
    if frames == 0:
        res.kind, res.reason = "empty-audio", "empty audio (0 samples)"
        return res
    if mode != "header" or frames >= _UNKNOWN_FRAMES:
        decoded = 0
        try:
            with sf.SoundFile(path) as f:
                decoded = _decode_count(f, frames, mode)
        except Exception as e:
            if frames >= _UNKNOWN_FRAMES and decoded == 0:
                res.kind, res.reason = "empty-audio", (
                    f"empty audio (header declares no length, no samples decode: {_clean(e)})")
            else:
                res.kind, res.reason = "corrupt-audio", f"corrupt audio, decoding failed: {_clean(e)}"
            return res
        if frames >= _UNKNOWN_FRAMES:
            frames = decoded
        elif decoded != frames:
            res.kind, res.reason = "corrupt-audio", f"truncated audio: decoded {decoded} of {frames} samples"
            return res
        if frames == 0:
            res.kind, res.reason = "empty-audio", "empty audio (0 samples)"
            return res
    res.num_samples = frames
    if frames < min_samples:
        res.kind, res.reason = "too-short", (
            f"audio shorter than one frame ({frames} samples < {min_samples} = "
            f"{min_samples / sample_rate * 1000:g} ms)")
    return res


def _check_star(args) -> AudioCheck:
    return check_audio(*args)


def _init_worker() -> None:
    # Workers only decode audio: keep any numeric library single-threaded.
    os.environ["OMP_NUM_THREADS"] = "1"


def check_all_audio(items: list[tuple[str, str]], cfg: MakeDataDirConfig) -> list[AudioCheck]:
    """Check ``[(utt, path)]`` with a pool of ``cfg.jobs`` processes; results in input order."""
    min_samples = max(1, int(round(cfg.min_duration * cfg.sample_rate)))
    tasks = [(u, p, cfg.sample_rate, min_samples, cfg.decode_check) for u, p in items]
    bar = dict(total=len(tasks), desc=f"checking audio ({cfg.split})", unit="file", mininterval=1.0)
    if cfg.jobs <= 1 or len(tasks) < 64:
        return [_check_star(t) for t in tqdm(tasks, **bar)]
    # spawn: never fork a parent whose torch/OpenMP threads may already be running. An executor (not
    # multiprocessing.Pool) so a worker that dies raises BrokenProcessPool instead of hanging forever.
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    chunk = max(1, min(256, len(tasks) // (cfg.jobs * 8)))
    with ProcessPoolExecutor(cfg.jobs, mp_context=ctx, initializer=_init_worker) as pool:
        return list(tqdm(pool.map(_check_star, tasks, chunksize=chunk), **bar))


# --------------------------------------------------------------------------------------------------
# SPEAKERS.TXT


def read_speaker_genders(speakers_txt: Path) -> dict[str, str]:
    """{reader id: "m"|"f"} from LibriSpeech's ``SPEAKERS.TXT`` (``;`` comments, ``|``-separated)."""
    genders = {}
    for line in speakers_txt.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] and parts[1].lower() in ("m", "f"):
            genders[parts[0]] = parts[1].lower()
    return genders


# --------------------------------------------------------------------------------------------------
# The stage


def _is_complete(out: Path, cfg: MakeDataDirConfig, scan: SplitScan) -> bool:
    report = out / REPORT_FILE
    if not report.is_file() or any(not (out / f).is_file() for f in OUTPUT_FILES):
        return False
    try:
        meta = read_json(report)
    except (OSError, ValueError):
        return False
    if meta.get("config") != cfg.fingerprint() or meta.get("split_dir") != str(scan.split_dir):
        return False
    return report.stat().st_mtime >= scan.newest_mtime


def write_skipped(path: Path, skips: list[Skip]) -> None:
    rows = sorted(skips, key=lambda s: (s.utt_id.encode("utf-8"), s.path))
    write_text(path, "utt_id\tpath\treason\n" + "".join(
        f"{_clean(s.utt_id)}\t{_clean(s.path)}\t{_clean(s.reason)}\n" for s in rows))


def read_skipped(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Rows ``(utt_id, path, reason)`` of a ``skipped.tsv`` (header dropped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "utt_id\tpath\treason":
        raise ValueError(f"{path}: missing header 'utt_id<TAB>path<TAB>reason'")
    return [tuple(line.split("\t", 2)) for line in lines[1:] if line]


def make_data_dir(cfg: MakeDataDirConfig) -> dict:
    """Run the stage; returns the summary dict also stored in ``<out>/make_data_dir.json``.

    Raises ``FileNotFoundError`` when the split does not exist and ``RuntimeError`` when not a
    single utterance survives (skipped.tsv is written first, so the reasons are on disk).
    """
    cfg.validate()
    t0 = time.time()
    out = Path(cfg.out)
    split_dir = find_split_dir(cfg.corpus_dir, cfg.split)
    scan = scan_split(split_dir, cfg.audio_ext)
    speakers_txt = split_dir.parent / "SPEAKERS.TXT"
    if speakers_txt.is_file():
        scan.newest_mtime = max(scan.newest_mtime, speakers_txt.stat().st_mtime)
    if not cfg.force and _is_complete(out, cfg, scan):
        log.info("%s is complete and newer than %s; skipping (use --force to redo)", out, split_dir)
        return read_json(out / REPORT_FILE)

    log.info("%s: %d audio files, %d transcript lines", split_dir, len(scan.audio), len(scan.trans))
    if scan.ignored_files:
        log.warning("%s: ignored %d entries that are neither *.%s nor *.trans.txt (or not in <reader>/<chapter>/)",
                    split_dir, scan.ignored_files, cfg.audio_ext)
    pairs, skips = match_transcripts(scan, cfg.audio_ext)
    skips = scan.skipped + skips
    checks = check_all_audio([(u, p) for u, p, _, _ in pairs], cfg)

    d = DataDir()
    for (utt, path, spk, text), chk in zip(pairs, checks):
        if chk.kind:
            skips.append(Skip(utt, path, chk.kind, chk.reason))
            continue
        d.wav[utt] = path
        d.text[utt] = text
        d.utt2spk[utt] = spk
        d.utt2num_samples[utt] = chk.num_samples
        d.utt2dur[utt] = chk.num_samples / cfg.sample_rate

    (out / REPORT_FILE).unlink(missing_ok=True)  # the dir is incomplete until the report is rewritten
    out.mkdir(parents=True, exist_ok=True)
    write_skipped(out / SKIPPED_FILE, skips)
    by_kind = dict(sorted(Counter(s.kind for s in skips).items()))
    if not d.wav:
        raise RuntimeError(f"{split_dir}: no usable utterance ({len(skips)} skipped, see {out / SKIPPED_FILE}: "
                           f"{by_kind})")
    d.write(out)
    genders = read_speaker_genders(speakers_txt) if speakers_txt.is_file() else {}
    spk2gender = {spk: genders[spk.split("-", 1)[0]] for spk in d.spk2utt if spk.split("-", 1)[0] in genders}
    if spk2gender and len(spk2gender) == len(d.spk2utt):
        write_table(out / "spk2gender", spk2gender)
    else:
        if genders:
            log.warning("SPEAKERS.TXT has no gender for %d of %d readers; not writing spk2gender",
                        len(d.spk2utt) - len(spk2gender), len(d.spk2utt))
        (out / "spk2gender").unlink(missing_ok=True)

    hours = sum(d.utt2dur.values()) / 3600
    summary = {
        "split_dir": str(split_dir),
        "config": cfg.fingerprint(),
        "kept": len(d.wav),
        "speakers": len(d.spk2utt),
        "hours": round(hours, 4),
        "skipped": len(skips),
        "skipped_by_reason": by_kind,
        "seconds": round(time.time() - t0, 2),
    }
    write_json(out / REPORT_FILE, summary)
    reasons = ", ".join(f"{k}: {v}" for k, v in by_kind.items())
    log.info("%s -> %s: kept %d utterances (%d speakers, %.2f h), skipped %d%s in %.1f s", cfg.split, out,
             summary["kept"], summary["speakers"], hours, len(skips), f" ({reasons})" if reasons else "",
             summary["seconds"])
    if skips:
        log.warning("%d utterances skipped; reasons in %s", len(skips), out / SKIPPED_FILE)
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus-dir", required=True,
                   help="directory containing LibriSpeech/<split>, or <split>, or the split directory itself")
    p.add_argument("--split", required=True, help="split name, e.g. train-clean-100, dev-clean, train, dev")
    p.add_argument("--out", required=True, help="output data dir, e.g. data/train")
    p.add_argument("--sample-rate", type=int, default=16000, help="expected sample rate; other rates are rejected")
    p.add_argument("--min-duration", type=float, default=0.025,
                   help="reject audio shorter than this many seconds (0.025 = one 25 ms fbank frame)")
    p.add_argument("--audio-ext", default="flac", help="audio file extension")
    p.add_argument("--decode-check", choices=DECODE_CHECKS, default="full",
                   help="full: decode every sample; ends: first/last block; header: trust soundfile.info")
    p.add_argument("--jobs", type=int, default=2, help="processes checking audio")
    p.add_argument("--force", action="store_true", help="redo even if the output is complete and up to date")


def main(args: argparse.Namespace) -> int:
    cfg = MakeDataDirConfig(corpus_dir=args.corpus_dir, split=args.split, out=args.out,
                            sample_rate=args.sample_rate, min_duration=args.min_duration, audio_ext=args.audio_ext,
                            decode_check=args.decode_check, jobs=args.jobs, force=args.force)
    try:
        make_data_dir(cfg)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0
