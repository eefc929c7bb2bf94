"""One split as the aligner sees it: feature-store rows, transcripts as word ids, per-frame phone contexts."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from data_prep.align.hmm import HmmModel, frame_contexts


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

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


def load_split(name: str, store_dir: str | os.PathLike, text: dict[str, str], lang) -> SplitData:
    """The utterances of feature store ``store_dir`` with their transcripts (OOVs mapped to the lang's OOV word)."""
    from data_prep.features.store import FeatureStore
    from data_prep.lang.lexicon import map_oov

    store = FeatureStore.open(store_dir)
    words, strs = [], []
    for u in store.utt_ids:
        t = text.get(u)
        if t is None:
            words.append(None)
            strs.append(None)
            continue
        ws = map_oov(t.split(), lang.lexicon, lang.oov)
        words.append([lang.words[w] for w in ws])
        strs.append(ws)
    return SplitData(name, str(store_dir), list(store.utt_ids), store.starts.copy(), store.lengths.copy(), words, strs,
                     store.frame_shift)


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
