"""``data-prep``: audio corpora -> Kaldi data dirs -> fbank feature stores -> lang dir -> alignments."""

from __future__ import annotations

from asr_kd.cli_registry import run

COMMANDS = [
    ("download", "data_prep.download", "download LibriSpeech parts + lexicon + ARPA LMs (resumable, md5-verified)"),
    ("synth-corpus", "data_prep.synth_corpus", "synthesise the offline mini speech corpus in LibriSpeech layout"),
    ("make-data-dir", "data_prep.librispeech", "LibriSpeech-layout split -> Kaldi data dir (bad input listed)"),
    ("validate-data-dir", "data_prep.validate_data_dir", "check a Kaldi data dir (like validate_data_dir.sh)"),
    ("compute-fbank", "data_prep.fbank", "40-dim log-mel fbank + per-speaker CMVN into a feature store"),
    ("export-kaldi-feats", "data_prep.kaldi_feats", "feature store -> Kaldi feats.ark/feats.scp"),
    ("import-kaldi-feats", "data_prep.kaldi_feats_import", "Kaldi feats.scp -> feature store"),
    ("prepare-lang", "data_prep.lang", "lexicon + Kaldi-style lang dir + L.fst"),
    ("align", "data_prep.align", "flat-start HMM training, decision tree, forced alignment to tied states"),
    ("import-kaldi-ali", "data_prep.kaldi_ali", "Kaldi pdf alignments (ali-to-pdf) -> label arrays"),
]


def main(argv=None) -> int:
    return run("data-prep", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
