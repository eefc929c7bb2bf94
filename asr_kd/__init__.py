"""asr-kd: distilling an ensemble of hybrid DNN-HMM acoustic models into a single model."""

import os as _os

# kaldi-io prints a multi-line "KALDI_ROOT does not exist" banner on import unless KALDI_ROOT names an
# existing directory. A user's real Kaldi install (KALDI_ROOT already set) is left alone.
_os.environ.setdefault("KALDI_ROOT", _os.path.dirname(_os.path.abspath(__file__)))

__version__ = "0.1.0"
