"""``asr-kd make-lm``: estimate a back-off n-gram language model from text and write it as ARPA.

No library on our stack estimates ARPA models, so this is a small, exact implementation of the two
classic interpolated smoothing schemes (Chen & Goodman 1998):

* ``kneser-ney`` (default): interpolated Kneser-Ney with one absolute discount per order,
  ``D_n = n1 / (n1 + 2 n2)`` from the counts-of-counts of that order (clamped to [0.05, 0.95]; a fixed
  value may be given). Lower orders use *continuation* counts ``N1+(. w)`` (the number of distinct
  left contexts), except for n-grams that start with ``<s>``, which have no left context and keep
  their raw counts (as SRILM and KenLM do).
* ``witten-bell``: interpolated Witten-Bell, ``p(w|h) = (c(hw) + N1+(h.) p(w|h')) / (c(h) + N1+(h.))``.

Both interpolate the unigram level with the uniform distribution over the vocabulary, so every
vocabulary word (and ``<UNK>``) has a non-zero probability even if it never occurs in the text. An
interpolated model is written to ARPA exactly: the probability stored for a seen n-gram is the
interpolated one and the back-off weight of a context is its interpolation weight ``gamma(h)``.

Sentences are wrapped in ``<s> ... </s>``. With a vocabulary (``--vocab``, e.g. ``data/lang/words.txt``)
words outside it are mapped to ``<UNK>``; without one the vocabulary is the text's words plus ``<UNK>``.
The model is estimated from the train-text file only (never dev/test). For LibriSpeech, a published
ARPA file can be given with ``--arpa`` instead: it is checked and copied.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

from asr_base.config import add_options, from_args, option
from asr_base.io import atomic_path, write_json
from asr_base.stamp import STAMP_NAME, Step

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<UNK>"
# Symbols of a Kaldi words.txt that are not vocabulary words of a language model.
NON_LM_WORDS = frozenset({"<eps>", BOS, EOS, "!SIL", "<SIL>", "#0"})
SMOOTHING = ("kneser-ney", "witten-bell")
NEG_INF_LOG10 = -99.0

Ngram = tuple[str, ...]


@dataclass
class LMConfig:
    """How the model is estimated (see the module docstring)."""

    order: int = option(3, help="n-gram order")
    smoothing: Literal["kneser-ney", "witten-bell"] = option("kneser-ney", help="interpolated smoothing")
    discount: float | None = option(None, help="Kneser-Ney: fixed discount for every order "
                                               "(default: n1/(n1+2 n2) per order)")
    unk: str = option(UNK, help="unknown-word symbol")
    kaldi_text: bool = option(False, help="text lines start with an utterance id")

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {SMOOTHING}, got {self.smoothing!r}")
        if self.discount is not None and not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {self.discount}")


@dataclass
class NgramLM:
    """An estimated back-off model: ``probs[n][ngram]`` and ``bows[n][ngram]`` are natural-log values."""

    order: int
    vocab: list[str]  # predicted words (incl. </s> and <UNK>, excl. <s>)
    probs: list[dict[Ngram, float]] = field(default_factory=list)  # index n-1
    bows: list[dict[Ngram, float]] = field(default_factory=list)
    discounts: list[float] = field(default_factory=list)
    num_sentences: int = 0
    num_tokens: int = 0
    num_oov_tokens: int = 0

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """Natural-log ``p(word | history)`` by ARPA back-off semantics (history without padding beyond <s>)."""
        h = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        bow = 0.0
        while True:
            g = h + (word,)
            p = self.probs[len(g) - 1].get(g)
            if p is not None:
                return bow + p
            if not h:
                return -math.inf
            bow += self.bows[len(h) - 1].get(h, 0.0)
            h = h[1:]

    def sentence_logprob(self, words: Sequence[str]) -> float:
        """Natural-log probability of ``<s> words </s>`` (words outside the vocabulary as ``<UNK>``): the
        negated cost a G.fst built from this model gives the sentence along its exact back-off path."""
        hist: list[str] = [BOS]
        known = self._vocab_set()
        total = 0.0
        for w in (*words, EOS):
            w = w if w in known else UNK
            total += self.logprob(w, hist)
            hist.append(w)
        return total

    def _vocab_set(self) -> set[str]:
        if getattr(self, "_known", None) is None:
            self._known = set(self.vocab)
        return self._known

    def write_arpa(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\\data\\\n")
                for n in range(1, self.order + 1):
                    f.write(f"ngram {n}={len(self.probs[n - 1])}\n")
                for n in range(1, self.order + 1):
                    f.write(f"\n\\{n}-grams:\n")
                    probs, bows = self.probs[n - 1], self.bows[n - 1] if n < self.order else {}
                    for g in sorted(probs):
                        p = probs[g]
                        lp = NEG_INF_LOG10 if p == -math.inf else p / math.log(10)
                        line = f"{lp:.7g}\t{' '.join(g)}"
                        if g in bows:
                            line += f"\t{bows[g] / math.log(10):.7g}"
                        f.write(line + "\n")
                f.write("\n\\end\\\n")


def read_sentences(path: str | os.PathLike, kaldi_text: bool = False) -> Iterable[list[str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if kaldi_text:
                words = words[1:]
            if words:
                yield words


def read_vocab(path: str | os.PathLike) -> list[str]:
    """Words of a Kaldi ``words.txt`` (``word id``) or a plain word list, without non-LM symbols."""
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] not in NON_LM_WORDS and not fields[0].startswith("#"):
                out.append(fields[0])
    return out


def count_ngrams(sentences: Iterable[Sequence[str]], order: int, vocab: set[str] | None,
                 unk: str = UNK) -> tuple[list[Counter], int, int, int]:
    """Raw n-gram counts (orders 1..order) of ``<s> w1 .. wk </s>``; OOV words -> ``unk``."""
    counts = [Counter() for _ in range(order)]
    num_sent = num_tok = num_oov = 0
    for words in sentences:
        if vocab is not None:
            mapped = [w if w in vocab else unk for w in words]
            num_oov += sum(1 for w in words if w not in vocab)
        else:
            mapped = list(words)
        for w in mapped:
            if w in (BOS, EOS):
                raise ValueError(f"sentence contains the reserved symbol {w!r}: {' '.join(words)[:80]}")
        toks = [BOS, *mapped, EOS]
        num_sent += 1
        num_tok += len(mapped) + 1
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(toks) - n + 1):
                c[tuple(toks[i:i + n])] += 1
    return counts, num_sent, num_tok, num_oov


def _kn_counts(raw: list[Counter]) -> list[Counter]:
    """Kneser-Ney adjusted counts: the highest order keeps raw counts; lower orders use N1+(. g),
    except n-grams starting with <s> (no left context), which keep their raw counts."""
    order = len(raw)
    adj = [Counter() for _ in range(order)]
    adj[order - 1] = Counter(raw[order - 1])
    for n in range(order - 1, 0, -1):
        cont: Counter = Counter()
        for g in raw[n]:  # (n+1)-grams
            cont[g[1:]] += 1
        a = adj[n - 1]
        for g, c in raw[n - 1].items():
            a[g] = c if g[0] == BOS else cont.get(g, 0)
        for g in list(a):
            if a[g] == 0:  # only reachable through <s>-initial higher n-grams; keep the raw count
                a[g] = raw[n - 1][g]
    return adj


def _discount(counts: Counter, fixed: float | None) -> float:
    if fixed is not None:
        return fixed
    cc = Counter(v for v in counts.values())
    n1, n2 = cc.get(1, 0), cc.get(2, 0)
    d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
    return min(max(d, 0.05), 0.95)


def estimate(sentences: Iterable[Sequence[str]], config: LMConfig, vocab: Sequence[str] | None = None) -> NgramLM:
    """Estimate an interpolated back-off model (see the module docstring)."""
    vset = None if vocab is None else set(vocab) | {config.unk}
    raw, num_sent, num_tok, num_oov = count_ngrams(sentences, config.order, vset, config.unk)
    if num_sent == 0:
        raise ValueError("no sentences: cannot estimate a language model from empty text")
    if vset is None:
        vset = {g[0] for g in raw[0]} | {config.unk}
    vset.discard(BOS)
    vset.add(EOS)
    vocab_list = sorted(vset)
    order = config.order
    kn = config.smoothing == "kneser-ney"
    counts = _kn_counts(raw) if kn else raw
    lm = NgramLM(order=order, vocab=vocab_list, num_sentences=num_sent, num_tokens=num_tok, num_oov_tokens=num_oov)

    # Per order: context totals c(h) = sum_w c(hw) and N1+(h .).
    lower: dict[Ngram, float] = {}  # interpolated probs of the previous (lower) order, natural domain
    uniform = 1.0 / len(vocab_list)
    for n in range(1, order + 1):
        c = counts[n - 1]
        tot: dict[Ngram, float] = defaultdict(float)
        types: dict[Ngram, int] = defaultdict(int)
        for g, v in c.items():
            if g[-1] == BOS:
                continue  # <s> is never predicted
            tot[g[:-1]] += v
            types[g[:-1]] += 1
        d = _discount(Counter({g: v for g, v in c.items() if g[-1] != BOS}), config.discount) if kn else 0.0
        lm.discounts.append(d)
        probs: dict[Ngram, float] = {}
        gammas: dict[Ngram, float] = {}
        for h in tot:
            gammas[h] = d * types[h] / tot[h] if kn else types[h] / (tot[h] + types[h])

        def p_lower(g: Ngram) -> float:
            if n == 1:
                return uniform
            return lower[g[1:]]  # every suffix of a seen n-gram is a seen (n-1)-gram

        targets = set(g for g in c if g[-1] != BOS)
        if n == 1:
            targets |= {(w,) for w in vocab_list}
        for g in targets:
            h = g[:-1]
            v = c.get(g, 0)
            if kn:
                p = max(v - d, 0.0) / tot[h] + gammas[h] * p_lower(g)
            else:
                p = (v + types[h] * p_lower(g)) / (tot[h] + types[h])
            probs[g] = p
        lm.probs.append({g: math.log(p) for g, p in probs.items()})
        if n == 1:
            lm.probs[0][(BOS,)] = -math.inf
        lm.bows.append({})
        if n > 1:
            # gamma(h) is the back-off weight of context h, stored on the (n-1)-gram h.
            for h, gam in gammas.items():
                lm.bows[n - 2][h] = math.log(gam) if gam > 0 else NEG_INF_LOG10 * math.log(10)
        lower = probs
    return lm


def read_arpa(path: str | os.PathLike) -> NgramLM:
    """An ARPA file (plain or .gz) as an :class:`NgramLM` (natural-log values), for scoring word sequences
    (e.g. lattice rescoring). Values of ``-99`` (log10 zero) become ``-inf``."""
    header = check_arpa(path)
    order = max(int(k.split()[1]) for k in header)
    lm = NgramLM(order, [], [dict() for _ in range(order)], [dict() for _ in range(order)])
    ln10 = math.log(10)
    opener = gzip.open if str(path).endswith(".gz") else open
    n = 0
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("\\"):
                n = int(line[1]) if line[1].isdigit() and line.endswith("-grams:") else 0
                continue
            if n == 0:
                continue
            fields = line.split()
            if len(fields) not in (n + 1, n + 2):
                raise ValueError(f"{path}: malformed {n}-gram line {line[:80]!r}")
            lp = float(fields[0])
            g = tuple(fields[1:n + 1])
            lm.probs[n - 1][g] = -math.inf if lp <= NEG_INF_LOG10 else lp * ln10
            if len(fields) == n + 2:
                lm.bows[n - 1][g] = float(fields[n + 1]) * ln10
    for k, v in header.items():
        got = len(lm.probs[int(k.split()[1]) - 1])
        if got != v:
            raise ValueError(f"{path}: header says {k}={v} but the file has {got}")
    lm.vocab = [g[0] for g in lm.probs[0] if g[0] != "<s>"]
    return lm


def check_arpa(path: str | os.PathLike) -> dict[str, int]:
    """Parse the ``\\data\\`` header of an ARPA file (plain or .gz): {"ngram 1": count, ...}."""
    opener = gzip.open if str(path).endswith(".gz") else open
    header: dict[str, int] = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        first = ""
        for line in f:
            if line.strip():
                first = line.strip()
                break
        if first != "\\data\\":
            raise ValueError(f"{path} is not an ARPA file (first line {first[:40]!r}, expected \\data\\)")
        for line in f:
            line = line.strip()
            if not line:
                if header:
                    break
                continue
            if not line.startswith("ngram "):
                break
            k, v = line.split("=")
            header[k] = int(v)
    if not header:
        raise ValueError(f"{path}: ARPA header has no 'ngram N=count' lines")
    return header


@dataclass(kw_only=True)
class MakeLmConfig:
    """The ``make-lm`` stage: where the text (or a published ARPA file) comes from and where the model goes."""

    text: str | None = option(None, help="training text, one sentence per line (train only, never dev/test)")
    vocab: str | None = option(None, help="vocabulary: Kaldi words.txt or a word list (others -> <UNK>)")
    arpa: str | None = option(None, help="use this existing ARPA file (.arpa or .arpa.gz) instead of estimating")
    out: str = option(help="output ARPA file (e.g. data/lm/3gram.arpa)")
    force: bool = option(False, help="rebuild even if up to date")


def make_lm(text: str | os.PathLike | None, out: str | os.PathLike, config: LMConfig,
            vocab_path: str | os.PathLike | None = None, arpa: str | os.PathLike | None = None,
            force: bool = False) -> Path:
    """Write ``out`` (ARPA) + ``out.json`` (stats); ``out.stamp.json`` (:mod:`asr_base.stamp`) skips the
    estimation when the options and inputs are unchanged."""
    out = Path(out)
    meta_path = out.with_name(out.name + ".json")
    step = Step(out.with_name(out.name + STAMP_NAME), f"make-lm {out}", config=config,
                inputs={"text": text, "vocab": vocab_path, "arpa": arpa})
    if out.is_file() and meta_path.is_file() and step.up_to_date(force):
        return out
    if arpa:
        header = check_arpa(arpa)
        if str(arpa).endswith(".gz"):
            with gzip.open(arpa, "rb") as src, atomic_path(out) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with atomic_path(out) as tmp:
                shutil.copyfile(arpa, tmp)
        write_json(meta_path, {"source": str(arpa), "ngrams": header})
        step.done(ngrams=header)
        log.info("copied ARPA %s -> %s (%s)", arpa, out, header)
        return out
    if text is None:
        raise ValueError("give a training text (--text) or an existing ARPA file (--arpa)")
    vocab = read_vocab(vocab_path) if vocab_path else None
    lm = estimate(read_sentences(text, config.kaldi_text), config, vocab)
    lm.write_arpa(out)
    stats = {"sentences": lm.num_sentences, "tokens": lm.num_tokens,
             "oov_tokens": lm.num_oov_tokens, "vocab_size": len(lm.vocab), "discounts": lm.discounts,
             "ngrams": {f"ngram {n + 1}": len(p) for n, p in enumerate(lm.probs)}}
    write_json(meta_path, stats)
    step.done(ngrams=stats["ngrams"])
    log.info("%s: %d sentences, %d tokens (%d OOV -> %s), vocab %d, %s", out, lm.num_sentences, lm.num_tokens,
             lm.num_oov_tokens, config.unk, len(lm.vocab), stats["ngrams"])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, MakeLmConfig)
    add_options(parser, LMConfig, title="estimation")


def main(args: argparse.Namespace) -> int:
    job = from_args(MakeLmConfig, args)
    make_lm(job.text, job.out, from_args(LMConfig, args), vocab_path=job.vocab, arpa=job.arpa, force=job.force)
    return 0
