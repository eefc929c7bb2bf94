"""``asr-kd decode``: score a feature store with a model (or an ensemble, or an export dir), decode
through a decoder hook (built-in WFST decoder or an external command) and compute WER.

Outputs in ``--out`` (e.g. ``exp/decode/T2/test``): ``hyp.txt`` (Kaldi text), ``wer.json`` (totals,
failures, decoding speed, config), ``per_utt.tsv``, ``per_spk.tsv`` and ``failed.tsv`` (utterances that
could not be decoded, with the reason; they are scored as all deletions). The stage is skipped when
``wer.json`` exists with the same inputs and options (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from asr_kd.decoding.decoder import DecoderConfig, read_words
from asr_base.io import read_json, write_text
from asr_kd.decoding.wer import compute_wer, write_hyps, write_results

log = logging.getLogger(__name__)


@dataclass
class DecodeJob:
    feats: str
    data: str
    graph: str
    out: str
    models: list[str] = field(default_factory=list)
    export: str | None = None
    priors: str | None = None
    prior_floor: float = 1e-10
    decoder: str = "builtin"
    external_cmd: str | None = None
    external_format: str = "text"
    batch_frames: int = 8192
    device: str = "cpu"
    decoder_config: DecoderConfig = field(default_factory=DecoderConfig)


def ensemble_members(directory: str | os.PathLike) -> list[str]:
    """``DIR/*/final.pt`` (one sub-directory per member), sorted."""
    paths = sorted(glob.glob(os.path.join(str(directory), "*", "final.pt")))
    if not paths:
        raise FileNotFoundError(f"no ensemble members (*/final.pt) under {directory}")
    return paths


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def fingerprint(job: DecodeJob) -> dict:
    files = [*job.models, job.priors, os.path.join(job.graph, "HCLG.fst"), os.path.join(job.feats, "feats.npy"),
             os.path.join(job.data, "text")]
    if job.export:
        files.append(os.path.join(job.export, "manifest.json"))
    fp = {"job": asdict(job), "inputs": {f: _stamp(f) for f in files if f and os.path.exists(f)}}
    return json.loads(json.dumps(fp))  # as it reads back from wer.json (tuples -> lists)


def make_scorer(job: DecodeJob, store):
    from asr_kd.decoding.scorer import ModelScorer, ScorerConfig, load_log_priors

    if job.export:
        from asr_kd.export.export import load_export

        return load_export(job.export).scorer(store, ScorerConfig(job.batch_frames, job.device))
    if not job.models:
        raise ValueError("give --model, --ensemble or --export")
    if not job.priors:
        raise ValueError("--priors (exp/tri/pdf_counts.npy) is required with --model/--ensemble")
    log_priors = load_log_priors(job.priors, job.prior_floor)
    return ModelScorer.from_checkpoints(job.models, log_priors, store, ScorerConfig(job.batch_frames, job.device))


def make_decoder(job: DecodeJob, num_pdfs: int):
    from asr_kd.decoding.decoder_hook import BuiltinWfstDecoder, ExternalDecoder

    if job.decoder == "builtin":
        return BuiltinWfstDecoder(job.graph, job.decoder_config)
    if job.decoder == "external":
        if not job.external_cmd:
            raise ValueError("--decoder external needs --external-cmd")
        return ExternalDecoder(job.external_cmd, Path(job.out) / "external", job.external_format,
                               graph_dir=Path(job.graph), config=job.decoder_config, num_pdfs=num_pdfs)
    raise ValueError(f"unknown decoder {job.decoder!r}")


def run_decode(job: DecodeJob, force: bool = False) -> dict:
    """Decode + score one (model, split); returns the wer.json content."""
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import FeatureStore

    out = Path(job.out)
    fp = fingerprint(job)
    if not force and (out / "wer.json").is_file():
        prev = read_json(out / "wer.json")
        if prev.get("fingerprint") == fp:
            log.info("%s is up to date (WER %.2f%%); use --force to redo", out, prev.get("wer") or float("nan"))
            return prev
    store = FeatureStore.open(job.feats)
    data = DataDir.load(job.data)
    graph_num_pdfs = Path(job.graph) / "num_pdfs"
    scorer = make_scorer(job, store)
    if graph_num_pdfs.is_file():
        g = int(graph_num_pdfs.read_text().split()[0])
        if g != scorer.num_pdfs:
            raise ValueError(f"the model has {scorer.num_pdfs} outputs but the graph {job.graph} has {g} pdfs "
                             "(built from a different tree?)")
    decoder = make_decoder(job, scorer.num_pdfs)
    t0 = time.perf_counter()
    result = decoder.decode(iter(scorer), total=len(scorer))
    seconds = time.perf_counter() - t0
    failures = dict(result.failures)
    in_store = set(store.utt_ids)
    for utt in data.text:
        if utt not in in_store:
            failures.setdefault(utt, "no features (not in the feature store; see its skipped.tsv)")
    vocab = set(read_words(Path(job.graph) / "words.txt"))
    wer = compute_wer(data.text, result.hyps, data.utt2spk, failures, vocab)
    write_hyps(out / "hyp.txt", result.hyps)
    write_text(out / "failed.tsv", "utt\treason\n" + "".join(f"{u}\t{r}\n" for u, r in sorted(failures.items())))
    frames = int(sum(r.num_frames for r in result.results.values()))
    audio_s = frames * 0.01
    extra = {"fingerprint": fp, "frames": frames, "audio_seconds": round(audio_s, 2),
             "score_and_decode_seconds": round(seconds, 2),
             "rtf": round(seconds / audio_s, 4) if audio_s else None,
             "retried": sum(r.status == "retried" for r in result.results.values()),
             "decoder": job.decoder, "models": job.models or [job.export]}
    summary = write_results(out, wer, extra)
    log.info("%s: WER %.2f%% (%d/%d words; S=%d D=%d I=%d), %d failed, RTF %.3f", out, wer.total.wer,
             wer.total.errors, wer.total.ref_words, wer.total.substitutions, wer.total.deletions,
             wer.total.insertions, wer.num_failed, extra["rtf"] or float("nan"))
    return summary


def add_decoder_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("decoder")
    g.add_argument("--beam", type=float, default=13.0, help="decoding beam")
    g.add_argument("--retry-beam", type=float, nargs="*", default=[26.0],
                   help="wider beams tried when no token reaches a final state")
    g.add_argument("--max-active", type=int, default=7000, help="maximum active tokens per frame")
    g.add_argument("--acoustic-scale", type=float, default=0.1, help="scale of the log-likelihoods")
    g.add_argument("--num-jobs", type=int, default=0, help="decoder processes (0: all cores)")


def decoder_config(args: argparse.Namespace) -> DecoderConfig:
    return DecoderConfig(beam=args.beam, max_active=args.max_active, acoustic_scale=args.acoustic_scale,
                         retry_beams=tuple(args.retry_beam), num_jobs=args.num_jobs)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    m = parser.add_mutually_exclusive_group(required=True)
    m.add_argument("--model", action="append", help="checkpoint (final.pt); repeat for an ensemble")
    m.add_argument("--ensemble", help="ensemble dir: the mean posterior of DIR/*/final.pt")
    m.add_argument("--export", help="an export dir (asr-kd export) instead of a checkpoint")
    parser.add_argument("--priors", help="state counts (exp/tri/pdf_counts.npy)")
    parser.add_argument("--prior-floor", type=float, default=1e-10, help="states with a lower prior are disabled")
    parser.add_argument("--feats", required=True, help="feature store (data/fbank/test)")
    parser.add_argument("--batch-frames", type=int, default=8192, help="frames per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")


def model_paths(args: argparse.Namespace) -> list[str]:
    if args.ensemble:
        return ensemble_members(args.ensemble)
    return list(args.model or [])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="data dir with the reference text (data/test)")
    parser.add_argument("--graph", required=True, help="graph dir (asr-kd make-graph)")
    parser.add_argument("--out", required=True, help="output dir (exp/decode/<model>/<split>)")
    parser.add_argument("--decoder", choices=("builtin", "external"), default="builtin", help="decoder hook")
    parser.add_argument("--external-cmd", help="command template for --decoder external (see asr_kd.decoding.decoder_hook)")
    parser.add_argument("--external-format", choices=("text", "ctm"), default="text",
                        help="format of the external decoder's {hyp} output")
    add_decoder_arguments(parser)
    parser.add_argument("--force", action="store_true", help="redo even if wer.json is up to date")


def main(args: argparse.Namespace) -> int:
    job = DecodeJob(feats=args.feats, data=args.data, graph=args.graph, out=args.out, models=model_paths(args),
                    export=args.export, priors=args.priors, prior_floor=args.prior_floor, decoder=args.decoder,
                    external_cmd=args.external_cmd, external_format=args.external_format,
                    batch_frames=args.batch_frames, device=args.device, decoder_config=decoder_config(args))
    run_decode(job, force=args.force)
    return 0

