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

Word times come from the decoder's best path: the graph's output (word) labels say at which frame each
word was emitted, the per-frame pdfs say which frames are silence (pdfs of the export's silence phones,
from ``final.mdl``); a word spans from its label's frame to the next word's, with silence frames at either
end cut off. Determinization may emit a word label a few frames into the word, so the times are
approximate at word onsets (Kaldi's exact ``lattice-align-words`` needs word-position phones, which our
lang dirs do not have).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.io import write_text
from asr_kd.decoding.decoder import DecodeOutput, DecoderConfig, decode_all, read_words
from asr_kd.decoding.transcribe_audio import extract, normalise, read_utt2spk, resolve_inputs
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
    backend: Literal["torchscript", "onnx"] = option("torchscript", help="which exported model runs")
    jobs: int = option(1, help="processes for features and for decoding")


def word_times(result, num_frames: int, silence_pdfs: np.ndarray) -> list[tuple[int, int]]:
    """``(first frame, end frame)`` of every word of a decode result (see module doc)."""
    f = np.asarray(result.word_frames, dtype=np.int64)
    if f.size == 0:
        return []
    starts = f.copy()
    starts[0] = 0
    ends = np.append(f[1:], num_frames)
    pdfs = result.frame_pdfs
    if pdfs is None or len(pdfs) != num_frames:
        return list(zip(starts.tolist(), ends.tolist()))
    speech = ~silence_pdfs[np.clip(pdfs, 0, len(silence_pdfs) - 1)]
    pos = np.flatnonzero(speech)
    if pos.size == 0:  # nothing but silence on the best path: the raw spans
        return list(zip(starts.tolist(), ends.tolist()))
    before = np.concatenate([[0], np.cumsum(speech)])  # speech frames before frame t
    k0 = before[starts]
    k1 = before[ends] - 1
    has = (k0 < len(pos)) & (k1 >= k0)
    first = np.where(has, pos[np.minimum(k0, len(pos) - 1)], starts)
    last = np.where(has, pos[np.clip(k1, 0, len(pos) - 1)] + 1, ends)
    return list(zip(first.tolist(), last.tolist()))


def silence_pdf_mask(export_dir: Path, num_pdfs: int) -> np.ndarray:
    """True for pdfs used only by silence phones (``silence_phones.txt`` of the export, else ``SIL``)."""
    mask = np.zeros(num_pdfs, bool)
    mdl, phones_txt = export_dir / "final.mdl", export_dir / "phones.txt"
    if not (mdl.is_file() and phones_txt.is_file()):
        log.warning("%s has no final.mdl/phones.txt: CTM word times are not trimmed at silence", export_dir)
        return mask
    from data_prep.align.hmm import read_final_mdl

    phones = dict(line.split()[:2] for line in phones_txt.read_text(encoding="utf-8").splitlines() if line.strip())
    sil_file = export_dir / "silence_phones.txt"
    names = sil_file.read_text(encoding="utf-8").split() if sil_file.is_file() else ["SIL"]
    sil_ids = {int(phones[n]) for n in names if n in phones}
    tup = read_final_mdl(mdl).tuples  # (phone, hmm state, forward pdf, self-loop pdf)
    is_sil = np.isin(tup[:, 0], list(sil_ids))
    used_sil = np.zeros(num_pdfs, bool)
    used_other = np.zeros(num_pdfs, bool)
    for col in (2, 3):
        used_sil[tup[is_sil, col]] = True
        used_other[tup[~is_sil, col]] = True
    mask[:] = used_sil & ~used_other
    return mask


def ctm_lines(out: DecodeOutput, frame_shift: float, silence_pdfs: np.ndarray) -> list[str]:
    lines = []
    for utt in sorted(out.hyps):
        r = out.results[utt]
        for word, (a, b) in zip(out.hyps[utt], word_times(r, r.num_frames, silence_pdfs)):
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
    if fb.num_mel_bins != fc["feat_dim"]:
        raise ValueError(f"{cfg.export}: fbank has {fb.num_mel_bins} bins but the model takes {fc['feat_dim']}")
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


def write_outputs(t: Transcripts, out_dir: Path, silence_pdfs: np.ndarray) -> None:
    """``text``, ``ctm`` and ``skipped.tsv`` in ``out_dir`` (atomic writes)."""
    from data_prep.corpus.skipped import skipped_tsv

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "text", "".join(f"{u} {' '.join(w)}\n" for u, w in sorted(t.out.hyps.items())))
    write_text(out_dir / "ctm", "".join(ctm_lines(t.out, t.frame_shift, silence_pdfs)))
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
        num_pdfs = _num_pdfs(Path(cfg.graph))
        write_outputs(t, Path(cfg.out), silence_pdf_mask(Path(cfg.export), num_pdfs))
    return 0 if t.out.hyps else 1


def _num_pdfs(graph_dir: Path) -> int:
    return int((graph_dir / "num_pdfs").read_text().split()[0])
