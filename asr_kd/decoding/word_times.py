"""Word times (CTM) from the decoder's best path: per-frame pdfs -> phone segments -> words.

The best path of the pdf+1 HCLG gives one pdf per frame (:func:`asr_kd.decoding.decoder.best_path_alignment`)
and the frame at which each word label was emitted. The transition model (``final.mdl``: tuples of phone,
HMM state, pdfs) maps every pdf to its phone and HMM state, so the frames split into phone segments (a new
segment where the phone changes or the HMM state goes back); silence segments are the optional-silence
phone's. With the lexicon, the words' pronunciations are matched to the non-silence segments in order (what
Kaldi's ``lattice-align-words-lexicon`` does): a word spans exactly its phones. Without a lexicon, or where
the phones do not match it, a word spans from its label's frame to the next word's with silence trimmed --
approximate, because determinization may emit a word label late in the word.

All per-frame work is numpy; the Python loops run over words and phone segments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class PdfInfo:
    """What every pdf is: its phone, HMM state, and whether it is silence."""

    phone: np.ndarray  # int32 (num_pdfs,) phone id (-1 unknown)
    state: np.ndarray  # int32 (num_pdfs,) HMM state
    silence: np.ndarray  # bool (num_pdfs,) only used by silence phones
    phone_names: dict[int, str]

    @classmethod
    def empty(cls, num_pdfs: int) -> "PdfInfo":
        return cls(np.full(num_pdfs, -1, np.int32), np.zeros(num_pdfs, np.int32), np.zeros(num_pdfs, bool), {})

    @classmethod
    def load(cls, final_mdl: str | os.PathLike, phones_txt: str | os.PathLike, silence: list[str],
             num_pdfs: int) -> "PdfInfo":
        from data_prep.align.hmm import read_final_mdl

        names = {}
        for line in Path(phones_txt).read_text(encoding="utf-8").splitlines():
            f = line.split()
            if len(f) >= 2:
                names[int(f[1])] = f[0]
        ids = {v: k for k, v in names.items()}
        sil_ids = [ids[s] for s in silence if s in ids]
        tup = read_final_mdl(final_mdl).tuples  # (phone, hmm state, forward pdf, self-loop pdf)
        info = cls.empty(num_pdfs)
        info.phone_names = names
        is_sil = np.isin(tup[:, 0], sil_ids)
        used_sil = np.zeros(num_pdfs, bool)
        used_other = np.zeros(num_pdfs, bool)
        for col in (2, 3):
            info.phone[tup[:, col]] = tup[:, 0]
            info.state[tup[:, col]] = tup[:, 1]
            used_sil[tup[is_sil, col]] = True
            used_other[tup[~is_sil, col]] = True
        info.silence = used_sil & ~used_other
        return info


def phone_segments(pdfs: np.ndarray, info: PdfInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, phone ids)`` of the phone segments of a frame-level pdf sequence."""
    pdfs = np.asarray(pdfs, dtype=np.int64)
    if pdfs.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
    ph, st, sil = info.phone[pdfs], info.state[pdfs], info.silence[pdfs]
    new = np.ones(len(pdfs), bool)
    new[1:] = (ph[1:] != ph[:-1]) | ((st[1:] < st[:-1]) & ~sil[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(pdfs))
    return starts, ends, ph[starts]


def read_lexicon(path: str | os.PathLike) -> dict[str, list[tuple[str, ...]]]:
    lex: dict[str, list[tuple[str, ...]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        f = line.split()
        if f:
            lex.setdefault(f[0], []).append(tuple(f[1:]))
    return lex


def _by_lexicon(words: list[str], seg_phones: list[str], lexicon: dict) -> list[tuple[int, int]] | None:
    """Index ranges of each word's phone segments in ``seg_phones`` (non-silence), or None if they do not match."""
    out, i = [], 0
    for w in words:
        for pron in sorted(lexicon.get(w, []), key=len, reverse=True):
            if tuple(seg_phones[i:i + len(pron)]) == pron and pron:
                out.append((i, i + len(pron)))
                i += len(pron)
                break
        else:
            return None
    return out if i == len(seg_phones) else None


def word_times(words: list[str], word_frames: list[int], pdfs: np.ndarray | None, num_frames: int, info: PdfInfo,
               lexicon: dict | None = None) -> list[tuple[int, int]]:
    """``(first frame, end frame)`` of every word (see module doc)."""
    if not words:
        return []
    if pdfs is not None and len(pdfs) == num_frames and lexicon:
        starts, ends, phones = phone_segments(pdfs, info)
        keep = ~info.silence[np.asarray(pdfs, np.int64)[starts]]
        names = [info.phone_names.get(int(p), "") for p in phones[keep]]
        spans = _by_lexicon(words, names, lexicon)
        if spans is not None:
            s, e = starts[keep], ends[keep]
            return [(int(s[a]), int(e[b - 1])) for a, b in spans]
    f = np.asarray(word_frames, dtype=np.int64)
    first = f.copy()
    first[0] = 0
    last = np.append(f[1:], num_frames)
    if pdfs is None or len(pdfs) != num_frames:
        return list(zip(first.tolist(), last.tolist()))
    speech = ~info.silence[np.asarray(pdfs, np.int64)]
    pos = np.flatnonzero(speech)
    if pos.size == 0:  # nothing but silence on the best path: the raw spans
        return list(zip(first.tolist(), last.tolist()))
    before = np.concatenate([[0], np.cumsum(speech)])  # speech frames before frame t
    k0, k1 = before[first], before[last] - 1
    has = (k0 < len(pos)) & (k1 >= k0)
    a = np.where(has, pos[np.minimum(k0, len(pos) - 1)], first)
    b = np.where(has, pos[np.clip(k1, 0, len(pos) - 1)] + 1, last)
    return list(zip(a.tolist(), b.tolist()))
