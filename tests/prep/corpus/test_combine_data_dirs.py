import pytest

from data_prep.corpus.combine_data_dirs import combine
from data_prep.corpus.data_dir import DataDir


def _dir(path, utts, skipped=()):
    d = DataDir(wav={u: f"/a/{u}.flac" for u in utts}, text={u: "HELLO" for u in utts},
                utt2spk={u: u.rsplit("-", 1)[0] for u in utts}, utt2dur={u: 1.0 for u in utts})
    d.write(path)
    (path / "skipped.tsv").write_text("utt_id\tpath\treason\n" + "".join(f"{s}\t/x\tempty audio\n" for s in skipped))
    return path


def test_combine_keeps_everything_and_skips(tmp_path):
    a = _dir(tmp_path / "a", ["1-1-0001", "1-1-0002"], skipped=["1-1-0003"])
    b = _dir(tmp_path / "b", ["2-5-0001"])
    out = combine([a, b], tmp_path / "train")
    assert out.utt_ids == ["1-1-0001", "1-1-0002", "2-5-0001"]
    back = DataDir.load(tmp_path / "train")
    assert back.spk2utt == {"1-1": ["1-1-0001", "1-1-0002"], "2-5": ["2-5-0001"]}
    assert "1-1-0003\t/x\tempty audio" in (tmp_path / "train/skipped.tsv").read_text()


def test_combine_rejects_duplicate_ids(tmp_path):
    a = _dir(tmp_path / "a", ["1-1-0001"])
    b = _dir(tmp_path / "b", ["1-1-0001"])
    with pytest.raises(ValueError, match="already seen"):
        combine([a, b], tmp_path / "train")


def test_cli_combine_data_dirs(tmp_path):
    from data_prep import cli

    a = _dir(tmp_path / "a", ["1-1-0001"])
    b = _dir(tmp_path / "b", ["2-5-0001"])
    assert cli.main(["combine-data-dirs", "--out", str(tmp_path / "train"), str(a), str(b)]) == 0
    assert DataDir.load(tmp_path / "train").utt_ids == ["1-1-0001", "2-5-0001"]
    assert cli.main(["combine-data-dirs", "--out", str(tmp_path / "again"), str(a), str(a)]) == 1  # id clash
