"""validate-data-dir: each kind of broken data dir is caught with a clear message; a good one passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpus.data_dir import DataDir
from data_prep.corpus.validate_data_dir import ValidateConfig, validate, validate_data_dir

SR = 16000


@pytest.fixture
def good_dir(tmp_path) -> Path:
    """A valid data dir (2 speakers x 3 utterances) whose wav.scp points at real FLAC files."""
    d = DataDir()
    rng = np.random.default_rng(0)
    for spk in ("1-10", "2-20"):
        for i in range(3):
            utt = f"{spk}-{i:04d}"
            path = tmp_path / "audio" / f"{utt}.flac"
            path.parent.mkdir(exist_ok=True)
            n = 1600 * (i + 1)
            sf.write(path, (rng.standard_normal(n) * 1000).astype(np.int16), SR, format="FLAC")
            d.wav[utt] = str(path)
            d.text[utt] = f"WORD {i}"
            d.utt2spk[utt] = spk
            d.utt2num_samples[utt] = n
            d.utt2dur[utt] = n / SR
    out = tmp_path / "data"
    d.write(out)
    return out


def edit(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(f"{ln}\n" for ln in fn(lines)))


def only_problem(problems: list[str], *needles: str) -> str:
    assert len(problems) >= 1, "expected a problem"
    hits = [p for p in problems if all(n in p for n in needles)]
    assert hits, problems
    return hits[0]


def test_good_dir_passes(good_dir):
    assert validate_data_dir(good_dir, sample_rate=SR) == []
    assert validate(ValidateConfig(str(good_dir))) == []


def test_missing_required_file(good_dir):
    (good_dir / "utt2dur").unlink()
    only_problem(validate_data_dir(good_dir), "utt2dur", "required file missing")
    assert validate_data_dir(good_dir, require_utt2dur=False) == []
    (good_dir / "text").unlink()
    assert validate_data_dir(good_dir, require_utt2dur=False, require_text=False) == []


def test_not_a_directory(tmp_path):
    assert validate_data_dir(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]


def test_unsorted_file(good_dir):
    edit(good_dir / "text", lambda ls: [ls[1], ls[0]] + ls[2:])
    problems = validate_data_dir(good_dir)
    assert len(problems) == 1
    assert "text: not sorted in C (byte) order" in problems[0]


def test_c_order_not_locale_order(good_dir):
    """Upper-case sorts before lower-case in C order; a case-insensitive sort is reported."""
    for name in ("wav.scp", "text", "utt2spk", "utt2dur", "utt2num_samples"):
        edit(good_dir / name, lambda ls: ls + ["2-20-a x", "2-20-B x"] if name != "utt2num_samples"
             else ls + ["2-20-a 5", "2-20-B 5"])
    only_problem(validate_data_dir(good_dir, check_audio=False), "wav.scp", "not sorted")


def test_duplicate_keys(good_dir):
    edit(good_dir / "utt2dur", lambda ls: ls[:1] + ls)
    only_problem(validate_data_dir(good_dir), "utt2dur", "duplicate key", "1-10-0000")


def test_mismatched_utterance_sets(good_dir):
    edit(good_dir / "text", lambda ls: ls[:-1])
    edit(good_dir / "utt2dur", lambda ls: ls + ["2-20-0099 1.0"])
    problems = validate_data_dir(good_dir)
    only_problem(problems, "wav.scp and text differ", "1 only in wav.scp", "2-20-0002")
    only_problem(problems, "wav.scp and utt2dur differ", "1 only in utt2dur", "2-20-0099")


def test_bad_spk2utt(good_dir):
    edit(good_dir / "spk2utt", lambda ls: [ls[0].rsplit(" ", 1)[0], ls[1]])  # drops one utterance of 1-10
    only_problem(validate_data_dir(good_dir), "spk2utt", "does not match utt2spk", "1-10")
    edit(good_dir / "spk2utt", lambda ls: ls + ["3-30 3-30-0000"])
    only_problem(validate_data_dir(good_dir), "spk2utt", "not in utt2spk", "3-30")


def test_unsorted_spk2utt_list(good_dir):
    edit(good_dir / "spk2utt", lambda ls: [" ".join([ls[0].split()[0]] + ls[0].split()[1:][::-1])] + ls[1:])
    only_problem(validate_data_dir(good_dir), "spk2utt", "not sorted", "1-10")


def test_speaker_prefix_required(good_dir):
    # speaker "zz" for the 1-10 utterances: not a prefix, and it sorts after speaker 2-20
    edit(good_dir / "utt2spk", lambda ls: [ln.replace(" 1-10", " zz") for ln in ls])
    edit(good_dir / "spk2utt", lambda ls: ls[1:] + [ls[0].replace("1-10 ", "zz ", 1)])
    problems = validate_data_dir(good_dir)
    assert len(problems) == 2, problems
    only_problem(problems, "do not start with their speaker id", "1-10-0000 (speaker zz)")
    only_problem(problems, "sorting by speaker gives a different order")


def test_empty_transcript_and_bad_durations(good_dir):
    edit(good_dir / "text", lambda ls: [ls[0].split(" ")[0]] + ls[1:])
    edit(good_dir / "utt2dur", lambda ls: [ls[0].split(" ")[0] + " 0.000", ls[1].split(" ")[0] + " abc"] + ls[2:])
    problems = validate_data_dir(good_dir)
    only_problem(problems, "text", "empty transcript", "1-10-0000")
    only_problem(problems, "utt2dur", "non-positive", "1-10-0000")
    only_problem(problems, "utt2dur", "not numbers", "1-10-0001")


def test_duration_disagrees_with_samples(good_dir):
    edit(good_dir / "utt2num_samples", lambda ls: [ls[0].split(" ")[0] + " 8000"] + ls[1:])
    assert validate_data_dir(good_dir) == []  # rate unknown: no cross-check
    only_problem(validate_data_dir(good_dir, sample_rate=SR), "disagree", "1-10-0000")


def test_missing_audio_file(good_dir):
    d = DataDir.load(good_dir)
    Path(d.wav["2-20-0001"]).unlink()
    only_problem(validate_data_dir(good_dir), "audio file(s) do not exist", "2-20-0001")
    assert validate_data_dir(good_dir, check_audio=False) == []


def test_piped_wav_entries_not_checked(good_dir):
    edit(good_dir / "wav.scp", lambda ls: [ln.split(" ")[0] + " flac -c -d -s /no/such.flac |" for ln in ls])
    assert validate_data_dir(good_dir) == []


def test_line_format_problems(good_dir):
    (good_dir / "utt2spk").write_text((good_dir / "utt2spk").read_text().replace("\n", "\r\n", 1) + "\n")
    problems = validate_data_dir(good_dir)
    only_problem(problems, "utt2spk", "carriage returns")
    only_problem(problems, "utt2spk", "blank line")


def test_spk2gender_checked(good_dir):
    (good_dir / "spk2gender").write_text("1-10 f\n2-20 x\n")
    only_problem(validate_data_dir(good_dir), "spk2gender", "not 'm' or 'f'")
    (good_dir / "spk2gender").write_text("1-10 f\n")
    only_problem(validate_data_dir(good_dir), "spk2gender", "speaker set differs")


def test_cli_exit_status(good_dir, capfd):
    from data_prep import cli

    assert cli.main(["validate-data-dir", str(good_dir), "--sample-rate", "16000"]) == 0
    edit(good_dir / "wav.scp", lambda ls: ls[::-1])
    capfd.readouterr()
    assert cli.main(["validate-data-dir", str(good_dir)]) == 1
    err = capfd.readouterr().err
    assert "NOT a valid data dir" in err and "wav.scp: not sorted" in err


def test_cli_no_flags(good_dir):
    from data_prep import cli

    (good_dir / "utt2dur").unlink()
    (good_dir / "text").unlink()
    assert cli.main(["validate-data-dir", str(good_dir)]) == 1
    assert cli.main(["validate-data-dir", str(good_dir), "--no-text", "--no-utt2dur", "--no-audio-check"]) == 0
