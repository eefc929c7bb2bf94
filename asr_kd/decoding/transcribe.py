"""``asr-kd transcribe``: what was said in audio files, from an export dir and a graph dir alone.

Input: audio files, Kaldi ``wav.scp`` files or directories (see
:func:`asr_kd.decoding.transcribe_audio.resolve_inputs`). No corpus, data dir or feature store: features
are computed inside with the export's fbank options (``feature_config.json``), normalised with a CMVN an
unseen speaker can have (``--cmvn``; default: what the export records for unseen speakers, see
:func:`asr_kd.export.load.expected_cmvn`), scored by the exported TorchScript/ONNX model and decoded by the
built-in one-best decoder (:mod:`asr_kd.decoding.decoder`) over ``graph/HCLG.fst``.

Output: the transcripts in Kaldi ``text`` format (``utt-id words...``) on stdout, and with ``--out DIR``
``DIR/text``, ``DIR/ctm`` (``utt 1 start duration word``, seconds) and ``DIR/skipped.tsv`` (every input
that could not be transcribed, with the reason: unreadable, empty, multi-channel, wrong-rate, too short,
no path through the graph). The rest is always transcribed; the exit status is 1 only when nothing was.

Word times (CTM) come from the decoder's best path (see :mod:`asr_kd.decoding.word_times`): per-frame
pdfs -> phones (the export's ``final.mdl``) -> words (the export's ``lexicon.txt``), as Kaldi's
``lattice-align-words-lexicon``; without a lexicon, from the frames of the graph's word labels (approximate).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal


from asr_base.config import add_options, from_args, option
from asr_base.io import write_text
from asr_kd.decoding.decoder import DecodeOutput, DecoderConfig, decode_all, read_words
from asr_kd.decoding.transcribe_audio import extract, normalise, read_utt2spk, resolve_inputs
from asr_kd.decoding.word_times import PdfInfo, read_lexicon, word_times
from asr_kd.export.load import expected_cmvn, load_export

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TranscribeConfig:
    inputs: list[str] = option([], cli=False)  # positional: audio files, wav.scp files, directories
    export: str = option(help="export dir (asr-kd export: model, priors, feature config)")
    graph: str = option(help="graph dir (asr-kd make-graph: HCLG.fst, words.txt)")
    out: str | None = option(None, help="also write text, ctm and skipped.tsv into this dir")
    cmvn: Literal["auto", "speaker", "utterance", "sliding"] = option(
        "auto", help="CMVN for unseen speakers: per speaker over the given files (--utt2spk, else one speaker "
                     "for all), per utterance, or Kaldi's sliding window; auto: what the export records")
    utt2spk: str | None = option(None, help="Kaldi utt2spk of the inputs (speakers for --cmvn speaker)")
    cmvn_window: int = option(600, help="frames of the sliding CMVN window")
    cmvn_center: bool = option(True, help="sliding window centred on the frame (--no-cmvn-center: only past "
                                          "frames, as online decoding)")
    resample: bool = option(False, help="resample audio at another rate (default: skip it, listed)")
    lexicon: str | None = option(None, help="lexicon for CTM word times (default: the export's lexicon.txt)")
    backend: Literal["torchscript", "onnx"] = option("torchscript", help="which exported model runs")
    jobs: int = option(1, help="processes for features and for decoding")


def pdf_info(cfg: "TranscribeConfig", num_pdfs: int) -> tuple[PdfInfo, dict | None]:
    """What the pdfs are (from the export's final.mdl, phones.txt, silence_phones.txt) and the lexicon."""
    exp = Path(cfg.export)
    lex_path = Path(cfg.lexicon) if cfg.lexicon else exp / "lexicon.txt"
    lexicon = read_lexicon(lex_path) if lex_path.is_file() else None
    if not ((exp / "final.mdl").is_file() and (exp / "phones.txt").is_file()):
        log.warning("%s has no final.mdl/phones.txt: CTM word times from word labels only", exp)
        return PdfInfo.empty(num_pdfs), lexicon
    sil = exp / "silence_phones.txt"
    silence = sil.read_text(encoding="utf-8").split() if sil.is_file() else ["SIL"]
    if lexicon is None:
        log.warning("no lexicon (%s): CTM word times from word labels, approximate at word onsets", lex_path)
    return PdfInfo.load(exp / "final.mdl", exp / "phones.txt", silence, num_pdfs), lexicon


def ctm_lines(out: DecodeOutput, frame_shift: float, info: PdfInfo, lexicon: dict | None) -> list[str]:
    lines = []
    for utt in sorted(out.hyps):
        r = out.results[utt]
        spans = word_times(out.hyps[utt], r.word_frames, r.frame_pdfs, r.num_frames, info, lexicon)
        for word, (a, b) in zip(out.hyps[utt], spans):
            lines.append(f"{utt} 1 {a * frame_shift:.2f} {(b - a) * frame_shift:.2f} {word}\n")
    return lines


@dataclass
class Transcripts:
    out: DecodeOutput  # hyps, failures, per-utterance results (word frames, best-path pdfs)
    skipped: list  # (utt, path, reason) of every input not transcribed
    frame_shift: float  # seconds
    cmvn: str  # the CMVN mode used


def transcribe(cfg: TranscribeConfig, decoder: DecoderConfig = DecoderConfig()) -> Transcripts:
    """Transcribe ``cfg.inputs`` (``decoder.num_jobs`` is replaced by ``cfg.jobs``)."""
    from data_prep.features.fbank_extract import FbankConfig

    t0 = time.time()
    model = load_export(cfg.export, cfg.backend)
    fc = model.feature_config
    cm = expected_cmvn(fc)
    mode = cm["unseen"] if cfg.cmvn == "auto" else cfg.cmvn
    fb_opts = (fc.get("fbank") or {}).get("fbank", {})
    fb = FbankConfig(**{f.name: fb_opts[f.name] for f in fields(FbankConfig) if f.name in fb_opts})
    if fb.dim != fc["feat_dim"]:
        raise ValueError(f"{cfg.export}: the features have {fb.dim} dims but the model takes {fc['feat_dim']}")
    items, skipped = resolve_inputs(cfg.inputs)
    log.info("%d input(s), %d skipped before reading; CMVN %s (model trained with %s); %d job(s)",
             len(items), len(skipped), mode, cm["train"], cfg.jobs)
    from tqdm import tqdm

    raw, specs, seconds = {}, {}, 0.0
    for r in tqdm(extract(items, fb, cfg.resample, cfg.jobs), total=len(items), desc="features", unit="file",
                  disable=None):
        if r.feats is None:
            skipped.append((r.utt, r.spec, r.reason))
            log.warning("skipping %s: %s", r.utt, r.reason)
        else:
            raw[r.utt], specs[r.utt] = r.feats, r.spec
            seconds += r.num_samples / fb.sample_rate
    utt2spk = read_utt2spk(cfg.utt2spk) if cfg.utt2spk else None
    feats = normalise(raw, mode, cm["train"], utt2spk, cfg.cmvn_window, cfg.cmvn_center)
    del raw
    gdir = Path(cfg.graph)
    words = read_words(gdir / "words.txt")
    dcfg = DecoderConfig(**{**{f.name: getattr(decoder, f.name) for f in fields(DecoderConfig)},
                            "num_jobs": cfg.jobs})
    scores = ((u, model.loglikes(x)) for u, x in feats.items())
    out = decode_all(gdir, scores, dcfg, words=words, total=len(feats))
    for utt, reason in out.failures.items():
        skipped.append((utt, specs[utt], f"decoding failed: {reason}"))
    wall = time.time() - t0
    log.info("%d transcribed, %d skipped; %.1f s of audio in %.1f s (RTF %.3f)", len(out.hyps), len(skipped),
             seconds, wall, wall / max(seconds, 1e-9))
    return Transcripts(out, skipped, float(fc["frame_shift_ms"]) / 1000.0, mode)


def write_outputs(t: Transcripts, out_dir: Path, info: PdfInfo, lexicon: dict | None) -> None:
    """``text``, ``ctm`` and ``skipped.tsv`` in ``out_dir`` (atomic writes)."""
    from data_prep.corpus.skipped import skipped_tsv

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "text", "".join(f"{u} {' '.join(w)}\n" for u, w in sorted(t.out.hyps.items())))
    write_text(out_dir / "ctm", "".join(ctm_lines(t.out, t.frame_shift, info, lexicon)))
    write_text(out_dir / "skipped.tsv", skipped_tsv(t.skipped))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Transcribe audio files, wav.scp files or directories with an exported model "
                          "(asr-kd export) and a decoding graph (asr-kd make-graph); prints Kaldi text.")
    parser.add_argument("inputs", nargs="+", help="audio files, Kaldi wav.scp files (*.scp) or directories")
    add_options(parser, TranscribeConfig)
    add_options(parser, DecoderConfig, title="decoder")
    for action in parser._actions:  # decoder processes are --jobs here
        if action.dest == "num_jobs":
            action.help = argparse.SUPPRESS


def main(args: argparse.Namespace) -> int:
    cfg = from_args(TranscribeConfig, args, inputs=list(args.inputs))
    dec = from_args(DecoderConfig, args)
    try:
        t = transcribe(cfg, dec)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    for utt in sorted(t.out.hyps):
        sys.stdout.write(f"{utt} {' '.join(t.out.hyps[utt])}\n")
    sys.stdout.flush()
    for utt, path, reason in t.skipped:
        log.warning("not transcribed: %s (%s): %s", utt, path, reason)
    if cfg.out:
        write_outputs(t, Path(cfg.out), *pdf_info(cfg, _num_pdfs(Path(cfg.graph))))
    return 0 if t.out.hyps else 1


def _num_pdfs(graph_dir: Path) -> int:
    return int((graph_dir / "num_pdfs").read_text().split()[0])
