"""Alignment real-time factor on CPU: one Viterbi pass (GMM scoring + Kaldi Viterbi) over a synthetic corpus,
next to the same-run reference of GMM scoring alone.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_align.py --utts 200 --gauss-per-pdf 4

Prints audio seconds, wall seconds and RTF (wall / audio; lower is faster) for both, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=200)
    ap.add_argument("--dim", type=int, default=40)
    ap.add_argument("--gauss-per-pdf", type=int, default=4)
    ap.add_argument("--words", type=int, default=200, help="random lexicon size")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    from asr_base.kaldi import kaldi_hmm_gmm  # noqa: F401
    from data_prep.align.passes import Aligner
    from data_prep.align.split_data import load_split
    from data_prep.features.store import write_store
    from data_prep.align.gmm import DiagGmmSet, GmmUpdateConfig, single_gaussian_stats
    from data_prep.align.hmm import AlignOptions, HmmModel

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import _simulate_corpus as simulate_corpus  # test fixture: synthetic HMM corpus
    from data_prep.lang.lang_dir import load_topology, write_lang_dir

    rng = np.random.default_rng(0)
    phones = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
    lexicon = {f"W{i:04d}": [tuple(rng.choice(phones, size=int(rng.integers(2, 7))))] for i in range(args.words)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lang = write_lang_dir(lexicon, tmp / "lang")
        hmm = HmmModel.monophone(load_topology(lang))
        c = simulate_corpus(lang, num_utts=args.utts, words_per_utt=(5, 15), dim=args.dim, seed=1)
        write_store(tmp / "fbank", c.feats, c.utt_ids, c.lengths, c.speakers)
        pdf = np.array([hmm.pdf_of(p, s) for p, s in zip(c.true_phone, c.true_state)])
        x = torch.from_numpy(c.feats.astype(np.float32))
        gmm = DiagGmmSet.from_single_stats(single_gaussian_stats(x, pdf, hmm.num_pdfs))
        gmm = gmm.split(hmm.num_pdfs * args.gauss_per_pdf, torch.bincount(torch.from_numpy(pdf)).double(),
                        GmmUpdateConfig(split_min_count=1.0), torch.Generator().manual_seed(0))
        split = load_split("bench", tmp / "fbank", c.text, lang)
        audio = split.num_frames * split.frame_shift
        t0 = time.perf_counter()
        for s in range(0, x.shape[0], 20000):
            gmm.log_likelihoods(x[s:s + 20000])
        t_score = time.perf_counter() - t0
        labels = np.full(x.shape[0], -1, np.int32)
        with Aligner(str(lang.path), jobs=args.jobs) as al:
            summ = al.run_pass(split, hmm, gmm, AlignOptions(), realign=True, accumulate=False, labels=labels)
        acc = float(np.mean(labels == pdf))
        print(f"corpus: {args.utts} utts, {audio:.0f} s audio, {hmm.num_pdfs} pdfs, {gmm.num_gauss} Gaussians, "
              f"dim {args.dim}, jobs {args.jobs}")
        print(f"reference  GMM scoring only      : {t_score:7.2f} s  RTF {t_score / audio:.5f}")
        print(f"alignment  scoring+graphs+Viterbi: {summ.seconds:7.2f} s  RTF {summ.seconds / audio:.5f}  "
              f"(aligned {summ.aligned}/{args.utts}, frame acc vs truth {acc:.3f})")
        print(f"ratio alignment / scoring: {summ.seconds / max(t_score, 1e-9):.2f}")


if __name__ == "__main__":
    main()
