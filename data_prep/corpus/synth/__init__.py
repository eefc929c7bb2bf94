"""Building blocks of the offline synthetic speech corpus (``data-prep synth-corpus``).

- :mod:`data_prep.corpus.synth.text`: harvest English sentences from Debian text packages and normalise them
  to upper-case, CMUdict-covered transcripts that a TTS engine speaks word for word.
- :mod:`data_prep.corpus.synth.voices`: the Debian-main TTS voices (flite, festival, espeak-ng), speaker
  perturbation with sox (speed, tempo, pitch, reverb) and additive noise at a given SNR.
"""
