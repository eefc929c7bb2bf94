"""``data-prep``: audio corpora -> Kaldi data dirs -> fbank feature stores -> lang dir -> alignments."""

from __future__ import annotations

from asr_base.cli import run

COMMANDS = [
    ("download", "data_prep.corpus.download", "download LibriSpeech parts + lexicon + ARPA LMs (resumable, md5-verified)"),
    ("synth-corpus", "data_prep.corpus.synth.synth_corpus", "synthesise the offline mini speech corpus in LibriSpeech layout"),
    ("make-data-dir", "data_prep.corpus.librispeech", "LibriSpeech-layout split -> Kaldi data dir (bad input listed)"),
    ("prepare-fsdd", "data_prep.corpus.fsdd", "Free Spoken Digit Dataset (8 kHz) -> Kaldi data dirs split by speaker"),
    ("combine-data-dirs", "data_prep.corpus.combine_data_dirs", "several Kaldi data dirs -> one (like utils/combine_data.sh)"),
    ("validate-data-dir", "data_prep.corpus.validate_data_dir", "check a Kaldi data dir (like validate_data_dir.sh)"),
    ("compute-fbank", "data_prep.features.fbank", "40-dim log-mel fbank + per-speaker CMVN into a feature store"),
    ("export-kaldi-feats", "data_prep.features.kaldi_feats_export", "feature store -> Kaldi feats.ark/feats.scp"),
    ("import-kaldi-feats", "data_prep.features.kaldi_feats_import", "Kaldi feats.scp -> feature store"),
    ("prepare-lang", "data_prep.lang.prepare_lang", "lexicon + Kaldi-style lang dir + L.fst"),
    ("align", "data_prep.align.stage", "flat-start HMM training, decision tree, forced alignment to tied states"),
    ("import-kaldi-ali", "data_prep.align.kaldi_ali", "Kaldi pdf alignments (ali-to-pdf) -> label arrays"),
    ("import-kaldi-system", "data_prep.align.kaldi_system",
     "a Kaldi GMM system (ali.*.gz, tree, final.mdl, lang dir) -> exp/tri for graph, decoding and export"),
]


def main(argv=None) -> int:
    return run("data-prep", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
