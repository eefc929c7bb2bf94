"""Load an export dir (``asr-kd export``) with nothing but torch or onnxruntime: a scorer from the files alone.

:func:`load_export` checks every file against the manifest's sha256, loads the TorchScript module (or an
onnxruntime session) and returns an :class:`ExportedModel`; its :meth:`~ExportedModel.scorer` follows the
decoder hook's scorer protocol (``(utt, (T, num_pdfs) loglikes)`` per utterance of a feature store), so
``asr-kd decode --export DIR`` decodes from the export exactly as from the checkpoint.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from asr_base.io import read_json, sha256_file

MANIFEST = "manifest.json"
# CMVN for speakers without training statistics (asr-kd transcribe's default), recorded in
# feature_config.json as "cmvn_unseen". Per utterance: the transcript of a file does not depend on which other
# files come with it, and on the mini test set it cost +0.7 WER points against per-speaker CMVN (sliding 600
# frames centred +0.8, past-only sliding +5.0, all files as one speaker +22.7; benchmarks/bench_transcribe_cmvn.py).
DEFAULT_UNSEEN_CMVN = "utterance"
TRAIN_CMVN_MODES = ("speaker_mean_var", "speaker_mean", "none")


def expected_cmvn(feature_config: dict) -> dict:
    """Which CMVN an export's model expects: ``train`` (the store's mode it was trained on: mean and variance,
    mean only, or none) and ``unseen`` (the mode to use for new speakers). Exports written before
    ``cmvn_unseen`` was recorded get :data:`DEFAULT_UNSEEN_CMVN`; before ``cmvn``, ``speaker_mean_var``."""
    train = feature_config.get("cmvn", "speaker_mean_var")
    if train not in TRAIN_CMVN_MODES:
        raise ValueError(f"feature_config.json: unknown CMVN mode {train!r} (expected one of {TRAIN_CMVN_MODES})")
    return {"train": train, "unseen": feature_config.get("cmvn_unseen", DEFAULT_UNSEEN_CMVN)}


@dataclass
class ExportedModel:
    """An export dir, loaded: TorchScript module (or onnxruntime session) + config."""

    root: Path
    module: torch.jit.ScriptModule | None
    session: object | None  # onnxruntime.InferenceSession
    feature_config: dict
    num_pdfs: int

    def loglikes(self, feats: np.ndarray) -> np.ndarray:
        """(T, D) CMVN-normalised features of one utterance -> (T, num_pdfs) float32."""
        x = np.asarray(feats, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.feature_config["feat_dim"]:
            raise ValueError(f"expected (T, {self.feature_config['feat_dim']}) features, got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, self.num_pdfs), np.float32)
        if self.session is not None:
            return self.session.run(["loglikes"], {"feats": x[None]})[0][0]
        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).numpy()

    def scorer(self, store, utt_ids: Sequence[str] | None = None) -> "ExportScorer":
        return ExportScorer(self, store, utt_ids)


class ExportScorer:
    """Scorer protocol over a feature store with an exported model (one utterance per call)."""

    def __init__(self, model: ExportedModel, store, utt_ids: Sequence[str] | None = None):
        self.model = model
        self.store = store
        if store.dim != model.feature_config["feat_dim"]:
            raise ValueError(f"export expects {model.feature_config['feat_dim']}-dim features, store has {store.dim}")
        idx = store.utt_index()
        self.order = list(range(len(store.utt_ids))) if utt_ids is None else [idx[u] for u in utt_ids]
        self.num_pdfs = model.num_pdfs

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        st = self.store
        for i in self.order:
            s, n = int(st.starts[i]), int(st.lengths[i])
            yield st.utt_ids[i], self.model.loglikes(np.asarray(st.feats[s:s + n], dtype=np.float32))


def load_export(root: str | os.PathLike, backend: str = "torchscript", verify_checksums: bool = True) -> ExportedModel:
    """Rebuild the scorer side from an export dir alone (``backend``: ``torchscript`` or ``onnx``)."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise FileNotFoundError(f"{root} is not an export dir ({MANIFEST} missing)")
    man = read_json(root / MANIFEST)
    if verify_checksums:
        for name, digest in man["files"].items():
            if sha256_file(root / name) != digest:
                raise ValueError(f"{root / name}: checksum does not match {MANIFEST} (modified or corrupt)")
    fc = read_json(root / "feature_config.json")
    module = session = None
    if backend == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(root / "model.ts"), map_location="cpu").eval()
    elif backend == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        session = ort.InferenceSession(str(root / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    else:
        raise ValueError(f"backend must be 'torchscript' or 'onnx', got {backend!r}")
    return ExportedModel(root, module, session, fc, int(man["num_pdfs"]))
