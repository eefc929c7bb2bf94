"""Shared test helpers: synthetic corpora for the training, report and alignment tests.

Helpers are plain functions exposed as session fixtures (``make_corpus``, ``simulate_corpus``), so a test
asks for them by name; benchmarks import the functions from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from types import SimpleNamespace

from data_prep.features.store import write_store

def _make_corpus(root: Path, num_utts: int = 40, num_pdfs: int = 12, dim: int = 8, seed: int = 0,
                noise: float = 1.5, unaligned: int = 1, min_len: int = 30, max_len: int = 80) -> tuple[Path, Path]:
    """A learnable synthetic split: HMM-like label segments, features = class mean + Gaussian noise.

    The last ``unaligned`` utterances get label -1 (as the alignment stage marks failed utterances).
    Returns ``(store_dir, labels_path)``.
    """
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(1234).normal(size=(num_pdfs, dim))  # classes shared across splits
    lengths = rng.integers(min_len, max_len + 1, size=num_utts)
    labels = []
    for n in lengths:
        seg = []
        while len(seg) < n:
            seg += [int(rng.integers(num_pdfs))] * int(rng.integers(3, 10))
        labels.append(np.asarray(seg[:n]))
    lab = np.concatenate(labels)
    feats = means[lab] + noise * rng.normal(size=(lab.size, dim))
    if unaligned:
        lab[-int(lengths[-unaligned:].sum()):] = -1
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"spk{i % 4}-utt{i:03d}" for i in range(num_utts)]
    write_store(root / "feats", feats.astype(np.float16), ids, lengths.tolist(), [i.split("-")[0] for i in ids])
    np.save(root / "pdf.npy", lab.astype(np.int32))
    return root / "feats", root / "pdf.npy"

@dataclass
class SyntheticCorpus:
    """Features generated from known HMM state sequences (for tests and benchmarks of the aligner)."""

    feats: np.ndarray  # float16 (N, D)
    utt_ids: list[str]
    lengths: list[int]
    speakers: list[str]
    text: dict[str, str]
    true_phone: np.ndarray  # int32 (N,) phone id per frame
    true_state: np.ndarray  # int32 (N,) pdf class per frame


def _simulate_corpus(lang, num_utts: int = 60, words_per_utt: tuple[int, int] = (2, 5), dim: int = 13,
                    state_frames: tuple[int, int] = (2, 7), separation: float = 3.0, seed: int = 0,
                    inner_silence: float = 0.3, model_seed: int = 0) -> SyntheticCorpus:
    """Utterances ``SIL w1 [SIL] w2 ... SIL`` with random state durations; every (phone, pdf class) has its
    own Gaussian (means ``separation`` standard deviations apart on average; drawn with ``model_seed`` so
    that splits made with different ``seed`` share the model), frames are drawn from it."""
    rng = np.random.default_rng(seed)
    words = sorted(w for w in lang.lexicon if w not in ("!SIL", lang.oov))
    phone_ids = lang.real_phone_ids
    max_pc = max(lang.num_pdf_classes(p) for p in phone_ids)
    means = np.random.default_rng(model_seed).normal(0, separation / np.sqrt(2), size=(max(phone_ids) + 1, max_pc, dim))
    sil = lang.phones[lang.optional_silence]
    feats, phones_out, states_out, lengths, utt_ids, text = [], [], [], [], [], {}
    for u in range(num_utts):
        ws = list(rng.choice(words, size=int(rng.integers(words_per_utt[0], words_per_utt[1] + 1))))
        seq = [sil]
        for i, w in enumerate(ws):
            seq += [lang.phones[p] for p in lang.lexicon[w][0]]
            if i + 1 < len(ws) and rng.random() < inner_silence:
                seq.append(sil)
        seq.append(sil)
        ph, st = [], []
        for p in seq:
            for c in range(lang.num_pdf_classes(p)):
                n = int(rng.integers(state_frames[0], state_frames[1] + 1))
                ph += [p] * n
                st += [c] * n
        ph_a, st_a = np.asarray(ph, np.int32), np.asarray(st, np.int32)
        x = means[ph_a, st_a] + rng.normal(size=(len(ph), dim))
        utt = f"spk{u // 20}-utt{u:04d}"
        utt_ids.append(utt)
        lengths.append(len(ph))
        feats.append(x)
        phones_out.append(ph_a)
        states_out.append(st_a)
        text[utt] = " ".join(ws)
    return SyntheticCorpus(np.concatenate(feats).astype(np.float16), utt_ids, lengths,
                           [u.split("-")[0] for u in utt_ids], text, np.concatenate(phones_out),
                           np.concatenate(states_out))


@pytest.fixture(scope="session")
def make_corpus():
    """A learnable synthetic split on disk (feature store + ``pdf.npy``): see :func:`_make_corpus`."""
    return _make_corpus


@pytest.fixture(scope="session")
def simulate_corpus():
    """Features drawn from known HMM state sequences of a lang dir: see :func:`_simulate_corpus`."""
    return _simulate_corpus


def _write_align_split(root, lang, name, seed, n, extra=()):
    """A simulated split: ``root/fbank/<name>`` (store) and ``root/data/<name>`` (text, utt2spk); ``extra`` =
    (utt, frames, words or None) odd utterances appended at the end (ids sort last). Returns the corpus, the
    utterance ids and lengths."""
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import write_store

    c = _simulate_corpus(lang, num_utts=n, seed=seed, separation=3.0, state_frames=(3, 6))
    feats, utts, lengths, spk, text = [c.feats], list(c.utt_ids), list(c.lengths), list(c.speakers), dict(c.text)
    for utt, frames, words in extra:
        feats.append(np.zeros((frames, c.feats.shape[1]), np.float16))
        utts.append(utt)
        lengths.append(frames)
        spk.append("zz")
        if words is not None:
            text[utt] = words
    write_store(root / "fbank" / name, np.concatenate(feats), utts, lengths, spk)
    DataDir(wav={u: "/dev/null" for u in utts}, text=text, utt2spk=dict(zip(utts, spk))).write(root / "data" / name)
    return c, utts, lengths


@pytest.fixture(scope="session")
def write_align_split():
    """A simulated split on disk for end-to-end alignment runs: see :func:`_write_align_split`."""
    return _write_align_split


# ------------------------------------------------------------------------------ toy lexicon / decoding system

def _make_lexicon(num_words: int = 40, seed: int = 0) -> dict:
    """Random words over 12 phones, so that every phone occurs in many contexts (with a tiny fixed lexicon
    phones always co-occur, e.g. B IH G, and a one-state shift across them is as good as the truth)."""
    rng = np.random.default_rng(seed)
    phones = "AA AE AH B D G IH K M N S T".split()
    return {f"W{i:02d}": [tuple(rng.choice(phones, size=int(rng.integers(2, 5))))] for i in range(num_words)}



TOY_LEXICON = {"CAT": [("K", "AE", "T")], "DOG": [("D", "AO", "G")], "BIRD": [("B", "ER", "D")]}
TOY_LM_TEXT = [["CAT", "DOG"], ["DOG", "BIRD"], ["BIRD", "CAT", "DOG"], ["CAT"]]


def _build_toy(root: Path, order: int = 2, force: bool = False):
    """lang dir (data_prep.lang.lang_dir.write_lang_dir) + monophone tree + ARPA + HCLG under ``root``."""
    from asr_base.kaldi import kaldifst  # noqa: F401  (import order, see asr_base.kaldi)
    from asr_kd.decoding import graph
    from asr_kd.decoding.lm import LMConfig, estimate
    from data_prep.lang.lang_dir import write_lang_dir

    lang = write_lang_dir(TOY_LEXICON, root / "lang", sil_prob=0.5)
    ctx = graph.monophone_context_dependency(lang)
    if not (root / "tree").is_file():
        ctx.write(True, str(root / "tree"))
    estimate(TOY_LM_TEXT, LMConfig(order=order)).write_arpa(root / "lm.arpa")
    graph.build_graph(graph.GraphInputs(root / "lang", root / "lm.arpa", root / "tree"), root / "graph", force=force)
    return lang, ctx, root / "graph"


def _state_pdfs(lang, ctx, phone: str) -> list[int]:
    pid = lang.phones[phone]
    out = []
    for c in range(lang.num_pdf_classes(pid)):
        ok, pdf = ctx.compute([pid], c)
        assert ok
        out.append(pdf)
    return out


def _spell(lang, ctx, words, num_pdfs: int, rng: np.random.Generator, sil_between: bool = False,
          floor: float = -8.0) -> np.ndarray:
    """Log-likelihoods (frames, pdfs) spelling SIL + the words' phones (+ SIL between words) + SIL:
    each HMM state holds 1-4 frames with log-likelihood 0 for its pdf and ~``floor`` elsewhere."""
    phones = ["SIL"]
    for i, w in enumerate(words):
        phones += list(lang.lexicon[w][0])
        if sil_between and i < len(words) - 1:
            phones.append("SIL")
    phones.append("SIL")
    rows = [pdf for ph in phones for pdf in _state_pdfs(lang, ctx, ph) for _ in range(int(rng.integers(1, 5)))]
    m = floor + 0.5 * rng.standard_normal((len(rows), num_pdfs)).astype(np.float32)
    m[np.arange(len(rows)), rows] = 0.0
    return m.astype(np.float32)



@pytest.fixture(scope="session")
def make_lexicon():
    """Random words over 12 phones: see :func:`_make_lexicon`."""
    return _make_lexicon


def _write_ali_gz(path, entries):
    """A binary int-vector archive, gzipped afterwards (Kaldi's ali.N.gz; kaldi-io cannot write into gzip)."""
    import gzip

    from asr_base.kaldi_io import kaldi_io

    plain = path.with_suffix(".ark")
    with open(plain, "wb") as f:
        for utt, vec in entries:
            kaldi_io.write_vec_int(f, np.asarray(vec, dtype=np.int32), key=utt)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()


def _kaldi_lang_dir(ours, out):
    """Our lang dir as Kaldi lays one out: no lexicon*.txt, the lexicon in phones/align_lexicon.txt."""
    import shutil

    from data_prep.lang.lang_dir import LangDir

    shutil.copytree(ours, out)
    for f in out.glob("lexicon*.txt"):
        f.unlink()
    lex = LangDir.load(ours).lexicon
    (out / "phones/align_lexicon.txt").write_text(
        "<eps> <eps> SIL\n" + "".join(f"{w} {w} {' '.join(p)}\n" for w, prons in lex.items() for p in prons))
    return out


def _kaldi_ali_dir(tri, store_dir, split, out, jobs=2, edit=None):
    """Our ``<tri>/ali/<split>/tid.npy`` as a Kaldi alignment dir: ``out/ali.1.gz .. ali.<jobs>.gz`` (aligned
    utterances only, dealt out over the jobs) + ``tree`` + ``final.mdl``; ``edit`` may change the entries."""
    import shutil

    from data_prep.features.store import FeatureStore

    fs = FeatureStore.open(store_dir)
    tids = np.load(tri / "ali" / split / "tid.npy")
    entries = [(u, tids[s:s + n]) for u, s, n in zip(fs.utt_ids, fs.starts, fs.lengths) if tids[s] > 0]
    if edit:
        entries = edit(entries)
    out.mkdir(parents=True)
    for j in range(jobs):
        _write_ali_gz(out / f"ali.{j + 1}.gz", entries[j::jobs])
    for f in ("tree", "final.mdl"):
        shutil.copyfile(tri / f, out / f)
    return entries


@pytest.fixture(scope="session")
def kaldi_layout():
    """Our aligner's system as Kaldi leaves one (import-kaldi-system tests): ``ali_dir(tri, store, split, out)``,
    ``lang_dir(ours, out)``."""
    return SimpleNamespace(ali_dir=_kaldi_ali_dir, lang_dir=_kaldi_lang_dir)


@pytest.fixture(scope="session")
def toy():
    """The toy 3-word decoding system: ``toy.build(root)`` -> (lang, tree, graph dir), ``toy.spell``,
    ``toy.state_pdfs``, ``toy.LEXICON``."""
    return SimpleNamespace(build=_build_toy, spell=_spell, state_pdfs=_state_pdfs, LEXICON=TOY_LEXICON)


def pytest_configure(config):
    """The ``gpu`` marker (registered here: pyproject.toml is not edited by stages): tests that need a CUDA
    device and skip without one; ``pytest -m gpu`` runs them (benchmarks/gpu_check.sh)."""
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped cleanly without one")


# the longest test files first, so that with two xdist workers (scripts/run_tests.sh) one runs the mini
# recipe's tests while the other runs everything else, instead of both waiting for the mini tests at the end
_LONGEST_FIRST = ("recipes/test_recipes.py", "recipes/test_librispeech_recipe.py", "recipes/test_digits_recipe.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = str(item.path)
        return next((i for i, name in enumerate(_LONGEST_FIRST) if path.endswith(name)), len(_LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order inside a file and among the other files is kept
