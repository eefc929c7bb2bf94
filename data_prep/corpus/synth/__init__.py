"""Building blocks of the offline synthetic speech corpus (``data-prep synth-corpus``).

- :mod:`data_prep.corpus.synth.text`: harvest English sentences from Debian text packages and normalise them
  to upper-case, CMUdict-covered transcripts that a TTS engine speaks word for word.
- :mod:`data_prep.corpus.synth.voices`: the Debian-main TTS voices (flite, festival, espeak-ng), speaker
  perturbation with sox (speed, tempo, pitch, reverb) and additive noise at a given SNR.
- :mod:`data_prep.corpus.synth.synth_config`: the options that determine the corpus (and the ``--tiny`` preset).
- :mod:`data_prep.corpus.synth.plan`: every random choice, made up front (speakers, sentence pools, chapters).
- :mod:`data_prep.corpus.synth.chapters`: render one planned chapter in a worker; its crash-safe state file.
- :mod:`data_prep.corpus.synth.synth_corpus`: the stage (resume, up-to-date stamp, manifest, CLI).
"""
