"""asr-kd data preparation: audio corpora -> Kaldi data dirs -> fbank feature stores -> alignments."""

import asr_kd  # noqa: F401  (sets KALDI_ROOT before kaldi-io is imported anywhere)
