"""Alignment: GMM-HMM training, phonetic decision tree, forced alignment, Kaldi alignment import."""
