"""The one place that imports the Kaldi extension modules.

Importing these modules in some orders deadlocks at import time (e.g. ``import kaldilm, kaldifst``).
The order below is known to work, before or after torch. Always import them from here:

    from asr_base.kaldi import kaldifst, kaldi_hmm_gmm, kaldi_decoder, kaldilm
"""

import kaldi_hmm_gmm  # noqa: I001  (order matters, see above)
import kaldifst
import kaldi_decoder
import kaldilm

__all__ = ["kaldi_hmm_gmm", "kaldifst", "kaldi_decoder", "kaldilm"]
