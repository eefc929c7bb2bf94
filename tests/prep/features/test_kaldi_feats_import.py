"""import-kaldi-feats: Kaldi features -> store (identical values), CMVN, bad entries, up-to-date check."""

import logging
import os
import struct

import numpy as np
import pytest

from data_prep.features.cmvn import SpeakerCmvn, accumulate_speaker_stats
from data_prep.features.kaldi_feats import CompressedMatrixError, write_matrices_ark
from data_prep.features.kaldi_feats_export import ExportConfig, export_kaldi_feats
from data_prep.features.kaldi_feats_import import ImportConfig, import_kaldi_feats
from data_prep.features.store import FeatureStore




def _compressed_matrix_bytes(rows=3, cols=2):
    """A Kaldi 'CM ' compressed matrix: global header, per-column percentiles, uint8 column-major data."""
    head = b"\0BCM " + struct.pack("<ffii", -1.0, 2.0, rows, cols)
    cols_hdr = struct.pack("<" + "H" * 4 * cols, *([0, 16384, 49152, 65535] * cols))
    return head + cols_hdr + bytes(range(rows * cols))


def test_compressed_matrix_is_a_clear_error(tmp_path):
    ark = tmp_path / "c.ark"
    ark.write_bytes(b"u1 " + _compressed_matrix_bytes())
    (tmp_path / "c.scp").write_text(f"u1 {ark}:3\n")
    (tmp_path / "utt2spk").write_text("u1 s1\n")
    with pytest.raises(CompressedMatrixError, match="copy-feats"):
        import_kaldi_feats(ImportConfig(tmp_path / "c.scp", tmp_path / "store", tmp_path / "utt2spk"))
    assert not (tmp_path / "store").exists()


def test_import_cli_reports_compressed_error(tmp_path, capsys):
    from data_prep.cli import main as data_prep_main

    ark = tmp_path / "c.ark"
    ark.write_bytes(b"u1 " + _compressed_matrix_bytes())
    (tmp_path / "c.scp").write_text(f"u1 {ark}:3\n")
    rc = data_prep_main(["import-kaldi-feats", "--scp", str(tmp_path / "c.scp"), "--out", str(tmp_path / "s")])
    assert rc == 1
    assert "copy-feats --compress=false" in capsys.readouterr().err


def test_import_is_identical_to_the_exported_store(raw_store, tmp_path):
    store = raw_store(tmp_path / "store")
    cmvn = accumulate_speaker_stats(store.feats, store.starts, store.lengths, store.speakers)
    scp = export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    imported = import_kaldi_feats(ImportConfig(scp, tmp_path / "imported", tmp_path / "kaldi" / "utt2spk"))
    assert imported.utt_ids == store.utt_ids and imported.speakers == store.speakers
    np.testing.assert_array_equal(imported.lengths, store.lengths)
    np.testing.assert_array_equal(imported.starts, store.starts)
    np.testing.assert_array_equal(np.asarray(imported.feats), np.asarray(store.feats))
    assert imported.meta["cmvn"] == "none" and imported.meta["source"] == "kaldi"
    got = SpeakerCmvn.load(tmp_path / "imported" / "cmvn.npz")
    np.testing.assert_allclose(got.stats, cmvn.stats, rtol=1e-12)


def test_import_up_to_date_force_and_changed_input(raw_store, tmp_path, caplog):
    raw_store(tmp_path / "store")
    scp = export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    utt2spk = tmp_path / "kaldi" / "utt2spk"
    caplog.set_level(logging.INFO)
    import_kaldi_feats(ImportConfig(scp, tmp_path / "imp", utt2spk))
    feats = tmp_path / "imp" / "feats.npy"
    os.utime(feats, (1, 1))
    import_kaldi_feats(ImportConfig(scp, tmp_path / "imp", utt2spk))
    assert feats.stat().st_mtime == 1 and "up to date" in caplog.text
    import_kaldi_feats(ImportConfig(scp, tmp_path / "imp", utt2spk, apply_cmvn=True))
    assert feats.stat().st_mtime > 1 and "option changed: cmvn 'none' -> 'speaker_mean_var'" in caplog.text
    os.utime(feats, (1, 1))
    utt2spk.write_text(utt2spk.read_text().replace("1003-2-0001 1003", "1003-2-0001 1002"))
    store = import_kaldi_feats(ImportConfig(scp, tmp_path / "imp", utt2spk, apply_cmvn=True))
    assert feats.stat().st_mtime > 1 and "input changed: utt2spk" in caplog.text and store.speakers[-1] == "1002"


def test_import_with_cmvn_and_bad_entries(tmp_path):
    rng = np.random.default_rng(5)
    mats = {
        "a-1": (rng.standard_normal((20, 3)) * 2 + 5).astype(np.float32),
        "a-2": (rng.standard_normal((15, 3)) * 2 + 5).astype(np.float32),
        "b-1": (rng.standard_normal((25, 3)) - 4).astype(np.float32),
        "b-2": rng.standard_normal((9, 4)).astype(np.float32),  # wrong dimension
        "c-1": rng.standard_normal((5, 3)).astype(np.float32),  # no speaker
    }
    # written unsorted: the store follows C-sorted utterance order like our data dirs
    write_matrices_ark(tmp_path / "f.ark", tmp_path / "f.scp", [(k, mats[k]) for k in ["b-1", "a-2", "b-2", "a-1", "c-1"]])
    with open(tmp_path / "f.scp", "a") as f:
        f.write(f"d-1 {tmp_path / 'missing.ark'}:3\n")
    (tmp_path / "utt2spk").write_text("a-1 a\na-2 a\nb-1 b\nb-2 b\nd-1 d\n")
    store = import_kaldi_feats(ImportConfig(tmp_path / "f.scp", tmp_path / "s", tmp_path / "utt2spk", apply_cmvn=True))
    assert store.utt_ids == ["a-1", "a-2", "b-1"] and store.speakers == ["a", "a", "b"]
    assert store.meta["cmvn"] == "speaker_mean_var"
    for spk, utts in (("a", ["a-1", "a-2"]), ("b", ["b-1"])):
        raw = np.concatenate([mats[u] for u in utts]).astype(np.float64)
        y = np.concatenate([store.utt(u) for u in utts]).astype(np.float64)
        np.testing.assert_allclose(y, (raw - raw.mean(0)) / raw.std(0), atol=5e-3)
    rows = {line.split("\t")[0]: line.split("\t")[2] for line in (tmp_path / "s" / "skipped.tsv").read_text().splitlines()[1:]}
    assert sorted(rows) == ["b-2", "c-1", "d-1"]
    assert "dimension 4" in rows["b-2"] and "no speaker" in rows["c-1"] and "cannot read" in rows["d-1"]


def test_import_with_kaldi_cmvn_scp(raw_store, tmp_path):
    store = raw_store(tmp_path / "store")
    scp = export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    # Kaldi stats that only shift the means by known amounts: count 10, sums 10*mu, sumsq for var 4
    speakers = sorted(set(store.speakers))
    mu = np.array([1.0, -2.0, 0.5])
    stats = np.zeros((3, 2, store.dim + 1))
    stats[:, 0, :-1] = 10 * mu[:, None]
    stats[:, 0, -1] = 10
    stats[:, 1, :-1] = 10 * (4 + mu[:, None] ** 2)
    SpeakerCmvn(speakers, stats).write_kaldi(tmp_path / "cmvn.ark", tmp_path / "cmvn.scp")
    out = import_kaldi_feats(ImportConfig(scp, tmp_path / "imp", tmp_path / "kaldi" / "utt2spk", apply_cmvn=True,
                                          cmvn_scp=tmp_path / "cmvn.scp"))
    for u, spk in zip(store.utt_ids, store.speakers):
        k = speakers.index(spk)
        want = (store.utt(u).astype(np.float32) - mu[k]) / 2.0
        np.testing.assert_allclose(out.utt(u).astype(np.float32), want, atol=5e-3)
    np.testing.assert_array_equal(SpeakerCmvn.load(tmp_path / "imp" / "cmvn.npz").stats, stats)


@pytest.mark.e2e
def test_export_import_cli(raw_store, tmp_path):
    from data_prep.cli import main as data_prep_main

    store = raw_store(tmp_path / "store")
    assert data_prep_main(["export-kaldi-feats", "--store", str(tmp_path / "store"), "--out-dir", str(tmp_path / "k")]) == 0
    assert data_prep_main(["import-kaldi-feats", "--scp", str(tmp_path / "k" / "feats.scp"), "--utt2spk",
                           str(tmp_path / "k" / "utt2spk"), "--out", str(tmp_path / "imp")]) == 0
    again = FeatureStore.open(tmp_path / "imp")
    np.testing.assert_array_equal(np.asarray(again.feats), np.asarray(store.feats))
    # rerun: skipped (complete), --force redoes it
    assert data_prep_main(["import-kaldi-feats", "--scp", str(tmp_path / "k" / "feats.scp"), "--utt2spk",
                           str(tmp_path / "k" / "utt2spk"), "--out", str(tmp_path / "imp"), "--force"]) == 0
