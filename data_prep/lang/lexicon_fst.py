"""The lexicon FST ``L.fst`` / ``L_disambig.fst`` (Kaldi's ``make_lexicon_fst.py``) with kaldifst."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from asr_base.io import atomic_path
from data_prep.lang.lexicon import SIL


def make_lexicon_fst(entries: Sequence[tuple[str, tuple[str, ...]]], phones: dict[str, int], words: dict[str, int],
                     sil_prob: float, sil_phone: str = SIL, sil_disambig: str | None = None):
    """Kaldi ``make_lexicon_fst.py`` with optional silence, as a ``kaldifst.StdVectorFst``.

    States: 0 start, 1 loop (final; between words), 2 after-silence. Every word may be followed by
    ``sil_phone`` with probability ``sil_prob``; the utterance may start with it too. With
    ``sil_disambig`` the silence is followed by that disambiguation symbol (for L_disambig).
    ``entries`` are (word, pron) with pronunciation probability 1.
    """
    from asr_base.kaldi import kaldifst

    if not 0.0 <= sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in [0, 1), got {sil_prob}")
    fst = kaldifst.StdVectorFst()
    start, loop = fst.add_state(), fst.add_state()
    fst.start = start
    fst.set_final(loop, 0.0)
    eps = 0

    def arc(src: int, ilabel: int, olabel: int, cost: float, dst: int) -> None:
        fst.add_arc(src, kaldifst.StdArc(ilabel, olabel, cost, dst))

    if sil_prob > 0:
        sil_cost, no_sil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)
        sil_state = fst.add_state()
        arc(start, eps, eps, no_sil_cost, loop)
        arc(start, eps, eps, sil_cost, sil_state)
        if sil_disambig is None:
            arc(sil_state, phones[sil_phone], eps, 0.0, loop)
        else:
            mid = fst.add_state()
            arc(sil_state, phones[sil_phone], eps, 0.0, mid)
            arc(mid, phones[sil_disambig], eps, 0.0, loop)
    else:
        sil_cost = no_sil_cost = 0.0
        sil_state = None
        arc(start, eps, eps, 0.0, loop)

    for word, pron in entries:
        if not pron:
            raise ValueError(f"empty pronunciation for {word!r}")
        cur = loop
        for i, ph in enumerate(pron[:-1]):
            nxt = fst.add_state()
            arc(cur, phones[ph], words[word] if i == 0 else eps, 0.0, nxt)
            cur = nxt
        last = phones[pron[-1]]
        olabel = words[word] if len(pron) == 1 else eps
        if sil_state is None:
            arc(cur, last, olabel, 0.0, loop)
        else:
            arc(cur, last, olabel, no_sil_cost, loop)
            arc(cur, last, olabel, sil_cost, sil_state)
    return fst


def write_fst(fst, path: Path) -> None:
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise OSError(f"could not write {path}")
