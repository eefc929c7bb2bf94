"""skipped.tsv: one row per unusable utterance, sorted, one line per row whatever the reason says."""

import pytest

from data_prep.corpus.skipped import SKIPPED_HEADER, Skip, read_skipped, skipped_tsv, write_skipped


def test_write_read_round_trip_sorted_and_cleaned(tmp_path):
    write_skipped(tmp_path / "s.tsv", [Skip("b-1", "/x/b.flac", "corrupt", "bad\tdata\nhere"),
                                       Skip("a-1", "/x/a.flac", "empty", "empty audio")])
    assert read_skipped(tmp_path / "s.tsv") == [("a-1", "/x/a.flac", "empty audio"), ("b-1", "/x/b.flac", "bad data here")]
    assert skipped_tsv([]) == SKIPPED_HEADER + "\n"
    (tmp_path / "bad.tsv").write_text("no header\n")
    with pytest.raises(ValueError, match="header"):
        read_skipped(tmp_path / "bad.tsv")
