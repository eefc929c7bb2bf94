"""``asr-kd decode``: score a feature store with a model (or an ensemble, or an export dir), decode
through a decoder hook (built-in WFST decoder or an external command) and compute WER.

Outputs in ``--out`` (e.g. ``exp/decode/student_T2/test``): ``hyp.txt`` (Kaldi text), ``wer.json`` (totals,
failures, decoding speed, config), ``per_utt.tsv``, ``per_spk.tsv`` and ``failed.tsv`` (utterances that
could not be decoded, with the reason; they are scored as all deletions), and ``.stamp.json``
(:mod:`asr_base.stamp`): the stage is skipped when every option and input (checkpoints, priors, graph,
features, reference text) is unchanged, and the log says what changed otherwise (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asr_base.config import add_options, from_args, option, to_dict
from asr_base.io import read_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from asr_kd.decoding.decoder import DecoderConfig, read_words
from asr_kd.decoding.model_source import ScoringConfig, add_model_choice, make_scorer
from asr_kd.decoding.wer import compute_wer, write_hyps, write_results

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DecodeConfig:
    """One decode: (model, split) -> hypotheses and WER. ``scoring`` and ``decoder`` are nested configs."""

    data: str = option(help="data dir with the reference text (data/test)")
    graph: str = option(help="graph dir (asr-kd make-graph)")
    out: str = option(help="output dir (exp/decode/<model>/<split>)")
    decoder: Literal["builtin", "external"] = option("builtin", help="decoder hook")
    external_cmd: str | None = option(None, help="command template for --decoder external "
                                                 "(see asr_kd.decoding.decoder_hook)")
    external_format: Literal["text", "ctm"] = option("text", help="format of the external decoder's {hyp} output")
    force: bool = option(False, help="redo even if wer.json is up to date")
    scoring: ScoringConfig = option(cli=False)
    decoder_config: DecoderConfig = dataclasses.field(default_factory=DecoderConfig, metadata={"cli": False})


def decode_step(cfg: DecodeConfig) -> Step:
    """The up-to-date check of one decode: every option that can change the hypotheses (not ``--force``, nor
    the speed-only ``--num-jobs``, ``--batch-frames``, ``--device``) and every input file."""
    s = cfg.scoring
    config = to_dict(dataclasses.replace(cfg, force=False))
    config["decoder_config"].pop("num_jobs")
    for speed_only in ("batch_frames", "device"):
        config["scoring"].pop(speed_only)
    inputs: dict[str, str | Path | None] = {f"model{i}": p for i, p in enumerate(s.checkpoints())}
    inputs.update(priors=s.priors, export=Path(s.export) / "manifest.json" if s.export else None,
                  graph=Path(cfg.graph) / "HCLG.fst", words=Path(cfg.graph) / "words.txt",
                  feats=Path(s.feats) / "feats.npy", feats_index=Path(s.feats) / "index.tsv",
                  text=Path(cfg.data) / "text")
    return Step(Path(cfg.out) / STAMP_NAME, f"decode {cfg.out}", config=config, inputs=inputs)


def make_decoder(cfg: DecodeConfig, num_pdfs: int, frame_shift: float):
    from asr_kd.decoding.decoder_hook import BuiltinWfstDecoder, ExternalDecoder

    if cfg.decoder == "builtin":
        return BuiltinWfstDecoder(cfg.graph, cfg.decoder_config)
    if not cfg.external_cmd:
        raise ValueError("--decoder external needs --external-cmd")
    return ExternalDecoder(cfg.external_cmd, Path(cfg.out) / "external", cfg.external_format,
                           graph_dir=Path(cfg.graph), config=cfg.decoder_config, num_pdfs=num_pdfs,
                           frame_shift=frame_shift)


def run_decode(cfg: DecodeConfig) -> dict:
    """Decode + score one (model, split); returns the wer.json content."""
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import FeatureStore

    out = Path(cfg.out)
    step = decode_step(cfg)
    if (out / "wer.json").is_file() and step.up_to_date(cfg.force):
        return read_json(out / "wer.json")
    store = FeatureStore.open(cfg.scoring.feats)
    data = DataDir.load(cfg.data)
    graph_num_pdfs = Path(cfg.graph) / "num_pdfs"
    scorer = make_scorer(cfg.scoring, store)
    if graph_num_pdfs.is_file():
        g = int(graph_num_pdfs.read_text().split()[0])
        if g != scorer.num_pdfs:
            raise ValueError(f"the model has {scorer.num_pdfs} outputs but the graph {cfg.graph} has {g} pdfs "
                             "(built from a different tree?)")
    decoder = make_decoder(cfg, scorer.num_pdfs, store.frame_shift)
    t0 = time.perf_counter()
    result = decoder.decode(iter(scorer), total=len(scorer))
    seconds = time.perf_counter() - t0
    failures = dict(result.failures)
    in_store = set(store.utt_ids)
    for utt in data.text:
        if utt not in in_store:
            failures.setdefault(utt, "no features (not in the feature store; see its skipped.tsv)")
    vocab = set(read_words(Path(cfg.graph) / "words.txt"))
    wer = compute_wer(data.text, result.hyps, data.utt2spk, failures, vocab)
    write_hyps(out / "hyp.txt", result.hyps)
    write_text(out / "failed.tsv", "utt\treason\n" + "".join(f"{u}\t{r}\n" for u, r in sorted(failures.items())))
    frames = int(sum(r.num_frames for r in result.results.values()))
    audio_s = frames * store.frame_shift
    extra = {"config": to_dict(dataclasses.replace(cfg, force=False)), "frames": frames,
             "audio_seconds": round(audio_s, 2), "score_and_decode_seconds": round(seconds, 2),
             "rtf": round(seconds / audio_s, 4) if audio_s else None,
             "retried": sum(r.status == "retried" for r in result.results.values()),
             "decoder": cfg.decoder, "models": cfg.scoring.checkpoints() or [cfg.scoring.export]}
    summary = write_results(out, wer, extra)
    step.done(wer=summary["wer"])
    log.info("%s: WER %.2f%% (%d/%d words; S=%d D=%d I=%d), %d failed, RTF %.3f", out, wer.total.wer,
             wer.total.errors, wer.total.ref_words, wer.total.substitutions, wer.total.deletions,
             wer.total.insertions, wer.num_failed, extra["rtf"] or float("nan"))
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_choice(parser)
    add_options(parser, ScoringConfig)
    add_options(parser, DecodeConfig)
    add_options(parser, DecoderConfig, title="decoder")


def main(args: argparse.Namespace) -> int:
    run_decode(from_args(DecodeConfig, args, scoring=from_args(ScoringConfig, args),
                         decoder_config=from_args(DecoderConfig, args)))
    return 0
