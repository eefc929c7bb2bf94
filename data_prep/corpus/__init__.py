"""Corpora: LibriSpeech download and layout, the offline synthetic corpus, Kaldi data dirs."""
