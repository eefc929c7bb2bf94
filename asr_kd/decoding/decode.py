"""``asr-kd decode``: score a feature store with a model (or an ensemble, or an export dir), decode
through a decoder hook (built-in WFST decoder or an external command) and compute WER.

Outputs in ``--out`` (e.g. ``exp/decode/student_T2/test``): ``hyp.txt`` (Kaldi text), ``wer.json`` (totals,
failures, decoding speed, config), ``per_utt.tsv``, ``per_spk.tsv`` and ``failed.tsv`` (utterances that
could not be decoded, with the reason; they are scored as all deletions), and ``.stamp.json``
(:mod:`asr_base.stamp`): the stage is skipped when every option and input (checkpoints, priors, graph,
features, reference text) is unchanged, and the log says what changed otherwise (``--force`` redoes it).

Lattice mode (``--lattice-beam`` > 0, :mod:`asr_kd.decoding.lattice`): ``sweep.json`` holds the WER (errors,
words, OOV words) at every (acoustic scale, word insertion penalty) point taken from the lattices --
the sweep grid, the decoding scale without penalty (the untuned point) and the hypothesis' point -- and
``scoring/hyp_<scale>_<penalty>.txt`` the hypotheses of each point. ``--tune-from DEV_DIR`` takes the
hypothesis at the point with the fewest errors in ``DEV_DIR/sweep.json`` (the dev decode of the same
model): dev selects, the split decoded here (test) only reports; the sweep grid is then not evaluated
(only the chosen and the untuned point). ``--select-best`` (on dev itself) makes the hypotheses and
``wer.json`` those of dev's own best point, so that dev and test are reported at the dev-tuned point.
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
from asr_base.io import read_json, write_json, write_text
from asr_base.stamp import STAMP_NAME, Step
from asr_kd.decoding.decoder import DecoderConfig, read_words
from asr_kd.decoding.model_source import ScoringConfig, add_model_choice, make_scorer
from asr_kd.decoding.wer import compute_wer, write_hyps, write_results

log = logging.getLogger(__name__)

SWEEP = "sweep.json"
RESCORE_DIR = "rescore"  # <out>/rescore: sweep.json, hyp.txt, wer.json ... of the LM-rescored lattices


def one_pass_beam(dc: DecoderConfig, scale: float) -> float:
    """The beam of a one-pass search at ``scale`` that prunes as widely as the lattice pass at the decoding scale:
    acoustic cost differences grow with the scale, so the beam grows with it (never below ``dc.beam``). Measured
    on the mini run (ensemble, test, dev's scale 0.20 vs decoding scale 0.14): beam 9 gave 34.11% WER where the
    lattice pass' best path at that point gave 33.18%; beam 9 x 0.20 / 0.14 = 12.9 gave 32.98%."""
    return round(dc.beam * max(1.0, scale / dc.acoustic_scale), 4)


def tuning_dir(tune_from: str | Path, rescored: bool) -> Path:
    return Path(tune_from) / RESCORE_DIR if rescored else Path(tune_from)


def graph_arpa(graph: str | Path) -> str:
    """The ARPA file the graph was built from (its manifest.json's path), checked against the digest there."""
    from asr_base.stamp import path_digest

    manifest = read_json(Path(graph) / "manifest.json")
    path, digest = manifest["paths"]["arpa"], manifest["inputs"]["arpa"]
    if not Path(path).is_file() or path_digest(path) != digest:
        raise ValueError(f"the graph's LM {path} (from {graph}/manifest.json) is missing or changed since the "
                         "graph was built; give --rescore-graph-arpa")
    return path


def best_point(sweep_json: str | Path) -> tuple[float, float]:
    """The (acoustic scale, penalty) with the fewest errors in a ``sweep.json``; ties go to no penalty, then
    to the scale nearest the decoding scale (a deterministic choice)."""
    sweep = read_json(sweep_json)
    s0 = sweep["decode_acoustic_scale"]
    best = min(sweep["points"], key=lambda r: (r["errors"], r["penalty"], abs(r["acoustic_scale"] - s0),
                                                r["acoustic_scale"]))
    return float(best["acoustic_scale"]), float(best["penalty"])


def score_points(cfg: DecodeConfig, result, data, failures: dict, vocab: set, rescored: bool = False) -> dict:
    """Lattice mode: WER at every point of the decoder's sweep -> ``sweep.json`` + ``scoring/hyp_*.txt`` (of
    the LM-rescored best paths in ``rescore/`` with ``rescored``)."""
    from asr_kd.decoding.lattice import point_key

    out = Path(cfg.out) / RESCORE_DIR if rescored else Path(cfg.out)
    words = read_words(Path(cfg.graph) / "words.txt")
    rows = []
    for point in cfg.decoder_config.points(rescored):
        hyps = {u: [words[w] for w in (r.rescored if rescored else r.points)[point]]
                for u, r in result.results.items() if r.ok}
        wer = compute_wer(data.text, hyps, data.utt2spk, failures, vocab)
        write_hyps(out / "scoring" / f"hyp_{point_key(point)}.txt", hyps)
        rows.append({"acoustic_scale": point[0], "lm_weight": round(1.0 / point[0], 4), "penalty": point[1],
                     "wer": round(wer.total.wer, 4), "errors": wer.total.errors, "ref_words": wer.total.ref_words,
                     "oov_ref_words": wer.oov_ref_words})
    sweep = {"decode_acoustic_scale": cfg.decoder_config.acoustic_scale,
             "lattice_beam": cfg.decoder_config.lattice_beam, "one_best": list(cfg.decoder_config.points(rescored)[0]),
             "tuned_on": str(tuning_dir(cfg.tune_from, rescored) / SWEEP) if cfg.tune_from else None, "points": rows}
    if rescored:
        sweep.update(rescore_arpa=cfg.decoder_config.rescore_arpa,
                     graph_arpa=cfg.decoder_config.rescore_graph_arpa)
    write_json(out / SWEEP, sweep)
    return sweep


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
    tune_from: str | None = option(None, help="lattice mode: the dev decode dir of this model whose best sweep "
                                              "point (sweep.json) gives the hypothesis' scale and penalty")
    select_best: bool = option(False, help="lattice mode, on the tuning split (dev): the hypotheses are those of "
                                           "this split's own best sweep point")
    tuned_one_pass: bool = option(False, help="with --tune-from, when the tuned penalty is 0: decode with the "
                                              "one-pass search at the tuned acoustic scale instead of lattices, "
                                              "its beam widened by tuned scale / decoding scale (faster; the same "
                                              "best path up to pruning)")
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
                  text=Path(cfg.data) / "text",
                  tune_from=Path(cfg.tune_from) / SWEEP if cfg.tune_from else None,
                  rescore_arpa=cfg.decoder_config.rescore_arpa, rescore_graph_arpa=cfg.decoder_config.rescore_graph_arpa,
                  rescore_tune_from=(tuning_dir(cfg.tune_from, True) / SWEEP
                                     if cfg.tune_from and cfg.decoder_config.rescore_arpa else None))
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
    if cfg.decoder_config.lattice_beam > 0 and cfg.decoder != "builtin":
        raise ValueError("lattices (--lattice-beam > 0) need the built-in decoder")
    if cfg.select_best and cfg.decoder_config.lattice_beam <= 0:
        raise ValueError("--select-best needs lattices (--lattice-beam > 0)")
    if cfg.tune_from:
        if cfg.decoder_config.lattice_beam <= 0:
            raise ValueError("--tune-from needs lattices (--lattice-beam > 0)")
        tuned = best_point(Path(cfg.tune_from) / SWEEP)
        rescore = cfg.decoder_config.rescore_arpa
        if rescore:
            cfg = dataclasses.replace(cfg, decoder_config=dataclasses.replace(
                cfg.decoder_config, rescore_one_best=best_point(tuning_dir(cfg.tune_from, True) / SWEEP)))
        if cfg.tuned_one_pass and tuned[1] == 0.0 and not rescore:  # search at the tuned scale, one pass
            dc = dataclasses.replace(cfg.decoder_config, acoustic_scale=tuned[0], lattice_beam=0.0, one_best=(),
                                     sweep_acoustic_scales=[], sweep_penalties=[0.0],
                                     beam=one_pass_beam(cfg.decoder_config, tuned[0]))
        else:
            dc = dataclasses.replace(cfg.decoder_config, one_best=tuned, sweep_acoustic_scales=[],
                                     sweep_penalties=[0.0])
        cfg = dataclasses.replace(cfg, decoder_config=dc)
        log.info("%s: hypotheses at acoustic scale %g, penalty %g (best on %s; %s)", out, *tuned, cfg.tune_from,
                 "lattice best path" if dc.lattice_beam > 0 else "one-pass search at that scale")
    if cfg.decoder_config.rescore_arpa and not cfg.decoder_config.rescore_graph_arpa:
        cfg = dataclasses.replace(cfg, decoder_config=dataclasses.replace(
            cfg.decoder_config, rescore_graph_arpa=graph_arpa(cfg.graph)))
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
    sweep = score_points(cfg, result, data, failures, vocab) if cfg.decoder_config.lattice_beam > 0 else None
    if sweep is not None and cfg.select_best:
        result.hyps = select_best(out, result, read_words(Path(cfg.graph) / "words.txt"), sweep, False)
    rescored = None
    if sweep is not None and cfg.decoder_config.rescore_arpa:
        rescored = rescored_results(cfg, result, data, failures, vocab)
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
    if cfg.tune_from and cfg.decoder_config.lattice_beam <= 0:  # --tuned-one-pass
        extra.update(one_best=list(best_point(Path(cfg.tune_from) / SWEEP)), search="one-pass")
    if sweep is not None:
        s0 = cfg.decoder_config.acoustic_scale
        untuned = next(r for r in sweep["points"] if (r["acoustic_scale"], r["penalty"]) == (s0, 0.0))
        extra.update(one_best=sweep["one_best"], untuned_wer=untuned["wer"],
                     lattice_beam=cfg.decoder_config.lattice_beam)
    if rescored is not None:
        extra["rescored"] = rescored
    summary = write_results(out, wer, extra)
    step.done(wer=summary["wer"])
    log.info("%s: WER %.2f%% (%d/%d words; S=%d D=%d I=%d), %d failed, RTF %.3f", out, wer.total.wer,
             wer.total.errors, wer.total.ref_words, wer.total.substitutions, wer.total.deletions,
             wer.total.insertions, wer.num_failed, extra["rtf"] or float("nan"))
    return summary


def select_best(out: Path, result, words: list[str], sweep: dict, rescored: bool) -> dict[str, list[str]]:
    """--select-best: the hypotheses at this split's own best point of ``sweep`` (rewritten with that point)."""
    d = out / RESCORE_DIR if rescored else out
    point = best_point(d / SWEEP)
    sweep["one_best"] = list(point)
    write_json(d / SWEEP, sweep)
    return {u: [words[w] for w in (r.rescored if rescored else r.points)[point]]
            for u, r in result.results.items() if r.ok}


def rescored_results(cfg: DecodeConfig, result, data, failures: dict, vocab: set) -> dict:
    """The LM-rescored sweep, hypotheses and WER in ``<out>/rescore``; returns the summary for wer.json."""
    out = Path(cfg.out) / RESCORE_DIR
    words = read_words(Path(cfg.graph) / "words.txt")
    sweep = score_points(cfg, result, data, failures, vocab, rescored=True)
    point = tuple(sweep["one_best"])
    if cfg.select_best:
        hyps = select_best(Path(cfg.out), result, words, sweep, True)
        point = tuple(sweep["one_best"])
    else:
        hyps = {u: [words[w] for w in r.rescored[point]] for u, r in result.results.items() if r.ok}
    wer = compute_wer(data.text, hyps, data.utt2spk, failures, vocab)
    write_hyps(out / "hyp.txt", hyps)
    s0 = cfg.decoder_config.acoustic_scale
    untuned = next(r for r in sweep["points"] if (r["acoustic_scale"], r["penalty"]) == (s0, 0.0))
    summary = write_results(out, wer, {"one_best": list(point), "untuned_wer": untuned["wer"],
                                       "rescore_arpa": sweep["rescore_arpa"], "graph_arpa": sweep["graph_arpa"]})
    log.info("%s: rescored with %s: WER %.2f%% at acoustic scale %g, penalty %g", cfg.out, sweep["rescore_arpa"],
             wer.total.wer, *point)
    return {k: summary[k] for k in ("wer", "errors", "ref_words", "one_best", "rescore_arpa")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_choice(parser)
    add_options(parser, ScoringConfig)
    add_options(parser, DecodeConfig)
    add_options(parser, DecoderConfig, title="decoder")


def main(args: argparse.Namespace) -> int:
    run_decode(from_args(DecodeConfig, args, scoring=from_args(ScoringConfig, args),
                         decoder_config=from_args(DecoderConfig, args)))
    return 0
