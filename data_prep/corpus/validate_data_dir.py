"""``data-prep validate-data-dir``: check a Kaldi data dir, in the spirit of ``utils/validate_data_dir.sh``.

Checks (each problem becomes one line of the report; at most a few examples are named per problem):

- required files present: ``wav.scp``, ``utt2spk``, ``spk2utt``, ``text`` (unless ``--no-text``),
  ``utt2dur`` (unless ``--no-utt2dur``); every table is valid UTF-8 with no ``\\r``, no blank lines and a
  value on every line (an empty ``text`` value is reported as an empty transcript);
- keys unique and sorted in ``LC_ALL=C`` byte order (Kaldi's tools merge tables assuming this);
- the same utterance set in ``wav.scp``, ``text``, ``utt2spk``, ``utt2dur`` and ``utt2num_samples``;
- ``spk2utt`` is exactly ``utt2spk`` inverted (same speakers, same utterances, sorted utterance lists);
  ``spk2gender`` (when present) covers exactly the speakers with ``m``/``f`` values;
- every utterance id starts with its speaker id and sorting ``utt2spk`` by speaker gives the same order
  as sorting by utterance (Kaldi's requirement, see its data-prep docs);
- no empty transcripts; durations and sample counts positive numbers (and consistent with each
  other when ``--sample-rate`` is given);
- every audio file in ``wav.scp`` exists (piped commands ``... |`` are not run).

Python: :func:`validate_data_dir` returns the list of problems (empty when the dir is fine). The CLI
logs each problem and exits with status 1 if there is any.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from asr_base.config import add_options, from_args, option
from data_prep.corpus.data_dir import DataDir

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


@dataclass
class ValidateConfig:
    data_dir: str = option(cli=False, help="Kaldi data dir, e.g. data/train")  # the positional argument
    require_text: bool = option(True, flag="--text", help="require a text file (--no-text: do not)")
    require_utt2dur: bool = option(True, flag="--utt2dur", help="require an utt2dur file (--no-utt2dur: do not)")
    check_audio: bool = option(True, flag="--audio-check",
                               help="check that audio files exist (--no-audio-check: do not)")
    sample_rate: int | None = option(None, help="check utt2dur against utt2num_samples at this rate (e.g. 16000)")


def _examples(items) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:MAX_EXAMPLES])
    more = f" (+{len(items) - MAX_EXAMPLES} more)" if len(items) > MAX_EXAMPLES else ""
    return f"{shown}{more}"


def _byte_key(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def read_checked_table(path: Path, problems: list[str], allow_empty_value: bool = False) -> dict[str, str] | None:
    """Read a ``key value`` table, appending format problems (encoding, blank lines, order, duplicates).

    Returns {key: value} (first occurrence wins) or None if the file cannot be read at all.
    """
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.append(f"{name}: cannot read: {e}")
        return None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(f"{name}: not valid UTF-8 ({e})")
        content = raw.decode("utf-8", "replace")
    if "\r" in content:
        problems.append(f"{name}: contains carriage returns (\\r, DOS line endings)")
    if content and not content.endswith("\n"):
        problems.append(f"{name}: last line has no newline")
    table: dict[str, str] = {}
    keys: list[str] = []
    blank, no_value, dups, unsorted = [], [], [], []
    for lineno, line in enumerate(content.split("\n")[:-1] if content.endswith("\n") else content.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            if content:
                blank.append(lineno)
            continue
        key, _, value = line.partition(" ")
        if key == "" or key != key.strip():
            no_value.append(f"line {lineno} starts with whitespace")
            key = key.strip() or line.split()[0]
        value = value.strip()
        if not value and not allow_empty_value:
            no_value.append(key)
        if key in table:
            dups.append(key)
            continue
        if keys and _byte_key(key) < _byte_key(keys[-1]):
            unsorted.append(f"{keys[-1]!r} before {key!r} (line {lineno})")
        keys.append(key)
        table[key] = value
    if blank:
        problems.append(f"{name}: {len(blank)} blank line(s), e.g. line {blank[0]}")
    if no_value:
        problems.append(f"{name}: {len(no_value)} line(s) with no value: {_examples(no_value)}")
    if dups:
        problems.append(f"{name}: {len(dups)} duplicate key(s): {_examples(dups)}")
    if unsorted:
        problems.append(f"{name}: not sorted in C (byte) order (LC_ALL=C sort): {len(unsorted)} "
                        f"out-of-order line(s), e.g. {unsorted[0]}")
    return table


def _compare_sets(name_a: str, a, name_b: str, b, problems: list[str]) -> None:
    only_a = sorted(set(a) - set(b), key=_byte_key)
    only_b = sorted(set(b) - set(a), key=_byte_key)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} only in {name_a}: {_examples(only_a)}")
        if only_b:
            parts.append(f"{len(only_b)} only in {name_b}: {_examples(only_b)}")
        problems.append(f"utterance sets of {name_a} and {name_b} differ: " + "; ".join(parts))


def _check_speakers(utt2spk: dict[str, str], spk2utt: dict[str, str] | None, problems: list[str]) -> None:
    bad_value = [u for u, s in utt2spk.items() if len(s.split()) != 1]
    if bad_value:
        problems.append(f"utt2spk: {len(bad_value)} line(s) whose value is not exactly one speaker id: "
                        f"{_examples(bad_value)}")
    not_prefixed = [f"{u} (speaker {s})" for u, s in utt2spk.items() if s and not u.startswith(s)]
    if not_prefixed:
        problems.append(f"utt2spk: {len(not_prefixed)} utterance id(s) do not start with their speaker id "
                        f"(Kaldi requires speaker-prefixed utterance ids): {_examples(not_prefixed)}")
    by_utt = sorted(utt2spk, key=_byte_key)
    by_spk = sorted(utt2spk, key=lambda u: (_byte_key(utt2spk[u]), _byte_key(u)))
    if by_utt != by_spk:
        first = next(i for i, (x, y) in enumerate(zip(by_utt, by_spk)) if x != y)
        problems.append(f"utt2spk: sorting by speaker gives a different order than sorting by utterance "
                        f"(first difference at {by_utt[first]!r} vs {by_spk[first]!r}); make utterance ids "
                        "start with the speaker id")
    if spk2utt is None:
        return
    expected: dict[str, list[str]] = {}
    for u in by_utt:
        expected.setdefault(utt2spk[u], []).append(u)
    only_s2u = sorted(set(spk2utt) - set(expected), key=_byte_key)
    only_u2s = sorted(set(expected) - set(spk2utt), key=_byte_key)
    if only_s2u:
        problems.append(f"spk2utt: {len(only_s2u)} speaker(s) not in utt2spk: {_examples(only_s2u)}")
    if only_u2s:
        problems.append(f"spk2utt: {len(only_u2s)} speaker(s) of utt2spk missing: {_examples(only_u2s)}")
    wrong, unsorted_lists = [], []
    for spk, value in spk2utt.items():
        if spk not in expected:
            continue
        utts = value.split()
        if set(utts) != set(expected[spk]) or len(utts) != len(expected[spk]):
            wrong.append(spk)
        elif utts != expected[spk]:
            unsorted_lists.append(spk)
    if wrong:
        problems.append(f"spk2utt: {len(wrong)} speaker(s) whose utterance list does not match utt2spk: "
                        f"{_examples(wrong)}")
    if unsorted_lists:
        problems.append(f"spk2utt: {len(unsorted_lists)} speaker(s) whose utterance list is not sorted: "
                        f"{_examples(unsorted_lists)}")


def _check_numbers(name: str, table: dict[str, str], parse, problems: list[str]) -> dict[str, float]:
    values, bad, nonpos = {}, [], []
    for k, v in table.items():
        try:
            x = parse(v)
        except ValueError:
            bad.append(f"{k} {v!r}")
            continue
        if not x > 0:  # also catches nan
            nonpos.append(f"{k} {v}")
        values[k] = x
    if bad:
        problems.append(f"{name}: {len(bad)} value(s) that are not numbers: {_examples(bad)}")
    if nonpos:
        problems.append(f"{name}: {len(nonpos)} non-positive value(s): {_examples(nonpos)}")
    return values


def _check_audio(wav: dict[str, str], problems: list[str]) -> None:
    missing, empty_spec = [], []
    for utt, spec in wav.items():
        spec = spec.strip()
        if not spec:
            empty_spec.append(utt)
            continue
        if spec.endswith("|"):  # a piped command (e.g. "flac -c -d -s x.flac |"): not run here
            continue
        if not Path(spec).is_file():  # relative paths are relative to the working directory, as in Kaldi
            missing.append(f"{utt} {spec}")
    if empty_spec:
        problems.append(f"wav.scp: {len(empty_spec)} utterance(s) with no audio path: {_examples(empty_spec)}")
    if missing:
        problems.append(f"wav.scp: {len(missing)} audio file(s) do not exist: {_examples(missing)}")


def validate_data_dir(data_dir: str | os.PathLike, **options) -> list[str]:
    """All problems found in ``data_dir`` (empty list: valid); ``options`` are :class:`ValidateConfig` fields."""
    return validate(ValidateConfig(str(data_dir), **options))


def validate(cfg: ValidateConfig) -> list[str]:
    """All problems found in ``cfg.data_dir`` (empty list: valid). Never raises on bad content."""
    d = Path(cfg.data_dir)
    if not d.is_dir():
        return [f"{d}: not a directory"]
    problems: list[str] = []
    required = ["wav.scp", "utt2spk", "spk2utt"] + (["text"] if cfg.require_text else []) + (
        ["utt2dur"] if cfg.require_utt2dur else [])
    for name in required:
        if not (d / name).is_file():
            problems.append(f"{name}: required file missing")

    def load(name: str, **kw) -> dict[str, str] | None:
        return read_checked_table(d / name, problems, **kw) if (d / name).is_file() else None

    wav = load("wav.scp")
    utt2spk = load("utt2spk")
    spk2utt = load("spk2utt")
    text = load("text", allow_empty_value=True)
    utt2dur = load("utt2dur")
    utt2num_samples = load("utt2num_samples")
    spk2gender = load("spk2gender")

    if wav is not None and not wav:
        problems.append("wav.scp: empty (no utterances)")
    reference_name, reference = ("wav.scp", wav) if wav is not None else ("utt2spk", utt2spk)
    if reference is not None:
        for name, table in (("utt2spk", utt2spk), ("text", text), ("utt2dur", utt2dur),
                            ("utt2num_samples", utt2num_samples)):
            if table is not None and name != reference_name:
                _compare_sets(reference_name, reference, name, table, problems)
    if utt2spk is not None:
        _check_speakers(utt2spk, spk2utt, problems)
    if spk2gender is not None and spk2utt is not None:
        only_g = sorted(set(spk2gender) - set(spk2utt), key=_byte_key)
        only_s = sorted(set(spk2utt) - set(spk2gender), key=_byte_key)
        if only_g or only_s:
            problems.append(f"spk2gender: speaker set differs from spk2utt ({len(only_s)} missing, "
                            f"{len(only_g)} extra: {_examples(only_s + only_g)})")
        bad_g = [f"{s} {g}" for s, g in spk2gender.items() if g not in ("m", "f")]
        if bad_g:
            problems.append(f"spk2gender: {len(bad_g)} value(s) not 'm' or 'f': {_examples(bad_g)}")
    if text is not None:
        empty = [u for u, t in text.items() if not t.strip()]
        if empty:
            problems.append(f"text: {len(empty)} empty transcript(s): {_examples(empty)}")
    durs = _check_numbers("utt2dur", utt2dur, float, problems) if utt2dur is not None else {}
    nums = _check_numbers("utt2num_samples", utt2num_samples, int, problems) if utt2num_samples is not None else {}
    sample_rate = cfg.sample_rate
    if sample_rate and durs and nums:
        tol = 0.001 + 0.5 / sample_rate
        off = [f"{u} dur {durs[u]:g} vs {nums[u]} samples" for u in durs
               if u in nums and abs(nums[u] / sample_rate - durs[u]) > tol]
        if off:
            problems.append(f"utt2dur and utt2num_samples disagree at {sample_rate} Hz for {len(off)} "
                            f"utterance(s): {_examples(off)}")
    if cfg.check_audio and wav:
        _check_audio(wav, problems)
    return problems


def summarize(data_dir: str | os.PathLike) -> str:
    """One line describing a (valid) data dir: utterances, speakers, hours."""
    dd = DataDir.load(data_dir)
    hours = sum(dd.utt2dur.values()) / 3600 if dd.utt2dur else float("nan")
    return f"{len(dd.wav)} utterances, {len(set(dd.utt2spk.values()))} speakers, {hours:.2f} h"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="Kaldi data dir, e.g. data/train")
    add_options(parser, ValidateConfig)


def main(args: argparse.Namespace) -> int:
    cfg = from_args(ValidateConfig, args)
    problems = validate(cfg)
    if problems:
        log.error("%s is NOT a valid data dir (%d problem(s)):", cfg.data_dir, len(problems))
        for prob in problems:
            log.error("  %s", prob)
        return 1
    log.info("%s: OK (%s)", cfg.data_dir, summarize(cfg.data_dir))
    return 0
