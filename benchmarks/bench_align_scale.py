"""The aligner at a LibriSpeech-like budget on a larger synthetic corpus: wall time per sub-stage, peak memory,
real-time factor of every pass, and the arithmetic that projects them to 100 h and 960 h on a bigger machine.

    .venv/bin/python benchmarks/bench_align_scale.py --hours 10 --dir /tmp/bench_align --jobs 2

1. ``recipes/mini/run.sh --train-hours H --stop-stage 3``: the synthetic corpus, data dirs, fbank + MFCC stores,
   lang dirs (timed; skipped when already there).
2. ``data-prep align`` on MFCC + deltas with ``--num-leaves`` / ``--tri-gauss`` (default 2,000 / 30,000, the
   size of Kaldi's tri2b-tri3b on LibriSpeech), up to ``--system`` (default tri2: LDA+MLLT); peak resident memory of
   the largest process (``RUSAGE_CHILDREN``: the stage or one of its workers).
3. From ``report.json`` and the ``history.json`` of every system: seconds per sub-stage, RTF (wall / audio) of
   every pass over the train split (alignment + statistics, statistics only, MLLT), and the projection.

**Projection.** The passes (scoring, Viterbi, statistics) run in ``--jobs`` worker processes. A statistics pass
scores each frame against its own pdf's Gaussians, and an alignment pass against those of the pdfs of the
utterance's training graph (a few hundred, set by the transcript's triphones, not by the tree's size), so both
cost O(frames x Gaussians per pdf): projected as ``passes x (H' / H) x ((G' / P') / (G / P)) x (jobs / cores')``
for P pdfs and G Gaussians. The rest (tree
building, LDA / tree statistics, M-steps, mixture splitting) runs in the main process and is projected linearly
in hours without any parallel speed-up (an upper bound: the M-step cost does not grow with hours).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], log: Path) -> float:
    t0 = time.time()
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.time() - t0


def pass_seconds(history: list[dict]) -> float:
    return sum(float(h.get("seconds", 0.0)) + float(h.get("mllt_seconds") or 0.0) + float(h.get("fmllr_seconds") or 0.0)
               for h in history)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=10.0, help="hours of synthetic train speech")
    ap.add_argument("--dir", default="/tmp/bench_align_scale", help="work dir (data/, exp/, logs)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--num-leaves", type=int, default=2000)
    ap.add_argument("--tri-gauss", type=int, default=30000)
    ap.add_argument("--mono-gauss", type=int, default=2000)
    ap.add_argument("--mono-subset", type=int, default=500,
                    help="shortest utterances for the monophones (Kaldi LibriSpeech: 2k of 28.5k, 7%%; 500 is 16%% of 10 h)")
    ap.add_argument("--system", choices=["tri", "tri2", "tri3"], default="tri2",
                    help="the last system: tri (MFCC + deltas), tri2 (+ LDA+MLLT), tri3 (+ SAT)")
    ap.add_argument("--target-cores", type=int, default=32)
    ap.add_argument("--targets", type=str, default="100:4200:40000,960:7000:150000,960:14000:150000",
                    help="hours:leaves:Gaussians to project to (Kaldi's tri4b on 100 h, tri6b on 960 h, and "
                         "the paper-like 14,000 leaves of conf/align_960h.conf)")
    ap.add_argument("--reuse-data", action="store_true",
                    help="align the data/ of an earlier run as it is (stages 0-3 not run; the corpus audio may be gone)")
    args = ap.parse_args()

    d = Path(args.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    log = d / "bench.log"
    env_bin = REPO / ".venv" / "bin"
    if args.reuse_data:
        if not (d / "data/mfcc/train/feats.npy").is_file() or not (d / "data/lang").is_dir():
            raise SystemExit(f"--reuse-data: no MFCC store / lang dir under {d / 'data'}")
        t_prep = 0.0
    else:
        t_prep = run(["bash", str(REPO / "recipes/mini/run.sh"), "--dir", str(d), "--stop-stage", "3",
                      "--train-hours", f"{args.hours:g}", "--jobs", str(args.jobs)], log)
    align = [str(env_bin / "data-prep"), "align", "--lang", str(d / "data/lang"), "--fbank-dir", str(d / "data/mfcc"),
             "--deltas", "2", "--data-dir", str(d / "data"), "--exp", str(d / "exp"), "--splits", "train", "dev", "test",
             "--jobs", str(args.jobs), "--num-leaves", str(args.num_leaves), "--tri-gauss", str(args.tri_gauss),
             "--mono-gauss", str(args.mono_gauss), "--mono-subset", str(args.mono_subset)]
    align += {"tri": [], "tri2": ["--lda-mllt"], "tri3": ["--lda-mllt", "--sat"]}[args.system]
    t_align = run(align, log)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20
    final = args.system
    report = json.loads((d / "exp" / final / "report.json").read_text())
    audio_h = report["splits"]["train"]["frames"] * 0.01 / 3600
    systems = ["mono", "tri", "tri2", "tri3"][:{"tri": 2, "tri2": 3, "tri3": 4}[args.system]]
    hist = {s: json.loads((d / "exp" / s / "history.json").read_text()) for s in systems}
    # the split alignments: every system's done.json
    ali_s = sum(json.loads(p.read_text())["seconds"] for p in (d / "exp").glob("*/ali/*/done.json")
                if p.parent.parent.parent.name in systems)
    passes = sum(pass_seconds(hist[s]) for s in systems) + ali_s
    rest = max(t_align - passes, 0.0)

    print(f"# aligner scale benchmark: {audio_h:.2f} h of train speech, {report['num_tied_states']} tied states, "
          f"{report.get(final, {}).get('num_gauss')} Gaussians, {args.jobs} jobs, {os.cpu_count()} cores here")
    print(f"corpus + features + lang (recipe stages 0-3): {t_prep:8.1f} s" + ("  (reused)" if args.reuse_data else ""))
    print(f"data-prep align, whole stage                : {t_align:8.1f} s   peak RSS of the largest process "
          f"{peak_gb:.2f} GB")
    for name, sec in report.get("stage_seconds", {}).items():
        print(f"  {name:<30s} {sec:8.1f} s")
    print("passes over the train split (RTF = wall / audio):")
    for s in systems:
        for h in hist[s]:
            kind = "align+acc" if h.get("realigned") else "acc"
            rtf = h["seconds"] / max(h["frames"] * 0.01, 1e-9)  # the pass's wall time / its audio
            print(f"  {s:<5s} iter {h['iter']:>2d} {kind:<9s} {h['seconds']:7.1f} s  RTF {rtf:.4f}"
                  + (f"  + MLLT pass {h['mllt_seconds']:.1f} s" if h.get("mllt_seconds") else "")
                  + (f"  + fMLLR pass {h['fmllr_seconds']:.1f} s" if h.get("fmllr_seconds") else ""))
    for p in sorted((d / "exp").glob("*/ali/*/done.json")):
        v = json.loads(p.read_text())
        print(f"  final alignment {p.parent.parent.parent.name}/{p.parent.name:<6s} {v['seconds']:7.1f} s  RTF {v['rtf']:.4f}")
    print(f"parallel passes {passes:.1f} s, the rest (main process) {rest:.1f} s")
    g_here = report.get(final, {}).get("num_gauss") or args.tri_gauss
    per_pdf = g_here / report["num_tied_states"]
    print(f"projection to {args.target_cores} cores (passes x H'/H x (G'/P') / (G/P) x {args.jobs}/{args.target_cores}"
          f" + rest x H'/H; here G/P = {g_here} / {report['num_tied_states']} = {per_pdf:.1f}):")
    for target in args.targets.split(","):
        hours, leaves, gauss = (float(v) for v in target.split(":"))
        scale_h, scale_g = hours / audio_h, gauss / leaves / per_pdf
        par = passes * scale_h * scale_g * args.jobs / args.target_cores
        ser = rest * scale_h
        print(f"  {hours:5.0f} h, {leaves:6.0f} leaves, {gauss:6.0f} Gaussians: {passes:.0f} x {scale_h:.1f} x "
              f"{scale_g:.2f} x {args.jobs}/{args.target_cores} = {par / 3600:.2f} h  +  {rest:.0f} x {scale_h:.1f} = "
              f"{ser / 3600:.2f} h  ->  {(par + ser) / 3600:.1f} h")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
