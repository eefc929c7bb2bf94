"""asr-kd data preparation (``data-prep``): corpora -> Kaldi data dirs -> feature stores -> lang -> alignments.

Builds on :mod:`asr_base` only; never imports :mod:`asr_kd`.

- :mod:`data_prep.corpus`: LibriSpeech download, the synthetic corpus, Kaldi data dirs.
- :mod:`data_prep.features`: fbank, CMVN, the float16 feature store, Kaldi feature import/export.
- :mod:`data_prep.lang`: lexicon and lang dir.
- :mod:`data_prep.align`: GMM-HMM training, decision tree, forced alignment, Kaldi alignment import.
"""
