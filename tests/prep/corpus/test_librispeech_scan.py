"""librispeech_scan: the split walk pairs audio with transcript lines and lists what it cannot use."""

from data_prep.corpus.librispeech_scan import find_split_dir, match_transcripts, read_speaker_genders, scan_split


def test_scan_and_match(tmp_path):
    chap = tmp_path / "LibriSpeech" / "dev" / "19" / "198"
    chap.mkdir(parents=True)
    for u in ("19-198-0001", "19-198-0002", "19-198-0004"):
        (chap / f"{u}.flac").write_bytes(b"fLaC")
    (chap / "19-198.trans.txt").write_text("19-198-0001 HELLO\n19-198-0002\n19-198-0003 NO AUDIO\n7-1-0001 X\n")
    (chap / "notes.txt").write_text("ignored")
    split = find_split_dir(tmp_path, "dev")
    assert split == (tmp_path / "LibriSpeech" / "dev").absolute()
    scan = scan_split(split)
    assert sorted(scan.audio) == ["19-198-0001", "19-198-0002", "19-198-0004"] and scan.ignored_files == 1
    pairs, skips = match_transcripts(scan)
    assert [(u, spk, text) for u, _, spk, text in pairs] == [("19-198-0001", "19-198", "HELLO")]
    kinds = {s.utt_id: s.kind for s in scan.skipped + skips}
    assert kinds == {"7-1-0001": "malformed-transcript-line", "19-198-0002": "empty-transcript",
                     "19-198-0003": "transcript-without-audio", "19-198-0004": "missing-transcript"}


def test_read_speaker_genders(tmp_path):
    p = tmp_path / "SPEAKERS.TXT"
    p.write_text(";ID |SEX| SUBSET |MINUTES| NAME\n14   | F | train-clean-360  | 25.03 | Kristin LeMoine\n"
                 "16 | f | train-clean-360 | 25.11 | Alys AtteWater\n17   | M | x | 1 | A | B\nbad line\n")
    assert read_speaker_genders(p) == {"14": "f", "16": "f", "17": "m"}
