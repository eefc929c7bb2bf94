"""Decoding: n-gram LM, HCLG graph, WFST decoder, decoder hook, WER."""
