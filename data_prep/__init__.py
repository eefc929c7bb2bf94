"""asr-kd data preparation: audio corpora -> Kaldi data dirs -> fbank feature stores -> alignments."""
