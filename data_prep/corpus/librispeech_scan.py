"""Scan a LibriSpeech-layout split (no audio opened): audio files, ``trans.txt`` lines, speakers.

Layout (real LibriSpeech or the synthesised mini corpus)::

    <split>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac
    <split>/<reader>/<chapter>/<reader>-<chapter>.trans.txt     # "UTTID WORD WORD ..." per line
    <split>/../SPEAKERS.TXT                                     # optional: "ID | SEX | SUBSET | MINUTES | NAME"

Malformed transcript lines, transcripts without audio (and the reverse), duplicate utterance ids, misplaced
files and bad paths become :class:`~data_prep.corpus.skipped.Skip` rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.corpus.data_dir import c_sorted
from data_prep.corpus.skipped import Skip, clean


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
            scan.skipped.append(Skip(clean(utt), where, "malformed-transcript-line",
                                     f"malformed trans.txt line (utterance id must start with {prefix}-): "
                                     f"{clean(line)[:80]!r}"))
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
                        scan.skipped.append(Skip(clean(Path(shown).stem), shown, "bad-path",
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
