"""Acoustic-model building blocks: the DNN, context windows, losses, soft targets of a teacher ensemble."""
