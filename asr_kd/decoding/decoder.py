"""The built-in WFST decoder: kaldi-decoder's ``FasterDecoder`` over the pdf+1 HCLG.

Input per utterance: a ``(frames, num_pdfs)`` matrix of *unscaled* pseudo-log-likelihoods
(log posterior - log prior, see :mod:`asr_kd.decoding.scorer`), the same thing Kaldi's ``*-mapped`` decoders
read. The decoder multiplies it by the acoustic scale (default 0.1) and decodes it through
``DecodableCtc`` (``log_likelihood(t, i) = M[t, i - 1]``) on the graph whose input labels are pdf + 1.

Robustness: a matrix with no frames, non-finite values or the wrong number of columns is a listed
failure with its reason; when no token reaches a final state the utterance is re-decoded with wider
beams (``retry_beams``), and if that still fails it is a listed failure -- never a crash and never a
silently empty hypothesis. Utterances are decoded in parallel worker processes, each holding one copy
of the graph.

Lattice mode (``--lattice-beam`` > 0): kaldi-decoder's ``LatticeSimpleDecoder`` instead, keeping every path
within the lattice beam; the hypothesis is the lattice's best path at ``one_best`` (acoustic scale, word
insertion penalty; default: the decoding scale, no penalty), and the best path at every point of the
sweep grid (``--sweep-acoustic-scales`` x ``--sweep-penalties``) is taken from the same lattice in the
worker (:mod:`asr_kd.decoding.lattice`), so a sweep never decodes again.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from tqdm import tqdm

from asr_base.config import option
from asr_base.kaldi import kaldi_decoder, kaldifst

from _kaldifst import _ArcIteratorLattice  # noqa: E402  (kaldifst.ArcIterator only wraps Std FSTs)

log = logging.getLogger(__name__)

LATTICE_RETRY_MAX_EXTRA = 4.0  # lattice mode: a retry beam is at most --beam + this


@dataclass
class DecoderConfig:
    """Options of the built-in decoder (``--beam`` ...; the external decoder gets them as placeholders)."""

    beam: float = option(13.0, help="decoding beam")
    max_active: int = option(7000, help="maximum active tokens per frame")
    min_active: int = option(200, cli=False, help="minimum active tokens per frame")
    acoustic_scale: float = option(0.1, help="scale of the log-likelihoods")
    retry_beams: tuple[float, ...] = option((26.0,), flag="--retry-beam",
                                            help="wider beams (max-active widened alike) tried when no token "
                                                 "reaches a final state")
    num_jobs: int = option(0, help="decoder processes (0: all cores)")
    lattice_beam: float = option(0.0, help="> 0: generate lattices with this lattice beam (LatticeSimpleDecoder) "
                                           "and take the hypotheses from them; 0: one-best FasterDecoder")
    sweep_acoustic_scales: list[float] = option([], help="lattice mode: best paths at these acoustic scales "
                                                         "(LM weight = 1/scale) ...")
    sweep_penalties: list[float] = option([0.0], help="... and these word insertion penalties (graph-cost units)")
    one_best: tuple[float, ...] = option((), cli=False, help="lattice mode: (acoustic scale, penalty) of the "
                                                             "hypothesis; empty: (acoustic_scale, 0)")
    rescore_arpa: str | None = option(None, help="lattice mode: also rescore the lattices with this (bigger) "
                                                 "ARPA LM, at every point (asr_kd.decoding.rescore)")
    rescore_graph_arpa: str | None = option(None, help="the graph's own ARPA LM, whose scores are replaced "
                                                       "(default: the one the graph's manifest.json names, "
                                                       "checked against its digest)")
    rescore_one_best: tuple[float, ...] = option((), cli=False, help="(acoustic scale, penalty) of the rescored "
                                                                     "hypothesis; empty: (acoustic_scale, 0)")

    def __post_init__(self) -> None:
        if self.beam <= 0 or self.acoustic_scale <= 0:
            raise ValueError(f"beam and acoustic_scale must be positive: {self}")
        if self.max_active < 2 or self.min_active < 0:
            raise ValueError(f"max_active must be >= 2 and min_active >= 0: {self}")
        self.retry_beams = tuple(float(b) for b in self.retry_beams)
        self.one_best = tuple(float(x) for x in self.one_best)
        self.rescore_one_best = tuple(float(x) for x in self.rescore_one_best)
        if any(b and len(b) != 2 for b in (self.one_best, self.rescore_one_best)):
            raise ValueError(f"one_best and rescore_one_best are (acoustic scale, penalty): {self}")
        if self.rescore_arpa and self.lattice_beam <= 0:
            raise ValueError("rescoring (rescore_arpa) needs lattices (lattice_beam > 0)")
        if self.lattice_beam < 0 or any(x <= 0 for x in self.sweep_acoustic_scales):
            raise ValueError(f"lattice_beam must be >= 0 and sweep scales positive: {self}")

    def points(self, rescored: bool = False) -> list[tuple[float, float]]:
        """Lattice mode: every (acoustic scale, penalty) point whose best path is wanted (``rescored``: after LM
        rescoring); the first is the hypothesis, the second the decoding scale without penalty (the untuned
        point)."""
        first = (self.rescore_one_best if rescored else self.one_best) or (self.acoustic_scale, 0.0)
        pts = [first, (self.acoustic_scale, 0.0)]
        pts += [(s, p) for p in self.sweep_penalties for s in self.sweep_acoustic_scales]
        return list(dict.fromkeys((float(s), float(p)) for s, p in pts))

    @property
    def jobs(self) -> int:
        return self.num_jobs if self.num_jobs > 0 else (os.cpu_count() or 1)


@dataclass
class DecodeResult:
    utt: str
    word_ids: list[int] | None  # None: failed
    num_frames: int
    status: str = "ok"  # ok | retried | failed
    reason: str = ""
    beam: float = 0.0
    cost: float = math.nan  # total (graph + scaled acoustic) cost of the best path
    word_frames: list[int] | None = None  # frame at which each word label was emitted on the best path
    frame_pdfs: np.ndarray | None = None  # int32 (num_frames,) pdf of every frame on the best path (word times)
    points: dict[tuple[float, float], list[int]] | None = None  # lattice mode: best path's words per point
    rescored: dict[tuple[float, float], list[int]] | None = None  # ... after LM rescoring (--rescore-arpa)

    @property
    def ok(self) -> bool:
        return self.word_ids is not None


@dataclass
class DecodeOutput:
    hyps: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    results: dict[str, DecodeResult] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return sum(r.num_frames for r in self.results.values())


def read_words(path: str | os.PathLike) -> list[str]:
    """words.txt -> id-indexed list of words."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                pairs.append((fields[0], int(fields[1])))
    table = [""] * (max(i for _, i in pairs) + 1)
    for w, i in pairs:
        table[i] = w
    return table


def check_matrix(m: np.ndarray, num_pdfs: int) -> str:
    """'' if the matrix can be decoded, else the reason why not."""
    if m.ndim != 2:
        return f"log-likelihoods must be a (frames, pdfs) matrix, got shape {m.shape}"
    if m.shape[0] == 0:
        return "no frames"
    if m.shape[1] != num_pdfs:
        return f"matrix has {m.shape[1]} columns but the graph has {num_pdfs} pdfs"
    bad = ~np.isfinite(m).all(axis=1)
    if bad.any():
        return f"non-finite log-likelihoods (NaN/inf) in {int(bad.sum())} of {m.shape[0]} frames"
    return ""


def best_path_words(lattice) -> tuple[list[int], list[int], float]:
    """Output labels, the frame at which each was emitted, and the total cost of a linear best-path
    lattice (kaldifst.Lattice). Arcs with a non-zero input label consume one frame."""
    words, frames, _, cost = best_path_alignment(lattice)
    return words, frames, cost


def best_path_alignment(lattice) -> tuple[list[int], list[int], np.ndarray, float]:
    """:func:`best_path_words` plus the pdf of every frame (input label - 1 of the graph's pdf+1 labels):
    the alignment that word times (CTM) are read from. One pass over the arcs of the linear lattice."""
    words: list[int] = []
    frames: list[int] = []
    ilabels: list[int] = []
    cost = 0.0
    s = lattice.start
    for _ in range(lattice.num_states + 1):
        if s < 0:
            break
        it = _ArcIteratorLattice(lattice, s)
        if it.done:
            fw = lattice.final(s)
            cost += fw.value1 + fw.value2
            break
        a = it.value
        if a.olabel:
            words.append(int(a.olabel))
            frames.append(len(ilabels))
        if a.ilabel:
            ilabels.append(a.ilabel)
        cost += a.weight.value1 + a.weight.value2
        s = a.nextstate
    return words, frames, np.asarray(ilabels, dtype=np.int32) - 1, cost


class WfstDecoder:
    """Decodes matrices with one graph in the current process."""

    def __init__(self, graph: str | os.PathLike, config: DecoderConfig = DecoderConfig(), num_pdfs: int | None = None,
                 rescorer=None):
        graph = Path(graph)
        self.rescorer = rescorer  # an asr_kd.decoding.rescore.LmRescorer, or None
        fst_path = graph / "HCLG.fst" if graph.is_dir() else graph
        self.fst = kaldifst.StdVectorFst.read(str(fst_path))
        self.config = config
        if num_pdfs is None:
            n = fst_path.parent / "num_pdfs"
            num_pdfs = int(n.read_text().split()[0]) if n.is_file() else max_input_label(self.fst)
        self.num_pdfs = num_pdfs

    def _options(self, beam: float):
        """Decoder options; a retry with a wider beam widens ``max_active`` by the same factor."""
        o = kaldi_decoder.FasterDecoderOptions()
        o.beam = beam
        o.max_active = int(math.ceil(self.config.max_active * max(1.0, beam / self.config.beam)))
        o.min_active = min(self.config.min_active, o.max_active)
        return o

    def decode_one(self, utt: str, loglikes: np.ndarray) -> DecodeResult:
        m = np.asarray(loglikes)
        reason = check_matrix(m, self.num_pdfs)
        if reason:
            return DecodeResult(utt, None, int(m.shape[0]) if m.ndim else 0, "failed", reason)
        scaled = np.ascontiguousarray(m, dtype=np.float32) * np.float32(self.config.acoustic_scale)
        beams = (self.config.beam, *[b for b in self.config.retry_beams if b > self.config.beam])
        if self.config.lattice_beam > 0:  # no max-active in LatticeSimpleDecoder: a wide retry beam explodes
            capped = tuple(dict.fromkeys(min(b, self.config.beam + LATTICE_RETRY_MAX_EXTRA) for b in beams))
            return self._decode_lattice(utt, scaled, capped)
        for i, beam in enumerate(beams):
            dec = kaldi_decoder.FasterDecoder(self.fst, self._options(beam))
            dec.decode(kaldi_decoder.DecodableCtc(scaled))
            if not dec.reached_final():
                continue
            ok, lat = dec.get_best_path()
            if not ok:
                continue
            words, frames, pdfs, cost = best_path_alignment(lat)
            return DecodeResult(utt, words, m.shape[0], "ok" if i == 0 else "retried", "", beam, cost, frames, pdfs)
        return DecodeResult(utt, None, m.shape[0], "failed",
                            f"no token reached a final state (beams tried: {', '.join(f'{b:g}' for b in beams)})")

    def _decode_lattice(self, utt: str, scaled: np.ndarray, beams: tuple[float, ...]) -> DecodeResult:
        from asr_kd.decoding.lattice import generate_lattice, sweep

        c = self.config
        for i, beam in enumerate(beams):
            lat = generate_lattice(self.fst, scaled, beam, c.lattice_beam)
            if lat is None:
                continue
            points = c.points()
            paths = sweep(lat, points, c.acoustic_scale)
            words, frames, cost = best_path_words(paths[points[0]])
            rescored = None
            if self.rescorer is not None:
                rescored = self.rescorer.best_paths(lat, c.points(rescored=True), c.acoustic_scale)
            return DecodeResult(utt, words, scaled.shape[0], "ok" if i == 0 else "retried", "", beam, cost, frames,
                                points={p: best_path_words(lp)[0] for p, lp in paths.items()}, rescored=rescored)
        return DecodeResult(utt, None, scaled.shape[0], "failed",
                            f"no token reached a final state (beams tried: {', '.join(f'{b:g}' for b in beams)})")


def max_input_label(fst) -> int:
    top = 0
    for s in range(fst.num_states):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            top = max(top, it.value.ilabel)
            it.next()
    return top


# -- parallel decoding ------------------------------------------------------------------------------

_WORKER: WfstDecoder | None = None
_RESCORER = None  # loaded once in the parent before the workers fork (they share its memory)


def _init_worker(graph: str, config: DecoderConfig, num_pdfs: int | None) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = WfstDecoder(graph, config, num_pdfs, _RESCORER)


def _decode_in_worker(item: tuple[str, np.ndarray]) -> DecodeResult:
    assert _WORKER is not None
    try:
        return _WORKER.decode_one(*item)
    except Exception as e:  # a decoder error on one utterance is a listed failure, not a stage crash
        return DecodeResult(item[0], None, int(np.shape(item[1])[0]), "failed", f"decoder error: {e}")


def decode_all(graph: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]], config: DecoderConfig = DecoderConfig(),
               words: list[str] | None = None, total: int | None = None) -> DecodeOutput:
    """Decode ``(utt, loglikes)`` pairs (an iterator is consumed lazily) over ``config.jobs`` processes."""
    graph = Path(graph)
    gdir = graph if graph.is_dir() else graph.parent
    if words is None:
        words = read_words(gdir / "words.txt")
    num_pdfs = int((gdir / "num_pdfs").read_text().split()[0]) if (gdir / "num_pdfs").is_file() else None
    global _RESCORER
    _RESCORER = None
    if config.rescore_arpa:
        from asr_kd.decoding.rescore import LmRescorer

        if not config.rescore_graph_arpa:
            raise ValueError("rescoring needs the graph's own ARPA LM (rescore_graph_arpa)")
        _RESCORER = LmRescorer.load(config.rescore_graph_arpa, config.rescore_arpa, gdir / "words.txt")
        log.info("rescoring lattices by composition: %s -> %s", config.rescore_graph_arpa, config.rescore_arpa)
    out = DecodeOutput()
    bar = tqdm(total=total, desc="decode", unit="utt", disable=None)

    def collect(r: DecodeResult) -> None:
        out.results[r.utt] = r
        if r.ok:
            out.hyps[r.utt] = [words[w] for w in r.word_ids]
            if r.status == "retried":
                log.info("%s: decoded with the wider beam %g", r.utt, r.beam)
        else:
            out.failures[r.utt] = r.reason
            log.warning("%s: decoding failed: %s", r.utt, r.reason)
        bar.update(1)

    if config.jobs <= 1:
        _init_worker(str(graph), config, num_pdfs)
        for item in items:
            collect(_decode_in_worker(item))
    else:
        # Pool.imap pulls its input eagerly; a semaphore keeps at most a few matrices per worker in flight
        # so that scoring (in this process) and decoding (in the workers) overlap with bounded memory.
        slots = threading.BoundedSemaphore(4 * config.jobs)

        def bounded() -> Iterator[tuple[str, np.ndarray]]:
            for item in items:
                slots.acquire()
                yield item

        ctx = mp.get_context("fork")
        with ctx.Pool(config.jobs, initializer=_init_worker, initargs=(str(graph), config, num_pdfs)) as pool:
            for r in pool.imap(_decode_in_worker, bounded(), chunksize=1):
                slots.release()
                collect(r)
    bar.close()
    return out


def decode_matrices(graph: str | os.PathLike, loglikes: Mapping[str, np.ndarray],
                    config: DecoderConfig = DecoderConfig()) -> DecodeOutput:
    return decode_all(graph, iter(loglikes.items()), config, total=len(loglikes))
