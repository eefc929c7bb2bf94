"""import-kaldi-ali: Kaldi int-vector pdf alignments -> pdf.npy aligned 1:1 with a feature store."""

import dataclasses
import gzip
import json
import logging

from asr_base.kaldi_io import kaldi_io
import numpy as np
import pytest

from data_prep.features.store import write_store
from data_prep.align.kaldi_ali import ImportConfig, fit_length, import_kaldi_ali

NUM_PDFS = 50
LENGTHS = {"u1": 30, "u2": 25, "u3": 20, "u4": 15, "u5": 40, "u6": 12, "u7": 18}


@pytest.fixture()
def store(tmp_path):
    utts = sorted(LENGTHS)
    lengths = [LENGTHS[u] for u in utts]
    feats = np.random.default_rng(0).standard_normal((sum(lengths), 40)).astype(np.float16)
    return write_store(tmp_path / "fbank" / "train", feats, utts, lengths, ["s1"] * len(utts))


def labels(utt, n, seed):
    return np.random.default_rng(seed).integers(0, NUM_PDFS, n).astype(np.int32)


def write_ark(path, entries):
    plain = path.with_suffix(".ark") if str(path).endswith(".gz") else path
    with open(plain, "wb") as f:
        for utt, vec in entries:
            kaldi_io.write_vec_int(f, np.asarray(vec, dtype=np.int32), key=utt)
    if plain != path:  # kaldi-io cannot write into a gzip stream; compress afterwards (like Kaldi's ali.N.gz)
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()


def test_fit_length():
    np.testing.assert_array_equal(fit_length(np.array([1, 2, 3]), 5), [1, 2, 3, 3, 3])
    np.testing.assert_array_equal(fit_length(np.array([1, 2, 3]), 2), [1, 2])


def test_import_labels_failures_and_priors(tmp_path, store, caplog):
    truth = {u: labels(u, n, i) for i, (u, n) in enumerate(sorted(LENGTHS.items()))}
    entries = [
        ("u1", truth["u1"]),  # exact
        ("u2", np.concatenate([truth["u2"], [7]])),  # one label too many: truncated
        ("u3", truth["u3"][:-2]),  # two too few: padded with the last label
        # u4 missing
        ("u5", truth["u5"][:30]),  # 10 frames short: beyond tolerance
        ("u6", np.full(12, NUM_PDFS, np.int32)),  # pdf id out of range
        ("zz", np.zeros(5, np.int32)),  # not in the store
    ]
    write_ark(tmp_path / "ali.1.ark", entries)
    write_ark(tmp_path / "ali.2.gz", [("u7", truth["u7"]), ("u1", np.zeros(30, np.int32))])  # u1 duplicate
    out = tmp_path / "exp" / "kaldi" / "ali" / "train"
    cfg = ImportConfig([f"ark:{tmp_path / 'ali.1.ark'}", str(tmp_path / "ali.2.gz")], str(store.root), NUM_PDFS, str(out))
    report = import_kaldi_ali(cfg)

    pdf = np.load(out / "pdf.npy")
    assert pdf.dtype == np.int32 and pdf.shape == (store.num_frames,)
    seg = {u: pdf[s:s + n] for u, s, n in zip(store.utt_ids, store.starts, store.lengths)}
    np.testing.assert_array_equal(seg["u1"], truth["u1"])
    np.testing.assert_array_equal(seg["u2"], truth["u2"])
    np.testing.assert_array_equal(seg["u3"], np.concatenate([truth["u3"][:-2], truth["u3"][[-3, -3]]]))
    np.testing.assert_array_equal(seg["u7"], truth["u7"])
    for u in ("u4", "u5", "u6"):
        assert (seg[u] == -1).all()

    failed = dict(line.split("\t") for line in (out / "failed.tsv").read_text().splitlines()[1:])
    assert set(failed) == {"u4", "u5", "u6"}
    assert "missing" in failed["u4"] and "length mismatch" in failed["u5"] and "outside" in failed["u6"]
    adjusted = (out / "adjusted.tsv").read_text()
    assert "u2\t" in adjusted and "u3\t" in adjusted
    ignored = (out / "ignored.tsv").read_text()
    assert "zz\tnot in the feature store" in ignored and "u1\tduplicate" in ignored

    counts = np.load(out / "pdf_counts.npy")
    np.testing.assert_array_equal(counts, np.bincount(pdf[pdf >= 0], minlength=NUM_PDFS))
    assert counts.dtype == np.int64 and counts.shape == (NUM_PDFS,)
    assert (out / "num_pdfs").read_text().strip() == str(NUM_PDFS)
    exp = tmp_path / "exp" / "kaldi"  # train split: priors go to the experiment dir too
    np.testing.assert_array_equal(np.load(exp / "pdf_counts.npy"), counts)
    assert report["imported"] == 4 and report["failed"] == 3 and report["adjusted"] == 2

    # resume: nothing is redone; a changed option or alignment file redoes the import, and says why
    mtime = (out / "pdf.npy").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        import_kaldi_ali(cfg)
        assert (out / "pdf.npy").stat().st_mtime_ns == mtime and "up to date" in caplog.text
        assert import_kaldi_ali(dataclasses.replace(cfg, tolerance=10))["adjusted"] == 3  # u5 now padded
        assert "option changed: tolerance 2 -> 10" in caplog.text
        caplog.clear()
        write_ark(tmp_path / "ali.1.ark", entries[:1])
        assert import_kaldi_ali(dataclasses.replace(cfg, tolerance=10))["imported"] == 2  # u1 (the duplicate), u7
        assert "input changed: ali.0" in caplog.text


@pytest.mark.e2e
def test_scp_text_ark_and_cli(tmp_path, store):
    from data_prep.cli import main

    truth = {u: labels(u, n, 10 + i) for i, (u, n) in enumerate(sorted(LENGTHS.items()))}
    scp_lines = []
    for u, vec in truth.items():  # one ark per utterance; the scp points at the data after "key "
        ark = tmp_path / f"{u}.ark"
        write_ark(ark, [(u, vec)])
        scp_lines.append(f"{u} {ark}:{len(u) + 1}\n")
    (tmp_path / "ali.scp").write_text("".join(scp_lines))
    out = tmp_path / "exp" / "k" / "ali" / "dev"
    assert main(["import-kaldi-ali", "--ali", f"scp:{tmp_path / 'ali.scp'}", "--store", str(store.root),
                 "--num-pdfs", str(NUM_PDFS), "--out", str(out)]) == 0
    pdf = np.load(out / "pdf.npy")
    np.testing.assert_array_equal(pdf, np.concatenate([truth[u] for u in store.utt_ids]))
    assert not (tmp_path / "exp" / "k" / "pdf_counts.npy").exists()  # dev: no priors in the exp dir

    # text archive (ali-to-pdf ark,t:) with a corrupt last entry: the rest is reported, not a crash
    txt = tmp_path / "ali.txt"
    txt.write_text("u1 " + " ".join(map(str, truth["u1"])) + "\nu2 1 2 x\n")
    out2 = tmp_path / "exp" / "k" / "ali" / "other"
    assert main(["import-kaldi-ali", "--ali", f"ark,t:{txt}", "--store", str(store.root), "--num-pdfs", str(NUM_PDFS),
                 "--out", str(out2)]) == 0  # the rspecifier stays whole (commas, spaces)
    report = json.loads((out2 / "report.json").read_text())
    assert report["config"]["ali"] == [f"ark,t:{txt}"]
    assert report["imported"] == 1 and report["read_errors"] == 1
    np.testing.assert_array_equal(np.load(out2 / "pdf.npy")[:30], truth["u1"])
