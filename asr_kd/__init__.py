"""asr-kd: acoustic models, teacher ensembles, distillation, decoding, export and report (``asr-kd``).

Layered above :mod:`asr_base` (plumbing) and :mod:`data_prep` (corpora, features, lang, alignment):

- :mod:`asr_kd.nn`: the DNN, context windows, losses, teacher ensembles' soft targets.
- :mod:`asr_kd.training`: frame data, the trainer and the training stages (train, ensemble, distill, ...).
- :mod:`asr_kd.decoding`: LM, HCLG graph, decoder, decoder hook, scoring.
- :mod:`asr_kd.export`, :mod:`asr_kd.report`.
"""

__version__ = "0.1.0"
