"""Alignment: GMM-HMM training, phonetic decision tree, forced alignment, Kaldi alignment import.

``stage`` (``data-prep align``: :func:`run_align`, CLI) runs the ``substages`` (mono, tree, tri, ali/<split>,
each an ``asr_base.stamp.Step``) with the options of ``config``; they train with ``training`` over the
``passes`` of a worker pool on a ``split_data``, using the models of ``gmm`` (diagonal GMMs, torch) and
``hmm`` (Kaldi HMMs, graphs, Viterbi, ``final.mdl``) and the phonetic decision ``tree`` package; ``outputs``
and ``report`` write the per-split files and checks. ``kaldi_ali`` is ``data-prep import-kaldi-ali``.
"""
