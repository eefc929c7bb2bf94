"""Training stages: frame data, the trainer, baseline / ensemble / distillation / regularizer, evaluation."""
