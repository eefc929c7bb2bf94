"""The decoder hook: the interface between acoustic models and decoders.

Contract
--------
* A **scorer** yields, per utterance, ``(utt_id, loglikes)`` where ``loglikes`` is a float32
  ``(frames, num_pdfs)`` matrix of *unscaled* pseudo-log-likelihoods ``log p(s|x) - log p(s)``; column
  ``j`` is the tied state (pdf) ``j`` of the alignment system's tree (see :class:`Scorer`;
  :class:`asr_kd.decoding.scorer.ModelScorer` and the export loader implement it).
* A **decoder** turns those matrices into word sequences: ``decode(items) -> DecodeOutput`` with
  ``.hyps`` ``{utt: [word, ...]}`` and ``.failures`` ``{utt: reason}`` (see :class:`Decoder`). Every
  utterance it receives ends up in exactly one of the two.

Implementations
---------------
* :class:`BuiltinWfstDecoder`: our HCLG (pdf+1 labels) + kaldi-decoder's FasterDecoder
  (:mod:`asr_kd.decoding.decoder`).
* :class:`ExternalDecoder`: writes the matrices as a Kaldi ``ark,scp`` with kaldi-io, runs a user command
  template, and reads hypotheses back from a Kaldi ``text``-format file (words or word ids) or a CTM.
  Template placeholders: ``{loglikes_ark}``, ``{loglikes_scp}``, ``{hyp}``, ``{workdir}``, ``{graph}``,
  ``{words}``, ``{acoustic_scale}``, ``{beam}``, ``{max_active}``, ``{num_pdfs}``, ``{frame_shift}`` (seconds,
  the feature store's). E.g. with Kaldi::

      latgen-faster-mapped --acoustic-scale={acoustic_scale} --beam={beam} --max-active={max_active}
        --word-symbol-table={words} exp/tri/final.mdl {graph}/HCLG.fst ark:{loglikes_ark}
        ark:/dev/null ark,t:{hyp}

  (Kaldi writes word ids there; they are mapped through ``words`` back to words.)

Stand-in external command (exercises the file contract end to end)::

    python -m asr_kd.decoding.decoder_hook --graph exp/graph [--ctm --frame-shift {frame_shift}] [--beam 13] \
        ark:LOGLIKES.ark HYP

It reads an ark (or ``scp:FILE``), decodes with the built-in decoder and writes Kaldi ``text`` (or CTM).
Failed utterances are left out of its output, as Kaldi's decoders do.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_kd.decoding.decoder import DecodeOutput, DecodeResult, DecoderConfig, decode_all, read_words
from data_prep.features.store import DEFAULT_FRAME_SHIFT_MS

log = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Anything that yields ``(utt_id, (frames, num_pdfs) float32 unscaled log-likelihoods)``."""

    num_pdfs: int

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]: ...

    def __len__(self) -> int: ...


@runtime_checkable
class Decoder(Protocol):
    def decode(self, loglikes: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
               total: int | None = None) -> DecodeOutput: ...


def _pairs(loglikes) -> Iterable[tuple[str, np.ndarray]]:
    return loglikes.items() if isinstance(loglikes, Mapping) else loglikes


def _total(loglikes, total: int | None) -> int | None:
    if total is not None:
        return total
    try:
        return len(loglikes)
    except TypeError:
        return None


class BuiltinWfstDecoder:
    """Our HCLG + FasterDecoder (parallel over ``config.num_jobs`` processes)."""

    def __init__(self, graph_dir: str | os.PathLike, config: DecoderConfig = DecoderConfig()):
        self.graph_dir = Path(graph_dir)
        self.config = config

    def decode(self, loglikes, total: int | None = None) -> DecodeOutput:
        return decode_all(self.graph_dir, _pairs(loglikes), self.config, total=_total(loglikes, total))


# -- Kaldi ark I/O ------------------------------------------------------------------------------------


def write_loglikes_ark(ark: str | os.PathLike, scp: str | os.PathLike | None,
                       loglikes, total: int | None = None) -> tuple[list[str], int]:
    """Write matrices as a binary Kaldi ark (+ scp with byte offsets). Returns (utt ids, frames).

    Matrices that cannot be decoded (no frames) are still written (Kaldi accepts empty matrices); the
    decoder reports them. Written atomically: ``ark``/``scp`` appear only when complete.
    """
    from tqdm import tqdm

    from asr_base.io import atomic_path

    from asr_base.kaldi_io import kaldi_io as kio

    utts: list[str] = []
    frames = 0
    scp_lines: list[str] = []
    ark = Path(ark)
    with atomic_path(ark) as tmp:
        with open(tmp, "wb") as f:
            for utt, m in tqdm(_pairs(loglikes), total=_total(loglikes, total), desc="write ark", unit="utt",
                               disable=None):
                if not utt or any(c.isspace() for c in utt):
                    raise ValueError(f"utterance id {utt!r} cannot be a Kaldi key")
                m = np.ascontiguousarray(m, dtype=np.float32)
                if m.ndim != 2:
                    raise ValueError(f"{utt}: expected a 2-D matrix, got shape {m.shape}")
                offset = f.tell() + len(utt.encode("utf-8")) + 1
                kio.write_mat(f, m, key=utt)
                scp_lines.append(f"{utt} {ark.resolve()}:{offset}\n")
                utts.append(utt)
                frames += m.shape[0]
    if scp is not None:
        with atomic_path(scp) as tmp:
            Path(tmp).write_text("".join(scp_lines), encoding="utf-8")
    return utts, frames


def read_loglikes(spec: str) -> Iterator[tuple[str, np.ndarray]]:
    """Kaldi rspecifier-like: ``ark:FILE``, ``scp:FILE`` or a plain path (``.scp`` -> scp, else ark)."""
    from asr_base.kaldi_io import kaldi_io as kio

    kind, _, path = spec.partition(":") if spec.startswith(("ark:", "scp:")) else ("", "", spec)
    if not kind:
        kind = "scp" if path.endswith(".scp") else "ark"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{spec}: no such file")
    try:
        gen = kio.read_mat_scp(path) if kind == "scp" else kio.read_mat_ark(path)
        for utt, m in gen:
            yield utt, np.asarray(m, dtype=np.float32)
    except TypeError as e:
        if "newshape" in str(e):
            raise ValueError(f"{spec}: compressed Kaldi matrices cannot be read with kaldi-io on numpy 2.x; "
                             "write them uncompressed (copy-matrix / copy-feats --compress=false)") from e
        raise


# -- hypotheses I/O -----------------------------------------------------------------------------------


def read_hyp_text(path: str | os.PathLike, words: list[str] | None = None) -> dict[str, list[str]]:
    """Kaldi ``text`` format; if every token is an integer and ``words`` is given, ids are mapped."""
    from asr_kd.decoding.wer import read_text

    hyps = read_text(path)
    if words is not None and hyps and all(t.isdigit() for ws in hyps.values() for t in ws):
        out = {}
        for u, ws in hyps.items():
            ids = [int(t) for t in ws]
            bad = [i for i in ids if i >= len(words)]
            if bad:
                raise ValueError(f"{path}: {u} has word ids {bad[:3]} outside the word table ({len(words)} entries)")
            out[u] = [words[i] for i in ids]
        return out
    return hyps


def read_ctm(path: str | os.PathLike, words: list[str] | None = None) -> dict[str, list[str]]:
    """CTM ``utt channel start duration word [confidence]`` -> words per utterance in time order."""
    rows: dict[str, list[tuple[float, str]]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";;"):
                continue
            if len(fields) < 5:
                raise ValueError(f"{path}:{lineno}: expected 'utt channel start duration word', got {line!r}")
            w = fields[4]
            if words is not None and w.isdigit():
                w = words[int(w)]
            rows.setdefault(fields[0], []).append((float(fields[2]), w))
    return {u: [w for _, w in sorted(r, key=lambda x: x[0])] for u, r in rows.items()}


def write_ctm(path: str | os.PathLike, results: Mapping[str, DecodeResult], words: list[str],
              frame_shift: float) -> None:
    """CTM from best paths (``frame_shift``: seconds per frame). A word's start is the frame where its label
    was emitted on the best path (in a Kaldi graph that is inside the word's first phone), its end the next
    word's start or the end."""
    from asr_base.io import write_text

    lines = []
    for utt in sorted(results):
        r = results[utt]
        if not r.ok:
            continue
        starts = list(r.word_frames or [0] * len(r.word_ids))
        ends = starts[1:] + [r.num_frames]
        for w, s, e in zip(r.word_ids, starts, ends):
            lines.append(f"{utt} 1 {s * frame_shift:.2f} {max(e - s, 1) * frame_shift:.2f} {words[w]}\n")
    write_text(path, "".join(lines))


# -- the external decoder -----------------------------------------------------------------------------


@dataclass
class ExternalDecoder:
    """Runs a user command on a Kaldi ark of log-likelihoods and reads its hypotheses back."""

    command: str
    workdir: Path
    output_format: str = "text"  # text | ctm
    words_txt: Path | None = None  # to map word ids back to words (and the {words} placeholder)
    graph_dir: Path | None = None
    config: DecoderConfig = field(default_factory=DecoderConfig)
    num_pdfs: int | None = None
    frame_shift: float | None = None  # seconds per frame of the scored features (the {frame_shift} placeholder)

    def __post_init__(self) -> None:
        if self.output_format not in ("text", "ctm"):
            raise ValueError(f"output_format must be 'text' or 'ctm', got {self.output_format!r}")
        self.workdir = Path(self.workdir)
        if self.words_txt is None and self.graph_dir is not None and (Path(self.graph_dir) / "words.txt").is_file():
            self.words_txt = Path(self.graph_dir) / "words.txt"

    def placeholders(self) -> dict[str, str]:
        w = self.workdir.resolve()
        hyp = w / ("hyp.ctm" if self.output_format == "ctm" else "hyp.ext.txt")
        return {
            "loglikes_ark": str(w / "loglikes.ark"), "loglikes_scp": str(w / "loglikes.scp"), "hyp": str(hyp),
            "workdir": str(w), "graph": str(Path(self.graph_dir).resolve()) if self.graph_dir else "",
            "words": str(Path(self.words_txt).resolve()) if self.words_txt else "",
            "acoustic_scale": f"{self.config.acoustic_scale:g}", "beam": f"{self.config.beam:g}",
            "max_active": str(self.config.max_active), "num_pdfs": str(self.num_pdfs or ""),
            "frame_shift": f"{self.frame_shift:g}" if self.frame_shift else "",
        }

    def decode(self, loglikes, total: int | None = None) -> DecodeOutput:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ph = self.placeholders()
        try:
            cmd = self.command.format(**ph)
        except (KeyError, IndexError) as e:
            raise ValueError(f"unknown placeholder {e} in --external-cmd; known: {sorted(ph)}") from None
        sizes: dict[str, int] = {}

        def record(pairs):
            for utt, m in pairs:
                sizes[utt] = int(np.shape(m)[0])
                yield utt, m

        utts, frames = write_loglikes_ark(ph["loglikes_ark"], ph["loglikes_scp"], record(_pairs(loglikes)),
                                          _total(loglikes, total))
        Path(ph["hyp"]).unlink(missing_ok=True)
        log.info("external decoder: %s", cmd)
        log_path = self.workdir / "external.log"
        with open(log_path, "wb") as lf:
            proc = subprocess.run(cmd, shell=True, stdout=lf, stderr=subprocess.STDOUT, cwd=self.workdir)
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"external decoder exited with status {proc.returncode}: {cmd}\n{tail}")
        if not Path(ph["hyp"]).is_file():
            raise RuntimeError(f"external decoder wrote no hypotheses to {ph['hyp']} (see {log_path})")
        words = read_words(self.words_txt) if self.words_txt else None
        hyps = read_ctm(ph["hyp"], words) if self.output_format == "ctm" else read_hyp_text(ph["hyp"], words)
        out = DecodeOutput()
        for u in utts:
            if u in hyps:
                out.hyps[u] = hyps[u]
                out.results[u] = DecodeResult(u, [], sizes[u], "ok")
            else:
                reason = ("no words in the external CTM (failed or empty)" if self.output_format == "ctm"
                          else "external decoder gave no hypothesis")
                out.failures[u] = reason
                out.results[u] = DecodeResult(u, None, sizes[u], "failed", reason)
        extra = sorted(set(hyps) - set(utts))
        if extra:
            log.warning("external decoder returned %d unknown utterances (ignored), e.g. %s", len(extra), extra[:3])
        return out


# -- the stand-in external command --------------------------------------------------------------------


@dataclass(kw_only=True)
class StandinConfig:
    """The stand-in's own options; the decoder's come from :class:`DecoderConfig` (``--num-jobs`` default 1)."""

    graph: str = option(help="graph dir with HCLG.fst (pdf+1 labels), words.txt, num_pdfs")
    ctm: bool = option(False, help="write a CTM instead of Kaldi text")
    frame_shift: float = option(DEFAULT_FRAME_SHIFT_MS / 1000.0,
                                help="seconds per frame for CTM times: the feature store's frame shift "
                                     "({frame_shift} in an --external-cmd template)")
    word_ids: bool = option(False, help="write word ids instead of words (like Kaldi)")
    loglikes: str = option(cli=False, help="ark:FILE, scp:FILE or a path")
    hyp: str = option(cli=False, help="output hypotheses")


def standin_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr_kd.decoding.decoder_hook",
                                description="Decode a Kaldi ark/scp of log-likelihoods with the built-in decoder "
                                            "(a stand-in for an external decoder such as latgen-faster-mapped).")
    add_options(p, StandinConfig)
    add_options(p, DecoderConfig, title="decoder", defaults={"num_jobs": 1})
    for name in ("loglikes", "hyp"):  # positional, as Kaldi's decoders take them
        p.add_argument(name, help=StandinConfig.__dataclass_fields__[name].metadata["help"])
    a = p.parse_args(argv)
    from asr_base.cli import setup_logging
    from asr_base.io import write_text

    setup_logging()
    cfg, dec = from_args(StandinConfig, a), from_args(DecoderConfig, a, num_jobs=1)
    words = read_words(Path(cfg.graph) / "words.txt")
    out = decode_all(cfg.graph, read_loglikes(cfg.loglikes), dec, words=words)
    if cfg.ctm:
        write_ctm(cfg.hyp, out.results, words, cfg.frame_shift)
    else:
        lines = []
        for u in sorted(out.hyps):
            toks = [str(w) for w in out.results[u].word_ids] if cfg.word_ids else out.hyps[u]
            lines.append(f"{u} {' '.join(toks)}".rstrip() + "\n")
        write_text(cfg.hyp, "".join(lines))
    log.info("decoded %d utterances, %d failed", len(out.hyps), len(out.failures))
    return 0


if __name__ == "__main__":
    raise SystemExit(standin_main(sys.argv[1:]))
