"""Features: Kaldi-compatible fbank, CMVN, the float16 feature store, Kaldi feature import/export."""
