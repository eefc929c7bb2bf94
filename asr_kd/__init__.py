"""asr-kd: distilling an ensemble of hybrid DNN-HMM acoustic models into a single model."""

__version__ = "0.1.0"
