"""The one place that imports the Kaldi extension modules.

Importing these modules in some orders deadlocks at import time (e.g. ``import kaldilm, kaldifst``).
The order below is known to work, before or after torch. Always import them from here:

    from asr_base.kaldi import kaldifst, kaldi_hmm_gmm, kaldi_decoder, kaldilm
"""

import kaldi_hmm_gmm  # noqa: I001  (order matters, see above)
import kaldifst
import kaldi_decoder
import kaldilm

__all__ = ["kaldi_hmm_gmm", "kaldifst", "kaldi_decoder", "kaldilm", "load_context_dependency"]


def load_context_dependency(tree_path):
    """A Kaldi binary ``tree`` file -> ``kaldi_hmm_gmm.ContextDependency`` (its pickle state is the Kaldi
    binary serialisation, so any Kaldi tree -- ours from data_prep.align.tree.event_map or Kaldi's -- loads)."""
    from pathlib import Path

    import numpy as np

    data = Path(tree_path).read_bytes()
    if data.startswith(b"\0B"):
        data = data[2:]
    if not data.startswith(b"ContextDependency"):
        raise ValueError(f"{tree_path} is not a Kaldi binary tree (ContextDependency) file")
    ctx = kaldi_hmm_gmm.ContextDependency.__new__(kaldi_hmm_gmm.ContextDependency)
    ctx.__setstate__((np.frombuffer(data, dtype=np.int8).tolist(),))
    return ctx
