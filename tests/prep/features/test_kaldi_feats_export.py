"""export-kaldi-feats: Kaldi reads the store back exactly; an export is redone only when stale."""

import os

import numpy as np

from asr_base.kaldi_io import kaldi_io
from data_prep.features.cmvn import SpeakerCmvn, accumulate_speaker_stats
from data_prep.features.kaldi_feats_export import ExportConfig, export_kaldi_feats




def test_export_import_round_trip_is_identical(raw_store, tmp_path):
    store = raw_store(tmp_path / "store")
    cmvn = accumulate_speaker_stats(store.feats, store.starts, store.lengths, store.speakers)
    cmvn.save(tmp_path / "store" / "cmvn.npz")
    scp = export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi", cmvn_ark=True))
    # read back with kaldi-io itself
    back = dict(kaldi_io.read_mat_scp(str(scp)))
    assert sorted(back) == store.utt_ids
    for u in store.utt_ids:
        assert back[u].dtype == np.float32
        np.testing.assert_array_equal(back[u], store.utt(u).astype(np.float32))
    utt2spk = dict(line.split() for line in (tmp_path / "kaldi" / "utt2spk").read_text().splitlines())
    assert utt2spk == dict(zip(store.utt_ids, store.speakers))
    spk2utt = (tmp_path / "kaldi" / "spk2utt").read_text().splitlines()
    assert spk2utt[1] == "1002 1002-7-0001 1002-7-0002"
    kaldi_cmvn = SpeakerCmvn.read_kaldi(tmp_path / "kaldi" / "cmvn.scp")
    np.testing.assert_array_equal(kaldi_cmvn.stats, cmvn.stats)


def test_export_is_resumable(raw_store, tmp_path):
    raw_store(tmp_path / "store")
    scp = export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    ark = tmp_path / "kaldi" / "feats.ark"
    os.utime(ark, (1, 1))
    export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    assert ark.stat().st_mtime == 1
    with open(ark, "r+b") as f:  # a truncated ark is not a complete export
        f.truncate(ark.stat().st_size - 4)
    export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    assert ark.stat().st_mtime > 1
    assert len(dict(kaldi_io.read_mat_scp(str(scp)))) == 5
    os.utime(ark, (1, 1))
    store = raw_store(tmp_path / "store", seed=1)  # same shapes, new values: the export is stale
    export_kaldi_feats(ExportConfig(tmp_path / "store", tmp_path / "kaldi"))
    assert ark.stat().st_mtime > 1
    np.testing.assert_array_equal(dict(kaldi_io.read_mat_scp(str(scp)))["1002-7-0001"], store.utt("1002-7-0001"))
