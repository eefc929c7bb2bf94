"""``asr-kd loglikes``: any model (checkpoint, ensemble or export dir) -> Kaldi ark of pseudo-log-likelihoods.

Writes ``<out>/loglikes.ark`` + ``loglikes.scp`` (binary float matrices, one per utterance, written with
kaldi-io) with the *unscaled* ``log p(s|x) - log p(s)``, column j = pdf j of the tree, ready for Kaldi's
``latgen-faster-mapped --acoustic-scale=0.1 final.mdl HCLG.fst scp:loglikes.scp ...``. Utterances
with no frames are listed in ``<out>/skipped.tsv`` and left out of the ark (Kaldi decoders reject them).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from asr_base.io import write_json, write_text

log = logging.getLogger(__name__)


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
    from asr_kd.decoding.decode import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output dir for loglikes.ark/.scp")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the log-likelihoods (keep 1.0 and use the decoder's --acoustic-scale)")


def main(args: argparse.Namespace) -> int:
    from asr_kd.decoding.decode import DecodeJob, make_scorer, model_paths
    from data_prep.features.store import FeatureStore

    job = DecodeJob(feats=args.feats, data="", graph="", out=args.out, models=model_paths(args), export=args.export,
                    priors=args.priors, prior_floor=args.prior_floor, batch_frames=args.batch_frames,
                    device=args.device)
    scorer = make_scorer(job, FeatureStore.open(args.feats))
    write_model_loglikes(scorer, args.out, args.scale)
    return 0
