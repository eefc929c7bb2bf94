"""``asr-kd decode-speed``: real-time factor and WER of the built-in one-pass decoder per beam, on a real split.

The model (an export dir) scores the split's feature store once; every beam then decodes the same
log-likelihoods with the same ``--max-active`` and acoustic scale (``--tune-from DEV_DECODE_DIR``: the scale of
dev's best point in its ``sweep.json``, as the recipe's test decoding uses). Per beam: decoding wall time /
audio time (RTF with ``--num-jobs`` processes), decoder CPU time / audio time (one core), WER and failures.
Writes ``--out`` (JSON; the report draws it as an RTF-WER curve) and is skipped when up to date (stamp).
``benchmarks/bench_decode.py`` has the synthetic-graph variant.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.io import read_json, write_json
from asr_base.stamp import STAMP_NAME, Step

log = logging.getLogger(__name__)


@dataclass
class DecodeSpeedConfig:
    export: str = option(help="export dir (asr-kd export)")
    graph: str = option(help="graph dir (asr-kd make-graph)")
    feats: str = option(help="feature store of the split (data/fbank/test)")
    data: str = option(help="data dir with the reference text (data/test)")
    out: str = option(help="results JSON (exp/results/decode_speed_test.json)")
    beams: list[float] = option([7.0, 9.0, 11.0, 13.0], help="decoding beams")
    max_active: int = option(3000, help="maximum active tokens per frame (the same for every beam)")
    acoustic_scale: float = option(0.1, help="acoustic scale (overridden by --tune-from)")
    tune_from: str | None = option(None, help="a dev decode dir of the same model: its best sweep point's scale")
    num_jobs: int = option(1, help="decoder processes")
    force: bool = option(False, help="redo even if up to date")


def _cpu_seconds() -> float:
    c, s = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime + s.ru_utime + s.ru_stime


def run_decode_speed(cfg: DecodeSpeedConfig) -> dict:
    from asr_kd.decoding.decode import SWEEP, best_point
    from asr_kd.decoding.decoder import DecoderConfig, decode_matrices
    from asr_kd.decoding.wer import compute_wer
    from asr_kd.export.load import load_export
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import FeatureStore

    out = Path(cfg.out)
    scale = best_point(Path(cfg.tune_from) / SWEEP)[0] if cfg.tune_from else cfg.acoustic_scale
    step = Step(out.with_name(out.name + STAMP_NAME), f"decode-speed {out}",
                config={k: v for k, v in vars(cfg).items() if k not in ("force", "num_jobs", "out")} | {"scale": scale},
                inputs={"export": Path(cfg.export) / "manifest.json", "graph": Path(cfg.graph) / "HCLG.fst",
                        "feats": Path(cfg.feats) / "feats.npy", "text": Path(cfg.data) / "text"})
    if out.is_file() and step.up_to_date(cfg.force):
        return read_json(out)
    store = FeatureStore.open(cfg.feats)
    data = DataDir.load(cfg.data)
    t0 = time.perf_counter()
    items = dict(iter(load_export(cfg.export).scorer(store)))
    score_s = time.perf_counter() - t0
    audio = sum(m.shape[0] for m in items.values()) * store.frame_shift
    rows = []
    for beam in sorted(set(cfg.beams)):
        dc = DecoderConfig(beam=beam, max_active=cfg.max_active, acoustic_scale=scale, num_jobs=cfg.num_jobs)
        c0, t0 = _cpu_seconds(), time.perf_counter()
        res = decode_matrices(cfg.graph, items, dc)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        w = compute_wer({u: data.text[u] for u in items if u in data.text}, res.hyps, data.utt2spk, res.failures)
        rows.append({"beam": beam, "rtf": round(wall / audio, 5), "cpu_rtf": round(cpu / audio, 5),
                     "wer": round(w.total.wer, 4), "errors": w.total.errors, "failed": len(res.failures)})
        log.info("beam %g: RTF %.4f (CPU %.4f), WER %.2f%%, %d failed", beam, wall / audio, cpu / audio,
                 w.total.wer, len(res.failures))
    result = {"split": Path(cfg.feats).name, "export": cfg.export, "graph": cfg.graph, "utterances": len(items),
              "audio_seconds": round(audio, 2), "scoring_seconds": round(score_s, 2), "acoustic_scale": scale,
              "tuned_on": cfg.tune_from, "max_active": cfg.max_active, "num_jobs": cfg.num_jobs, "rows": rows}
    write_json(out, result)
    step.done()
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, DecodeSpeedConfig)


def main(args: argparse.Namespace) -> int:
    run_decode_speed(from_args(DecodeSpeedConfig, args))
    return 0
