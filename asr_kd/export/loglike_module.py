"""The exported network: features of one utterance in, unscaled pseudo-log-likelihoods out.

:class:`LoglikeModule` takes CMVN-normalised log-mel features ``(T, D)`` (one utterance) or ``(B, T, D)``
(utterances of equal length), splices the context window inside (frames beyond the edges replicate the
first/last frame, exactly as in training), averages the members' posteriors and returns ``(T, num_pdfs)`` /
``(B, T, num_pdfs)`` of ``log p(s|x) - log p(s)`` -- what Kaldi's ``*-mapped`` decoders read. Only tensor
ops, so TorchScript and ONNX (dynamic batch and time axes) both trace it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asr_kd.decoding.scorer import PosteriorModel


class LoglikeModule(torch.nn.Module):
    """features -> spliced windows -> mean posterior of the member(s) -> log-likelihoods."""

    def __init__(self, members: Sequence[torch.nn.Module], log_priors: np.ndarray, left: int, right: int):
        super().__init__()
        self.net = PosteriorModel(members)
        self.register_buffer("log_priors", torch.as_tensor(np.asarray(log_priors, dtype=np.float32)))
        self.register_buffer("offsets", torch.arange(-left, right + 1, dtype=torch.int64))
        self.left = int(left)
        self.right = int(right)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        single = feats.dim() == 2
        x = feats.unsqueeze(0) if single else feats
        b, t, d = x.shape[0], x.shape[1], x.shape[2]
        frames = torch.arange(t, dtype=torch.int64, device=x.device)
        idx = frames.unsqueeze(1) + self.offsets.unsqueeze(0)
        # clamp to [0, t - 1] with tensor ops only, so the ONNX graph keeps a dynamic time axis
        idx = torch.minimum(torch.clamp(idx, min=0), frames[-1:].unsqueeze(1).expand_as(idx))
        win = x[:, idx.reshape(-1), :].reshape(b * t, self.offsets.shape[0] * d)
        out = (self.net(win.float()) - self.log_priors).reshape(b, t, -1)
        return out[0] if single else out
