"""n-gram estimation: hand-computed probabilities, normalisation, ARPA round trip, <UNK> handling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from asr_base.io import read_json
from asr_base.stamp import STAMP_NAME
from asr_kd.decoding.lm import LMConfig, check_arpa, estimate, make_lm, read_vocab

TEXT = [["a", "b"], ["a"], ["b", "a", "b"]]  # <s> a b </s> | <s> a </s> | <s> b a b </s>


def p(lm, word, history=()):
    return math.exp(lm.logprob(word, history))


def read_arpa(path: Path) -> tuple[dict, dict]:
    """Independent minimal ARPA reader: log10 probs and back-offs keyed by n-gram tuples."""
    probs, bows = {}, {}
    section = 0
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.endswith("-grams:"):
            section = int(line[1])
            continue
        if not line or line.startswith("\\") or line.startswith("ngram"):
            continue
        f = line.split()
        g = tuple(f[1:1 + section])
        probs[g] = float(f[0])
        if len(f) > 1 + section:
            bows[g] = float(f[1 + section])
    return probs, bows


def arpa_prob(probs, bows, word, history) -> float:
    """p(word | history) by ARPA back-off semantics, from the parsed file."""
    h = tuple(history)
    lp = 0.0
    while (h + (word,)) not in probs:
        lp += bows.get(h, 0.0)
        h = h[1:]
    return 10 ** (lp + probs[h + (word,)])


def test_witten_bell_hand_computed():
    lm = estimate(TEXT, LMConfig(order=2, smoothing="witten-bell"))
    # unigrams (excl. <s>): a 3, b 3, </s> 3 -> 9 tokens, 3 types; vocab {a, b, </s>, <UNK>} -> uniform 1/4
    assert p(lm, "a") == pytest.approx((3 + 3 * 0.25) / (9 + 3))
    assert p(lm, "<UNK>") == pytest.approx((0 + 3 * 0.25) / 12)
    # context a: followed by b twice and </s> once (3 tokens, 2 types)
    pa, pend = (3 + 0.75) / 12, (3 + 0.75) / 12
    assert p(lm, "b", ["a"]) == pytest.approx((2 + 2 * pa) / (3 + 2))
    assert p(lm, "</s>", ["a"]) == pytest.approx((1 + 2 * pend) / 5)
    assert p(lm, "a", ["a"]) == pytest.approx(2 * pa / 5)  # unseen bigram: back-off weight x unigram


def test_kneser_ney_hand_computed():
    lm = estimate(TEXT, LMConfig(order=2, smoothing="kneser-ney"))
    # continuation counts: a {<s>, b} = 2, b {<s>, a} = 2, </s> {a, b} = 2 -> n1 = 0 -> D1 clamped to 0.05
    d1 = 0.05
    assert lm.discounts[0] == pytest.approx(d1)
    p_uni = (2 - d1) / 6 + d1 * 3 / 6 * 0.25
    assert p(lm, "a") == pytest.approx(p_uni)
    assert p(lm, "<UNK>") == pytest.approx(d1 * 3 / 6 * 0.25)
    # bigram counts: <s> a 2, a b 2, b </s> 2, a </s> 1, <s> b 1, b a 1 -> n1 = 3, n2 = 3 -> D2 = 1/3
    d2 = 3 / (3 + 2 * 3)
    assert lm.discounts[1] == pytest.approx(d2)
    gamma_a = d2 * 2 / 3
    assert p(lm, "b", ["a"]) == pytest.approx((2 - d2) / 3 + gamma_a * p_uni)
    assert p(lm, "a", ["a"]) == pytest.approx(gamma_a * p_uni)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell"])
def test_trigram_normalised_and_arpa_round_trip(tmp_path, smoothing):
    text = [s.split() for s in ["the cat sat", "the dog sat down", "a cat ran", "the cat ran down the road", "dog"]]
    lm = estimate(text, LMConfig(order=3, smoothing=smoothing))
    lm.write_arpa(tmp_path / "lm.arpa")
    probs, bows = read_arpa(tmp_path / "lm.arpa")
    assert check_arpa(tmp_path / "lm.arpa") == {f"ngram {n}": len(lm.probs[n - 1]) for n in (1, 2, 3)}
    histories = [(), ("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("cat", "the"), ("road", "dog")]
    for h in histories:
        total = sum(arpa_prob(probs, bows, w, h) for w in lm.vocab)
        assert total == pytest.approx(1.0, abs=1e-5), (h, total)
        for w in lm.vocab:
            assert arpa_prob(probs, bows, w, h) == pytest.approx(p(lm, w, h), rel=1e-5)


def test_vocab_maps_oov_to_unk(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("<eps> 0\n!SIL 1\n<UNK> 2\na 3\nb 4\nc 5\n#0 6\n<s> 7\n</s> 8\n")
    assert read_vocab(words) == ["<UNK>", "a", "b", "c"]
    lm = estimate([["a", "zzz", "b"], ["a"]], LMConfig(order=2), vocab=read_vocab(words))
    assert lm.num_oov_tokens == 1
    assert ("zzz",) not in lm.probs[0]
    assert ("a", "<UNK>") in lm.probs[1]
    assert p(lm, "c") > 0  # in the vocabulary but not in the text: uniform share
    assert sum(p(lm, w, ("a",)) for w in lm.vocab) == pytest.approx(1.0)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no sentences"):
        estimate([], LMConfig())
    with pytest.raises(ValueError, match="reserved"):
        estimate([["a", "</s>"]], LMConfig())
    with pytest.raises(ValueError):
        LMConfig(smoothing="good-turing")
    bad = tmp_path / "bad.arpa"
    bad.write_text("not an arpa\n")
    with pytest.raises(ValueError, match="not an ARPA"):
        make_lm(None, tmp_path / "out.arpa", LMConfig(), arpa=bad)


def test_make_lm_cached_and_kaldilm_reads_it(tmp_path):
    from asr_base.kaldi import kaldilm  # noqa: F401  (import order)
    from asr_kd.decoding.graph import make_g

    text = tmp_path / "text"
    text.write_text("u1 a b\nu2 b a b\n")
    words = tmp_path / "words.txt"
    words.write_text("<eps> 0\n<UNK> 1\na 2\nb 3\n#0 4\n<s> 5\n</s> 6\n")
    out = make_lm(text, tmp_path / "lm" / "3g.arpa", LMConfig(kaldi_text=True), vocab_path=words)
    mtime = out.stat().st_mtime_ns
    assert make_lm(text, out, LMConfig(kaldi_text=True), vocab_path=words).stat().st_mtime_ns == mtime  # cached
    # a changed option rebuilds (asr_base.stamp), and the stamp records it
    assert make_lm(text, out, LMConfig(kaldi_text=True, order=2), vocab_path=words).stat().st_mtime_ns != mtime
    assert read_json(out.with_name(out.name + STAMP_NAME))["config"]["order"] == 2
    mtime = out.stat().st_mtime_ns
    text.write_text("u1 a b\nu2 b a\n")  # a changed input rebuilds too
    assert make_lm(text, out, LMConfig(kaldi_text=True, order=2), vocab_path=words).stat().st_mtime_ns != mtime
    G = make_g(out, words)
    assert G.num_states > 0
    copied = make_lm(None, tmp_path / "copy.arpa", LMConfig(), arpa=out)
    assert copied.read_text() == out.read_text()
