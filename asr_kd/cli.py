"""``asr-kd``: acoustic models, ensembles, distillation, decoding and export (one subcommand per stage)."""

from __future__ import annotations

import sys

from asr_base.cli import run

# (subcommand, module, one-line help). A module that does not exist yet is simply not offered.
COMMANDS = [
    ("train", "asr_kd.training.train", "train one DNN acoustic model on hard labels (baseline)"),
    ("train-ensemble", "asr_kd.training.ensemble", "train N teacher models from different seeds"),
    ("distill", "asr_kd.training.distill", "distil the teacher ensemble into students at temperatures T"),
    ("codistill", "asr_kd.training.codistill", "codistillation: n models trained together, each distilling the others"),
    ("fitnets", "asr_kd.training.fitnets", "FitNets: hint stage (student layer fitted to a teacher layer), then distil"),
    ("evaluate", "asr_kd.training.evaluate", "frame accuracy of models and ensembles on feature stores"),
    ("regularizer", "asr_kd.training.regularizer", "paper section 6: soft targets as a regularizer on a data fraction"),
    ("make-lm", "asr_kd.decoding.lm", "estimate an n-gram ARPA language model from text"),
    ("make-graph", "asr_kd.decoding.graph", "build the HCLG decoding graph"),
    ("decode", "asr_kd.decoding.decode", "decode with a model through a decoder hook and score WER"),
    ("list-models", "asr_kd.decoding.list_models", "the decodable systems of a run with their model options"),
    ("am-speed", "asr_kd.decoding.am_speed", "acoustic-model speed (frames/s) of models on the CPU"),
    ("decode-speed", "asr_kd.decoding.decode_speed", "RTF and WER of the one-pass decoder per beam on a split"),
    ("align", "asr_kd.decoding.align", "forced alignment with a DNN on a GMM system's HMMs (Kaldi's nnet3/align.sh)"),
    ("loglikes", "asr_kd.decoding.loglikes", "write pseudo-log-likelihoods of a model as a Kaldi ark"),
    ("transcribe", "asr_kd.decoding.transcribe", "transcribe audio files with an export dir and a graph dir"),
    ("export", "asr_kd.export.write", "export a model for a decoder (TorchScript + ONNX + priors + config)"),
    ("report", "asr_kd.report.stage", "write report.md and plots from a run's logs"),
    ("report-seeds", "asr_kd.report.seeds", "Table 1 as mean ± std over runs that differ only in --seed"),
]


def main(argv=None) -> int:
    rc = run("asr-kd", __doc__, COMMANDS, argv)
    if "torch.distributed" in sys.modules:  # a torchrun worker leaves its process group here (see exit_distributed)
        from asr_kd.training.distributed import exit_distributed
        rc = exit_distributed(rc)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
