"""Fixtures of the alignment tests: a lang dir of the shared toy lexicon and its monophone HMM, and a writer of
simulated splits (feature store + data dir) for end-to-end alignment runs."""

import numpy as np
import pytest

from data_prep.align.hmm import HmmModel


@pytest.fixture(scope="module")
def lang(make_lexicon, tmp_path_factory):
    from data_prep.lang.lang_dir import write_lang_dir

    return write_lang_dir(make_lexicon(), tmp_path_factory.mktemp("lang") / "lang")


@pytest.fixture(scope="module")
def mono(lang):
    from data_prep.lang.lang_dir import load_topology

    return HmmModel.monophone(load_topology(lang))


def _write_align_split(simulate_corpus, root, lang, name, seed, n, extra=()):
    """A simulated split: ``root/fbank/<name>`` (store) and ``root/data/<name>`` (text, utt2spk); ``extra`` =
    (utt, frames, words or None) odd utterances appended at the end (ids sort last). Returns the corpus, the
    utterance ids and lengths."""
    from data_prep.corpus.data_dir import DataDir
    from data_prep.features.store import write_store

    c = simulate_corpus(lang, num_utts=n, seed=seed, separation=3.0, state_frames=(3, 6))
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
def write_align_split(simulate_corpus):
    return lambda *a, **kw: _write_align_split(simulate_corpus, *a, **kw)
