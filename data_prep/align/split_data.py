"""One split as the aligner sees it: feature-store rows, transcripts as word ids, per-frame phone contexts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from data_prep.align.front_end import FrontEnd
from data_prep.align.hmm import HmmModel, frame_contexts

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    """Utterances of one split: store rows, word ids (None when there is no transcript), the store's frame
    shift in seconds."""

    name: str
    store_dir: str
    utt_ids: list[str]
    starts: np.ndarray
    lengths: np.ndarray
    words: list[list[int] | None]
    word_strs: list[list[str] | None]
    frame_shift: float
    excluded: dict[int, str] = field(default_factory=dict)  # row -> why its transcript is not used (OOV rate)
    oov: dict = field(default_factory=dict)  # the split's OOV summary (data_prep.align.report.oov_summary)
    speakers: list[str] = field(default_factory=list)  # per utterance (the store's index)

    def failure_reasons(self, failed: dict[int, str]) -> dict[int, str]:
        """A pass's failures with the reason an utterance was left out (instead of "no transcript")."""
        return {**failed, **self.excluded}

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


def load_split(name: str, store_dir: str | os.PathLike, text: dict[str, str], lang,
               max_oov_rate: float = 1.0) -> SplitData:
    """The utterances of feature store ``store_dir`` with their transcripts (OOVs mapped to the lang's OOV word).

    An utterance whose fraction of out-of-vocabulary words is above ``max_oov_rate`` gets no transcript (it
    would be aligned to mostly spoken noise): it is left out of training and alignment, and listed with the
    reason in ``excluded``. OOV counts of the whole split are in ``oov``."""
    from data_prep.align.report import oov_summary
    from data_prep.features.store import FeatureStore
    from data_prep.lang.lexicon import map_oov

    store = FeatureStore.open(store_dir)
    words, strs, excluded = [], [], {}
    per_utt = []  # (tokens, oov tokens, excluded) of every utterance with a transcript
    for r, u in enumerate(store.utt_ids):
        t = text.get(u)
        if t is None:
            words.append(None)
            strs.append(None)
            continue
        raw = t.split()
        ws = map_oov(raw, lang.lexicon, lang.oov)
        n_oov = sum(1 for w, m in zip(raw, ws) if m == lang.oov and w != lang.oov)
        rate = n_oov / max(len(raw), 1)
        per_utt.append((len(raw), n_oov, rate > max_oov_rate))
        if rate > max_oov_rate:
            unknown = [w for w, m in zip(raw, ws) if m == lang.oov and w != lang.oov]
            excluded[r] = (f"OOV rate {rate:.2f} > --max-oov-rate {max_oov_rate:g}: {n_oov} of {len(raw)} words "
                           f"have no pronunciation ({' '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''})")
            words.append(None)
            strs.append(None)
            continue
        words.append([lang.words[w] for w in ws])
        strs.append(ws)
    oov = oov_summary(per_utt, max_oov_rate)
    if excluded:
        log.warning("%s: %d of %d utterances left out, more than %g of their words are out of vocabulary "
                    "(e.g. %s: %s)", name, len(excluded), len(store.utt_ids), max_oov_rate,
                    store.utt_ids[min(excluded)], excluded[min(excluded)])
    return SplitData(name, str(store_dir), list(store.utt_ids), store.starts.copy(), store.lengths.copy(), words, strs,
                     store.frame_shift, excluded, oov, list(store.speakers))


def read_frames(feats: np.ndarray, starts, lengths, front: FrontEnd | None = None, speakers=None) -> np.ndarray:
    """The frames of utterances ``starts``/``lengths`` of a store array through ``front`` (default: as they are),
    float32; ``speakers`` (per utterance) for a front end with speaker transforms."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    if np.array_equal(starts[1:], starts[:-1] + lengths[:-1]):  # consecutive store rows: one slice
        x = np.asarray(feats[int(starts[0]):int(starts[-1] + lengths[-1])], dtype=np.float32)
    else:
        x = np.concatenate([np.asarray(feats[s:s + n], dtype=np.float32) for s, n in zip(starts, lengths)])
    return x if front is None else front.apply(x, lengths, speakers)


def split_speakers(split: "SplitData", rows) -> list[str] | None:
    """The speakers of ``rows`` (None when the store has none)."""
    return [split.speakers[int(r)] for r in rows] if split.speakers else None


def utterance_ranges(split: "SplitData", chunk_frames: int = 1 << 16):
    """``(lo, hi, rows)``: runs of whole utterances of about ``chunk_frames`` frames (frame range and store rows)."""
    from data_prep.features.cmvn import utterance_chunks

    for u0, u1 in utterance_chunks(split.lengths, chunk_frames):
        lo = int(split.starts[u0])
        yield lo, int(split.starts[u1 - 1] + split.lengths[u1 - 1]), np.arange(u0, u1)


def contexts_range(split: SplitData, tids: np.ndarray, hmm: HmmModel, lo: int, hi: int) -> np.ndarray:
    """(hi-lo, 4) contexts of frames lo..hi (whole utterances around them are used); center 0 = unaligned."""
    r0 = int(np.searchsorted(split.starts, lo, side="right") - 1)
    r1 = int(np.searchsorted(split.starts, hi, side="left"))
    a, b = int(split.starts[r0]), int(split.starts[r1 - 1] + split.lengths[r1 - 1])
    t = tids[a:b]
    out = np.zeros((b - a, 4), np.int32)
    ok = t > 0
    if ok.any():
        idx = np.flatnonzero(ok)
        rows = np.repeat(np.arange(r0, r1), split.lengths[r0:r1])[idx]
        utt_starts = np.flatnonzero(np.diff(np.concatenate([[-1], rows])) != 0)
        out[idx] = frame_contexts(t[idx], hmm, utt_starts)
    return out[lo - a: hi - a]
