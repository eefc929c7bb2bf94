"""Which model scores a feature store -- checkpoint(s), an ensemble dir or an export dir -- and the scorer.

Shared by ``asr-kd decode`` and ``asr-kd loglikes`` (and the ``--model``/``--ensemble`` choice of
``asr-kd export``). Exactly one of ``--model`` (repeatable: the mean posterior of several checkpoints),
``--ensemble DIR`` (its members, found by :func:`asr_kd.nn.model_dirs.member_dirs`) and ``--export DIR``
is given; argparse enforces that with a mutually exclusive group (:func:`add_model_choice`), the one
thing the field options of :mod:`asr_base.config` cannot express.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import torch

from asr_base.config import flag_of, option
from asr_kd.nn.model_dirs import FINAL, member_dirs

DEFAULT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(kw_only=True)
class ScoringConfig:
    """The model side of decoding: model(s), priors, the feature store and how to run the network."""

    model: list[str] = option([], cli=False, help="checkpoint (final.pt); repeat for an ensemble")
    ensemble: str | None = option(None, cli=False, help="ensemble dir: the mean posterior of its member_*/final.pt")
    export: str | None = option(None, cli=False, help="an export dir (asr-kd export) instead of a checkpoint")
    priors: str | None = option(None, help="state counts (exp/tri/pdf_counts.npy); needed with --model/--ensemble")
    prior_floor: float = option(1e-10, help="states with a lower prior are disabled")
    feats: str = option(help="feature store (data/fbank/test)")
    batch_frames: int = option(8192, help="frames per forward pass")
    device: str = option(DEFAULT_DEVICE, help="torch device")

    def checkpoints(self) -> list[str]:
        """The checkpoint files (``--model`` as given, or the ensemble's members); empty with ``--export``."""
        if self.ensemble:
            return [str(d / FINAL) for d in member_dirs(self.ensemble)]
        return list(self.model)


def add_model_choice(parser: argparse.ArgumentParser, cls: type = ScoringConfig,
                     names: tuple[str, ...] = ("model", "ensemble", "export")) -> None:
    """``--model`` (repeatable) | ``--ensemble`` | ``--export``: exactly one, with the help of ``cls``'s fields."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    group = parser.add_mutually_exclusive_group(required=True)
    for name in names:
        f = fields[name]
        group.add_argument(flag_of(f), dest=name, default=argparse.SUPPRESS, help=f.metadata["help"],
                           action="append" if name == "model" else "store")


def make_scorer(cfg: ScoringConfig, store):
    """The scorer (decoder-hook protocol) of ``cfg`` over the feature store ``store``."""
    from asr_kd.decoding.scorer import ModelScorer, ScorerConfig, load_log_priors

    if cfg.export:
        from asr_kd.export.load import load_export

        return load_export(cfg.export).scorer(store)
    models = cfg.checkpoints()
    if not models:
        raise ValueError("give --model, --ensemble or --export")
    if not cfg.priors:
        raise ValueError("--priors (exp/tri/pdf_counts.npy) is required with --model/--ensemble")
    log_priors = load_log_priors(cfg.priors, cfg.prior_floor)
    return ModelScorer.from_checkpoints(models, log_priors, store, ScorerConfig(cfg.batch_frames, cfg.device))
