"""Export of a model for a decoder (TorchScript + ONNX + priors + feature config)."""
