"""Benchmark: WER cost of each ``asr-kd transcribe`` CMVN mode against the per-speaker training setting.

On a Kaldi data dir (``wav.scp``, ``text``, ``utt2spk``: e.g. the mini recipe's ``data/test``) with an export
and a graph, this computes the fbank features from the audio once (as ``asr-kd transcribe`` does), then for
every CMVN mode normalises, scores with the export and decodes with the same decoder options, and prints
the WER of each next to the same-run reference: the same export decoding the recipe's feature store
(``--feats``, per-speaker CMVN over the whole split exactly as in training and in ``asr-kd decode``).

Modes: ``speaker+utt2spk`` (per speaker over the given files, speakers from utt2spk: the training setting,
recomputed from audio), ``speaker`` (all files one speaker), ``utterance``, ``sliding`` (600-frame window
centred), ``sliding-online`` (600 frames of the past only, Kaldi's online default).

    nice .venv/bin/python benchmarks/bench_transcribe_cmvn.py --data recipes/mini/data/test \\
        --feats recipes/mini/data/fbank/test --export recipes/mini/exp/export --graph recipes/mini/exp/graph \\
        --beam 10 --max-active 3000 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr_base.kaldi import kaldifst  # noqa: E402,F401  (import order)
from asr_kd.decoding.decoder import DecoderConfig, decode_all  # noqa: E402
from asr_kd.decoding.transcribe_audio import extract, normalise, read_scp, read_utt2spk  # noqa: E402
from asr_kd.decoding.wer import compute_wer  # noqa: E402
from asr_kd.export.load import expected_cmvn, load_export  # noqa: E402

MODES = {  # name -> (mode, use utt2spk, sliding centre)
    "speaker+utt2spk": ("speaker", True, True),
    "speaker": ("speaker", False, True),
    "utterance": ("utterance", False, True),
    "sliding": ("sliding", False, True),
    "sliding-online": ("sliding", False, False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--feats", default=None, help="the split's feature store (same-run reference)")
    ap.add_argument("--export", required=True)
    ap.add_argument("--graph", required=True)
    ap.add_argument("--beam", type=float, default=13.0)
    ap.add_argument("--max-active", type=int, default=7000)
    ap.add_argument("--acoustic-scale", type=float, default=0.1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    a = ap.parse_args()
    from data_prep.features.fbank_extract import FbankConfig

    data = Path(a.data)
    refs = {line.split(maxsplit=1)[0]: (line.split(maxsplit=1) + [""])[1].split()
            for line in (data / "text").read_text(encoding="utf-8").splitlines() if line.strip()}
    utt2spk = read_utt2spk(data / "utt2spk")
    model = load_export(a.export)
    fc = model.feature_config
    train = expected_cmvn(fc)["train"]
    fb_opts = fc["fbank"]["fbank"]
    fb = FbankConfig(**{f.name: fb_opts[f.name] for f in fields(FbankConfig) if f.name in fb_opts})
    dcfg = DecoderConfig(beam=a.beam, max_active=a.max_active, acoustic_scale=a.acoustic_scale, num_jobs=a.jobs)
    t0 = time.perf_counter()
    raw = {r.utt: r.feats for r in extract(read_scp(data / "wav.scp"), fb, jobs=a.jobs) if r.feats is not None}
    t_feat = time.perf_counter() - t0
    frames = sum(len(x) for x in raw.values())
    print(f"{len(raw)} utterances, {frames / 100:.1f} s of audio, {len(set(utt2spk[u] for u in raw))} speakers; "
          f"fbank from audio in {t_feat:.1f} s; decoder beam {a.beam:g} max-active {a.max_active}")

    def run(name: str, items, n: int) -> dict:
        t = time.perf_counter()
        out = decode_all(a.graph, items, dcfg, total=n)
        dt = time.perf_counter() - t
        w = compute_wer({u: refs[u] for u in raw}, out.hyps, failures=out.failures)
        r = {"mode": name, "wer": round(w.total.wer, 2), "errors": w.total.errors, "words": w.total.ref_words,
             "failed": len(out.failures), "seconds": round(dt, 1)}
        print(json.dumps(r), flush=True)
        return r

    results = []
    if a.feats:
        from data_prep.features.store import FeatureStore

        store = FeatureStore.open(a.feats)
        results.append(run("store (reference)", iter(model.scorer(store, [u for u in store.utt_ids if u in raw])),
                           len(raw)))
    for name in a.modes:
        mode, spk, center = MODES[name]
        feats = normalise(raw, mode, train, utt2spk if spk else None, center=center)
        results.append(run(name, ((u, model.loglikes(x)) for u, x in feats.items()), len(feats)))
    base = results[0]["wer"]
    print(f"\n{'CMVN mode':20} {'WER %':>7} {'vs ' + results[0]['mode']:>24}")
    for r in results:
        print(f"{r['mode']:20} {r['wer']:7.2f} {r['wer'] - base:+24.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
