"""The one place that imports the ``kaldi_io`` package (Kaldi ark/scp matrices and int vectors).

``kaldi_io`` prints a multi-line "KALDI_ROOT does not exist" banner on import unless ``KALDI_ROOT`` names
an existing directory. A user's real Kaldi install (``KALDI_ROOT`` already set) is left alone; otherwise
the banner is swallowed. Use::

    from asr_base.kaldi_io import kaldi_io
"""

import contextlib
import io
import os

if not os.path.isdir(os.environ.get("KALDI_ROOT", "")):
    os.environ["KALDI_ROOT"] = os.path.dirname(os.path.abspath(__file__))
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    import kaldi_io  # noqa: E402

__all__ = ["kaldi_io"]
