"""``asr-kd loglikes``: any model (checkpoint, ensemble or export dir) -> Kaldi ark of pseudo-log-likelihoods.

Writes ``<out>/loglikes.ark`` + ``loglikes.scp`` (binary float matrices, one per utterance, written with
kaldi-io) with the *unscaled* ``log p(s|x) - log p(s)``, column j = pdf j of the tree, ready for Kaldi's
``latgen-faster-mapped --acoustic-scale=0.1 final.mdl HCLG.fst scp:loglikes.scp ...``. Utterances
with no frames are listed in ``<out>/skipped.tsv`` and left out of the ark (Kaldi decoders reject them).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_base.config import add_options, from_args, option
from asr_base.io import write_json, write_text
from asr_kd.decoding.model_source import ScoringConfig, add_model_choice, make_scorer

log = logging.getLogger(__name__)


@dataclass
class LoglikesConfig:
    out: str = option(help="output dir for loglikes.ark/.scp")
    scale: float = option(1.0, help="multiply the log-likelihoods (keep 1.0 and use the decoder's --acoustic-scale)")


def write_model_loglikes(scorer, out_dir: str | Path, scale: float = 1.0) -> dict:
    from asr_kd.decoding.decoder_hook import write_loglikes_ark

    out_dir = Path(out_dir)
    skipped: dict[str, str] = {}

    def items():
        for utt, m in scorer:
            if m.shape[0] == 0:
                skipped[utt] = "no frames"
                continue
            if not np.isfinite(m).all():
                skipped[utt] = "non-finite log-likelihoods"
                continue
            yield utt, m * np.float32(scale) if scale != 1.0 else m

    utts, frames = write_loglikes_ark(out_dir / "loglikes.ark", out_dir / "loglikes.scp", items(), len(scorer))
    write_text(out_dir / "skipped.tsv", "utt\treason\n" + "".join(f"{u}\t{r}\n" for u, r in sorted(skipped.items())))
    info = {"utterances": len(utts), "frames": frames, "skipped": len(skipped), "num_pdfs": scorer.num_pdfs,
            "scale": scale}
    write_json(out_dir / "loglikes.json", info)
    log.info("%s: %d utterances, %d frames, %d skipped", out_dir / "loglikes.ark", len(utts), frames, len(skipped))
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_choice(parser)
    add_options(parser, ScoringConfig)
    add_options(parser, LoglikesConfig)


def main(args: argparse.Namespace) -> int:
    from data_prep.features.store import FeatureStore

    scoring, cfg = from_args(ScoringConfig, args), from_args(LoglikesConfig, args)
    write_model_loglikes(make_scorer(scoring, FeatureStore.open(scoring.feats)), cfg.out, cfg.scale)
    return 0
