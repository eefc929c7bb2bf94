"""Word error rate with ``jiwer``: totals, per-utterance results and a per-speaker breakdown.

``WER = (S + D + I) / N`` with N the number of reference words. Every reference utterance is scored:
an utterance the decoder failed on (or never produced) counts as all deletions and is listed with its
reason, so failures can never make a model look better. Reference words outside the decoding
vocabulary (OOV, can never be recognised) are kept in the reference and counted separately.

Files written next to the hypotheses (``write_results``): ``wer.json`` (totals + counts),
``per_utt.tsv`` (utt, speaker, N, S, D, I, errors, oov, status, ref, hyp) and ``per_spk.tsv``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import jiwer

from asr_base.io import write_json, write_text


@dataclass
class ErrorCounts:
    ref_words: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """In percent; ``nan`` with no reference words."""
        return 100.0 * self.errors / self.ref_words if self.ref_words else float("nan")

    def add(self, other: "ErrorCounts") -> None:
        self.ref_words += other.ref_words
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.hits += other.hits

    def to_dict(self) -> dict:
        return dict(asdict(self), errors=self.errors, wer=round(self.wer, 4) if self.ref_words else None)


@dataclass
class UttResult:
    utt: str
    speaker: str
    counts: ErrorCounts
    oov: int
    status: str  # "ok" or "failed: <reason>"
    ref: str
    hyp: str


@dataclass
class WerResult:
    total: ErrorCounts
    utts: list[UttResult]
    per_speaker: dict[str, ErrorCounts]
    num_failed: int = 0
    oov_ref_words: int = 0
    extra_hyps: list[str] = field(default_factory=list)  # hypotheses for utterances without a reference

    def summary(self) -> dict:
        return dict(self.total.to_dict(), utterances=len(self.utts), failed=self.num_failed,
                    oov_ref_words=self.oov_ref_words, speakers=len(self.per_speaker),
                    hyps_without_reference=len(self.extra_hyps))


def utterance_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """S/D/I/hits of one utterance (jiwer's Levenshtein alignment)."""
    if not ref and not hyp:
        return ErrorCounts()
    if not ref:
        return ErrorCounts(0, 0, 0, len(hyp), 0)
    if not hyp:
        return ErrorCounts(len(ref), 0, len(ref), 0, 0)
    o = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return ErrorCounts(len(ref), o.substitutions, o.deletions, o.insertions, o.hits)


def compute_wer(refs: Mapping[str, str | Sequence[str]], hyps: Mapping[str, Sequence[str]],
                utt2spk: Mapping[str, str] | None = None, failures: Mapping[str, str] | None = None,
                vocab: set[str] | None = None) -> WerResult:
    """Score every reference utterance. ``hyps`` maps utt -> word list; an utterance in ``failures``
    (utt -> reason) or missing from ``hyps`` is scored as all deletions and listed as failed."""
    failures = dict(failures or {})
    utt2spk = utt2spk or {}
    total = ErrorCounts()
    per_spk: dict[str, ErrorCounts] = defaultdict(ErrorCounts)
    results: list[UttResult] = []
    num_failed = oov_total = 0
    for utt in sorted(refs):
        r = refs[utt]
        ref = r.split() if isinstance(r, str) else list(r)
        if utt in failures:
            hyp, status = [], f"failed: {failures[utt]}"
        elif utt not in hyps:
            hyp, status = [], "failed: no hypothesis"
        else:
            hyp, status = list(hyps[utt]), "ok"
        num_failed += status != "ok"
        c = utterance_counts(ref, hyp)
        oov = sum(1 for w in ref if w not in vocab) if vocab is not None else 0
        oov_total += oov
        spk = utt2spk.get(utt, utt.split("-")[0])
        total.add(c)
        per_spk[spk].add(c)
        results.append(UttResult(utt, spk, c, oov, status, " ".join(ref), " ".join(hyp)))
    extra = sorted(set(hyps) - set(refs))
    return WerResult(total, results, dict(sorted(per_spk.items())), num_failed, oov_total, extra)


def write_results(out_dir: str | os.PathLike, result: WerResult, extra: dict | None = None) -> dict:
    """Write wer.json, per_utt.tsv and per_spk.tsv into ``out_dir``; returns the wer.json content."""
    out_dir = Path(out_dir)
    rows = ["utt\tspeaker\tref_words\tsub\tdel\tins\terrors\toov\tstatus\tref\thyp"]
    for u in result.utts:
        c = u.counts
        rows.append(f"{u.utt}\t{u.speaker}\t{c.ref_words}\t{c.substitutions}\t{c.deletions}\t{c.insertions}\t"
                    f"{c.errors}\t{u.oov}\t{u.status}\t{u.ref}\t{u.hyp}")
    write_text(out_dir / "per_utt.tsv", "\n".join(rows) + "\n")
    rows = ["speaker\tref_words\tsub\tdel\tins\terrors\twer"]
    for spk, c in result.per_speaker.items():
        rows.append(f"{spk}\t{c.ref_words}\t{c.substitutions}\t{c.deletions}\t{c.insertions}\t{c.errors}\t"
                    f"{c.wer:.2f}")
    write_text(out_dir / "per_spk.tsv", "\n".join(rows) + "\n")
    summary = dict(result.summary(), **(extra or {}))
    write_json(out_dir / "wer.json", summary)
    return summary


def read_text(path: str | os.PathLike) -> dict[str, list[str]]:
    """A Kaldi ``text`` file (``utt w1 w2 ...``) -> {utt: words}."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if fields[0] in out:
                raise ValueError(f"{path}:{lineno}: duplicate utterance {fields[0]}")
            out[fields[0]] = fields[1:]
    return out


def write_hyps(path: str | os.PathLike, hyps: Mapping[str, Sequence[str]]) -> None:
    write_text(path, "".join(f"{u} {' '.join(w)}".rstrip() + "\n" for u, w in sorted(hyps.items())))
