"""``asr-kd export``: one self-contained directory for a decoder (TorchScript + ONNX + priors + config).

What a decoder wants is log-likelihoods per frame of ONE utterance, computed from its features, with
nothing else to know. So the exported network is :class:`LoglikeModule`: it takes CMVN-normalised
log-mel features ``(T, 40)`` (one utterance) or ``(B, T, 40)`` (utterances of equal length), splices
the context window inside (frames beyond the edges replicate the first/last frame, exactly as in
training) and returns ``(T, num_pdfs)`` / ``(B, T, num_pdfs)`` unscaled pseudo-log-likelihoods
``log p(s|x) - log p(s)`` -- what Kaldi's ``*-mapped`` decoders read (apply the acoustic scale there).
The ONNX graph has dynamic batch and time axes (input ``feats`` (B, T, 40), output ``loglikes``).

Directory layout::

    model.ts            TorchScript (torch.jit.load; no asr_kd code needed)
    model.onnx          ONNX (onnxruntime), input "feats" (B, T, D) float32 -> output "loglikes" (B, T, P)
    log_priors.npy      float32 (P,) the log priors subtracted inside (for posteriors: loglikes + log_priors)
    feature_config.json fbank options + CMVN mode + context window + frame shift
    cmvn.npz            per-speaker train CMVN stats (+ global_stats: their sum, for unseen speakers)
    tree final.mdl phones.txt words.txt num_pdfs    the tied-state inventory (when available)
    manifest.json       versions, sha256 of every file, source checkpoints, verification results

:func:`load_export` rebuilds a scorer from that directory alone. Verification (stored in the manifest):
onnxruntime vs torch max abs difference; the TorchScript file loaded and run in a fresh Python process in
which importing ``asr_kd``/``data_prep`` is blocked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from asr_base.io import sha256_file, atomic_path, read_json, save_npy, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class LoglikeModule(torch.nn.Module):
    """features -> spliced windows -> mean posterior of the member(s) -> log-likelihoods."""

    def __init__(self, members: Sequence[torch.nn.Module], log_priors: np.ndarray, left: int, right: int):
        super().__init__()
        from asr_kd.decoding.scorer import PosteriorModel

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

    def scorer(self, store, config=None, utt_ids: Sequence[str] | None = None) -> "ExportScorer":
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


# -- export ------------------------------------------------------------------------------------------


def _export_onnx(module: LoglikeModule, path: Path, feat_dim: int) -> None:
    """Legacy (TorchScript-based) ONNX exporter: the dynamo exporter needs onnxscript, not on our stack."""
    example = torch.zeros(1, 30, feat_dim)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["feats"],
                          output_names=["loglikes"], dynamic_axes={"feats": {0: "batch", 1: "time"},
                                                                   "loglikes": {0: "batch", 1: "time"}},
                          opset_version=17)


def _export_torchscript(module: LoglikeModule, path: Path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated but is what C++/Kaldi-side users can load
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    with atomic_path(path) as tmp:
        scripted.save(str(tmp))


def onnx_max_abs_diff(module: LoglikeModule, onnx_path: Path, feat_dim: int, seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random inputs of several batch sizes and lengths (incl. T < window)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.inference_mode():
        for b, t in ((1, 3), (1, 57), (3, 40)):
            x = torch.randn(b, t, feat_dim, generator=g)
            want = module(x).numpy()
            got = sess.run(["loglikes"], {"feats": x.numpy()})[0]
            if got.shape != want.shape:
                raise RuntimeError(f"ONNX output shape {got.shape} != torch {want.shape} for input {(b, t)}")
            worst = max(worst, float(np.abs(got - want).max()))
    return worst


_FRESH_CHECK = r"""
import sys, warnings
warnings.simplefilter("ignore")
for name in ("asr_kd", "data_prep"):
    sys.modules[name] = None  # the training code must not be needed
import numpy as np, torch
m = torch.jit.load(sys.argv[1], map_location="cpu").eval()
x = np.load(sys.argv[2]); want = np.load(sys.argv[3])
with torch.inference_mode():
    y2 = m(torch.from_numpy(x[0])).numpy()
    y3 = m(torch.from_numpy(x)).numpy()
print(float(max(np.abs(y2 - want[0]).max(), np.abs(y3 - want).max())))
"""


def torchscript_fresh_process_diff(module: LoglikeModule, ts_path: Path, feat_dim: int, workdir: Path) -> float:
    """Load the TorchScript file in a fresh interpreter with asr_kd/data_prep imports blocked and compare."""
    x = torch.randn(2, 33, feat_dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = module(x).numpy()
    workdir = workdir.resolve()  # the check runs with cwd=workdir: every path must be absolute
    ts_path = ts_path.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "x.npy", x.numpy())
    np.save(workdir / "want.npy", want)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-c", _FRESH_CHECK, str(ts_path), str(workdir / "x.npy"),
                           str(workdir / "want.npy")], capture_output=True, text=True, cwd=workdir, env=env,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"TorchScript model does not load in a fresh process:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _versions() -> dict:
    import onnx
    import onnxruntime

    try:
        from importlib.metadata import version

        pkg = version("asr-kd")
    except Exception:  # not installed as a package
        pkg = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "asr_kd": pkg}


def _cmvn_with_global(src: Path, dst: Path) -> None:
    z = np.load(src)
    arrays = {k: z[k] for k in z.files}
    if "stats" in arrays and arrays["stats"].ndim == 3:
        arrays["global_stats"] = arrays["stats"].sum(axis=0)
    with atomic_path(dst) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


@dataclass
class ExportConfig:
    models: list[str]
    out: str
    priors: str
    prior_floor: float = 1e-10
    feats: str | None = None  # train feature store (meta.json + cmvn.npz)
    tree: str | None = None
    final_mdl: str | None = None
    lang: str | None = None


def export(cfg: ExportConfig, force: bool = False) -> dict:
    """Write the export dir; returns the manifest."""
    from asr_kd.nn.model import load_model
    from asr_kd.decoding.scorer import load_log_priors

    out = Path(cfg.out)
    src_hashes = {p: sha256_file(p) for p in [*cfg.models, cfg.priors] if p}
    if not force and (out / MANIFEST).is_file() and read_json(out / MANIFEST).get("sources") == src_hashes:
        log.info("%s is up to date; use --force to re-export", out)
        return read_json(out / MANIFEST)
    members = [load_model(p).eval() for p in cfg.models]
    mc = members[0].config
    if any(m.config != mc for m in members):
        raise ValueError("ensemble members must share one model config")
    log_priors = load_log_priors(cfg.priors, cfg.prior_floor)
    if len(log_priors) != mc.num_pdfs:
        raise ValueError(f"{cfg.priors} has {len(log_priors)} states, the model {mc.num_pdfs} outputs")
    module = LoglikeModule(members, log_priors, mc.left_context, mc.right_context).eval()
    out.mkdir(parents=True, exist_ok=True)
    _export_torchscript(module, out / "model.ts")
    _export_onnx(module, out / "model.onnx", mc.feat_dim)
    save_npy(out / "log_priors.npy", log_priors)
    meta = {}
    if cfg.feats:
        store_dir = Path(cfg.feats)
        meta = read_json(store_dir / "meta.json") if (store_dir / "meta.json").is_file() else {}
        if (store_dir / "cmvn.npz").is_file():
            _cmvn_with_global(store_dir / "cmvn.npz", out / "cmvn.npz")
    feature_config = {
        "feat_dim": mc.feat_dim, "left_context": mc.left_context, "right_context": mc.right_context,
        "window": mc.window, "frame_shift_ms": 10, "frame_length_ms": 25,
        "fbank": {k: v for k, v in meta.items() if k not in ("num_frames", "num_utts")},
        "cmvn": meta.get("cmvn", "speaker_mean_var"),
        "input": "CMVN-normalised log-mel fbank (T, feat_dim) or (B, T, feat_dim); edges replicated",
        "output": "unscaled log p(s|x) - log p(s), (T, num_pdfs); apply the acoustic scale in the decoder",
    }
    write_json(out / "feature_config.json", feature_config)
    copies = {"tree": cfg.tree, "final.mdl": cfg.final_mdl}
    if cfg.lang:
        copies.update({"phones.txt": os.path.join(cfg.lang, "phones.txt"), "words.txt": os.path.join(cfg.lang, "words.txt")})
    for name, src in copies.items():
        if src and Path(src).is_file():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(src, tmp)
        elif src:
            log.warning("%s not found, not exported: %s", name, src)
    with atomic_path(out / "num_pdfs") as tmp:
        tmp.write_text(f"{mc.num_pdfs}\n")
    onnx_diff = onnx_max_abs_diff(module, out / "model.onnx", mc.feat_dim)
    ts_diff = torchscript_fresh_process_diff(module, out / "model.ts", mc.feat_dim, out / ".verify")
    shutil.rmtree(out / ".verify", ignore_errors=True)
    log.info("verification: onnxruntime vs torch max abs diff %.3g; TorchScript in a fresh process %.3g",
             onnx_diff, ts_diff)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    manifest = {
        "format": "asr-kd export v1", "num_pdfs": mc.num_pdfs, "model_config": asdict(mc),
        "num_members": len(members), "sources": src_hashes, "versions": _versions(),
        "files": {name: sha256_file(out / name) for name in files},
        "verification": {"onnx_max_abs_diff": onnx_diff, "torchscript_fresh_process_max_abs_diff": ts_diff},
    }
    write_json(out / MANIFEST, json.loads(json.dumps(manifest, default=str)))
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    m = parser.add_mutually_exclusive_group(required=True)
    m.add_argument("--model", action="append", help="checkpoint (final.pt); repeat for an ensemble")
    m.add_argument("--ensemble", help="ensemble dir: DIR/*/final.pt (mean posterior)")
    parser.add_argument("--priors", required=True, help="state counts (exp/tri/pdf_counts.npy)")
    parser.add_argument("--prior-floor", type=float, default=1e-10, help="states with a lower prior are disabled")
    parser.add_argument("--feats", help="train feature store: fbank config (meta.json) + CMVN stats (cmvn.npz)")
    parser.add_argument("--tree", help="Kaldi tree (exp/tri/tree)")
    parser.add_argument("--final-mdl", help="transition model + GMMs (exp/tri/final.mdl)")
    parser.add_argument("--lang", help="lang dir (phones.txt, words.txt)")
    parser.add_argument("--out", required=True, help="export dir (exp/export)")
    parser.add_argument("--force", action="store_true", help="re-export even if the sources did not change")


def main(args: argparse.Namespace) -> int:
    from asr_kd.decoding.decode import ensemble_members

    models = ensemble_members(args.ensemble) if args.ensemble else args.model
    man = export(ExportConfig(models, args.out, args.priors, args.prior_floor, args.feats, args.tree, args.final_mdl,
                              args.lang), force=args.force)
    print(json.dumps(man["verification"]))
    return 0
