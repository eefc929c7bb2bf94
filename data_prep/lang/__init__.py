"""Lexicon and Kaldi-style lang dir."""
