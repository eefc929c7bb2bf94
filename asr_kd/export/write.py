"""``asr-kd export``: one self-contained directory for a decoder (TorchScript + ONNX + priors + config).

What a decoder wants is log-likelihoods per frame of ONE utterance, computed from its features, with
nothing else to know. So the exported network is :class:`asr_kd.export.loglike_module.LoglikeModule`
(features in, unscaled ``log p(s|x) - log p(s)`` out, context window spliced inside). The ONNX graph has
dynamic batch and time axes (input ``feats`` (B, T, D), output ``loglikes``).

Directory layout::

    model.ts            TorchScript (torch.jit.load; no asr_kd code needed)
    model.onnx          ONNX (onnxruntime), input "feats" (B, T, D) float32 -> output "loglikes" (B, T, P)
    log_priors.npy      float32 (P,) the log priors subtracted inside (for posteriors: loglikes + log_priors)
    feature_config.json fbank options + CMVN mode (training; ``cmvn_unseen``: for new speakers, asr-kd
                        transcribe) + context window + frame shift (from the feature store)
    cmvn.npz            per-speaker train CMVN stats (+ global_stats: their sum, for unseen speakers)
    tree final.mdl phones.txt words.txt silence_phones.txt lexicon.txt num_pdfs    the tied-state inventory
                        and the lexicon (CTM word times; when available)
    manifest.json       versions, sha256 of every file, source checkpoints, verification results
    .stamp.json         options + input digests (asr_base.stamp): an unchanged export is not redone

:func:`asr_kd.export.load.load_export` rebuilds a scorer from that directory alone; the checks stored in
the manifest are those of :mod:`asr_kd.export.verify`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from asr_base.config import add_options, from_args, option
from asr_base.io import atomic_path, read_json, save_npy, sha256_file, write_json
from asr_base.stamp import STAMP_NAME, Step
from asr_kd.decoding.model_source import add_model_choice
from asr_kd.export.load import DEFAULT_UNSEEN_CMVN, MANIFEST
from asr_kd.export.networks import build_module, write_networks
from asr_kd.export.verify import onnx_max_abs_diff, torchscript_fresh_process_diff
from asr_kd.nn.model_dirs import FINAL, member_dirs

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ExportConfig:
    model: list[str] = option([], cli=False, help="checkpoint (final.pt); repeat for an ensemble")
    ensemble: str | None = option(None, cli=False, help="ensemble dir: its member_*/final.pt (mean posterior)")
    priors: str = option(help="state counts (exp/tri/pdf_counts.npy)")
    prior_floor: float = option(1e-10, help="states with a lower prior are disabled")
    feats: str | None = option(None, help="train feature store: fbank config and frame shift (meta.json) + "
                                          "CMVN stats (cmvn.npz)")
    tree: str | None = option(None, help="Kaldi tree (exp/tri/tree)")
    final_mdl: str | None = option(None, help="transition model + GMMs (exp/tri/final.mdl)")
    lang: str | None = option(None, help="lang dir (phones.txt, words.txt)")
    out: str = option(help="export dir (exp/export)")
    force: bool = option(False, help="re-export even if the options and sources did not change")

    def checkpoints(self) -> list[str]:
        return [str(d / FINAL) for d in member_dirs(self.ensemble)] if self.ensemble else list(self.model)

    def copies(self) -> dict[str, str | None]:
        """Files copied into the export dir as they are (name there -> source)."""
        out = {"tree": self.tree, "final.mdl": self.final_mdl}
        if self.lang:
            out.update({"phones.txt": str(Path(self.lang) / "phones.txt"),
                        "words.txt": str(Path(self.lang) / "words.txt"),
                        "silence_phones.txt": str(Path(self.lang) / "phones" / "optional_silence.txt"),
                        "lexicon.txt": str(Path(self.lang) / "lexicon.txt")})
        return out


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


def _feature_config(cfg: ExportConfig, mc, out: Path) -> dict:
    """feature_config.json: the model's window + the train store's fbank options and frame shift."""
    from data_prep.features.store import DEFAULT_FRAME_SHIFT_MS, META, FeatureStore

    meta, frame_shift_ms = {}, DEFAULT_FRAME_SHIFT_MS  # no store given: the store's own default
    if cfg.feats:
        store = FeatureStore.open(cfg.feats)
        meta, frame_shift_ms = store.meta, store.frame_shift * 1000.0
        if (store.root / "cmvn.npz").is_file():
            _cmvn_with_global(store.root / "cmvn.npz", out / "cmvn.npz")
        elif not (store.root / META).is_file():
            log.warning("%s has no %s: feature options not exported", store.root, META)
    return {
        "feat_dim": mc.feat_dim, "left_context": mc.left_context, "right_context": mc.right_context,
        "window": mc.window, "frame_shift_ms": frame_shift_ms, "frame_length_ms": meta.get("frame_length_ms", 25),
        "fbank": {k: v for k, v in meta.items() if k not in ("num_frames", "num_utts")},
        "cmvn": meta.get("cmvn", "speaker_mean_var"),
        "cmvn_unseen": DEFAULT_UNSEEN_CMVN,  # asr-kd transcribe --cmvn auto
        "input": "CMVN-normalised log-mel fbank (T, feat_dim) or (B, T, feat_dim); edges replicated",
        "output": "unscaled log p(s|x) - log p(s), (T, num_pdfs); apply the acoustic scale in the decoder",
    }


def export_step(cfg: ExportConfig) -> Step:
    """The up-to-date check of an export: its options and every source file."""
    inputs: dict[str, str | None] = {f"model{i}": p for i, p in enumerate(cfg.checkpoints())}
    inputs.update(priors=cfg.priors, **{f"copy:{k}": v for k, v in cfg.copies().items()})
    if cfg.feats:
        inputs.update(feats_meta=str(Path(cfg.feats) / "meta.json"), cmvn=str(Path(cfg.feats) / "cmvn.npz"))
    return Step(Path(cfg.out) / STAMP_NAME, f"export {cfg.out}", config=dataclasses.replace(cfg, force=False),
                inputs=inputs)


def export(cfg: ExportConfig) -> dict:
    """Write the export dir (unless up to date); returns the manifest."""
    out = Path(cfg.out)
    step = export_step(cfg)
    if (out / MANIFEST).is_file() and step.up_to_date(cfg.force):
        return read_json(out / MANIFEST)
    models = cfg.checkpoints()
    module = build_module(models, cfg.priors, cfg.prior_floor)
    log_priors, mc = module.log_priors.numpy(), module.net.members[0].config
    out.mkdir(parents=True, exist_ok=True)
    write_networks(models, cfg.priors, cfg.prior_floor, out)  # model.ts, model.onnx
    save_npy(out / "log_priors.npy", log_priors)
    write_json(out / "feature_config.json", _feature_config(cfg, mc, out))
    for name, src in cfg.copies().items():
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
        "num_members": len(models), "sources": {p: sha256_file(p) for p in [*models, cfg.priors]},
        "versions": _versions(), "files": {name: sha256_file(out / name) for name in files},
        "verification": {"onnx_max_abs_diff": onnx_diff, "torchscript_fresh_process_max_abs_diff": ts_diff},
    }
    write_json(out / MANIFEST, json.loads(json.dumps(manifest, default=str)))
    step.done(num_members=len(models), num_pdfs=mc.num_pdfs)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_choice(parser, ExportConfig, ("model", "ensemble"))
    add_options(parser, ExportConfig)


def main(args: argparse.Namespace) -> int:
    man = export(from_args(ExportConfig, args))
    print(json.dumps(man["verification"]))
    return 0
