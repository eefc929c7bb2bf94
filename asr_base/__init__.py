"""asr_base: the plumbing every asr-kd stage stands on; it imports nothing from ``data_prep`` or ``asr_kd``.

- :mod:`asr_base.io`: atomic writes, JSON / npy I/O, file hashes.
- :mod:`asr_base.cli`: the subcommand registry of the ``asr-kd`` and ``data-prep`` entry points, logging.
- :mod:`asr_base.config`: typed dataclass configs <-> command-line options, one mechanism for every stage.
- :mod:`asr_base.stamp`: "is this output up to date?" -- fingerprints of options and inputs.
- :mod:`asr_base.kaldi`: the Kaldi extension modules, imported in their one safe order.
- :mod:`asr_base.kaldi_io`: the ``kaldi_io`` package (Kaldi arks/scps), imported quietly.
"""
