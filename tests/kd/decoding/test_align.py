"""asr-kd align: a DNN trained on a tiny GMM system's labels realigns its splits on the same HMMs."""

import json

import numpy as np
import pytest

from asr_kd.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(make_lexicon, write_align_split, tmp_path_factory):
    """A tiny corpus aligned by our GMM aligner (train with odd utterances that fail, dev) and a DNN trained on
    its train labels."""
    from data_prep.align.stage import AlignStageConfig, run_align
    from data_prep.lang.lang_dir import write_lang_dir

    root = tmp_path_factory.mktemp("nnet_align")
    lang = write_lang_dir(make_lexicon(), root / "lang")
    c, utts, lengths = write_align_split(root, lang, "train", 0, 50,
                                         [("zz-short", 5, "W00 W01 W02"), ("zz-notext", 40, None)])
    write_align_split(root, lang, "dev", 1, 8)
    run_align(AlignStageConfig(lang=str(root / "lang"), fbank_dir=str(root / "fbank"), data_dir=str(root / "data"),
                               exp=str(root / "exp"), splits=["train", "dev"], mono_iters=5,
                               mono_realign=[1, 2, 4], mono_gauss=100, num_leaves=60, tree_min_count=20,
                               tri_iters=3, tri_realign=[1, 2], tri_gauss=120, jobs=1))
    tri = root / "exp/tri"
    assert main(["train", "--train-feats", str(root / "fbank/train"), "--train-labels", str(tri / "ali/train/pdf.npy"),
                 "--dev-feats", str(root / "fbank/dev"), "--dev-labels", str(tri / "ali/dev/pdf.npy"),
                 "--num-pdfs-file", str(tri / "num_pdfs"), "--hidden-layers", "2", "--hidden-dim", "64",
                 "--left-context", "2", "--right-context", "2", "--epochs", "6", "--batch-size", "64", "--lr", "0.05",
                 "--device", "cpu", "--out", str(root / "exp/dnn")]) == 0
    return root, lang, c, utts, lengths


def _align(root, split, *extra):
    return main(["align", "--model", str(root / "exp/dnn/final.pt"), "--priors", str(root / "exp/tri/pdf_counts.npy"),
                 "--feats", str(root / "fbank" / split), "--data", str(root / "data" / split), "--lang",
                 str(root / "lang"), "--gmm-dir", str(root / "exp/tri"), "--out", str(root / "exp/tri_dnn"),
                 "--device", "cpu", *extra])


def test_the_dnn_realigns_every_split_into_a_system_dir(system):
    from data_prep.align.hmm import HmmModel
    from data_prep.align.tree.event_map import TiedStateTree
    from data_prep.lang.lang_dir import load_topology

    root, lang, c, utts, lengths = system
    out, tri = root / "exp/tri_dnn", root / "exp/tri"
    assert _align(root, "train", "--counts") == 0 and _align(root, "dev") == 0
    for f in ("final.mdl", "tree", "num_pdfs"):  # the system the labels belong to, beside them
        assert (out / f).read_bytes() == (tri / f).read_bytes()
    pdf, tid = np.load(out / "ali/train/pdf.npy"), np.load(out / "ali/train/tid.npy")
    assert pdf.dtype == np.int32 and pdf.shape == (sum(lengths),)
    # the failures are listed with the GMM aligner's reasons, and their frames are -1
    failed = dict(line.split("\t") for line in (out / "ali/train/failed.tsv").read_text().splitlines()[1:])
    assert set(failed) == {"zz-short", "zz-notext"}
    assert "too short" in failed["zz-short"] and failed["zz-notext"] == "no transcript"
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for u in failed:
        i = utts.index(u)
        assert (pdf[starts[i]:starts[i] + lengths[i]] == -1).all()
    # the simulated utterances are aligned to the right phones, and mostly to the GMM's states
    n = int(c.true_phone.size)
    hmm = HmmModel(load_topology(lang), TiedStateTree.read(tri / "tree").to_context_dependency())
    assert (tid[:n] > 0).all() and np.mean(hmm.tid2phone[tid[:n]] == c.true_phone) >= 0.95
    assert np.array_equal(pdf[:n], np.where(tid[:n] > 0, hmm.tid2pdf[tid[:n]], -1))
    assert np.mean(pdf[:n] == np.load(tri / "ali/train/pdf.npy")[:n]) >= 0.8
    counts = np.load(out / "pdf_counts.npy")
    assert counts.sum() == (pdf >= 0).sum() and (out / "occupancy.png").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["final_system"] == "tri_dnn" and set(report["splits"]) == {"train", "dev"}
    assert set(report["by_stage"]) == {"tri", "tri_dnn"} and report["states_used"] == int((counts > 0).sum())
    assert report["splits"]["dev"]["fraction_aligned"] == 1.0
    assert report["by_stage"]["tri_dnn"]["train"]["fraction_aligned"] == pytest.approx(50 / 52)
    # a rerun with the same inputs is skipped; another beam redoes the split
    mtime = (out / "ali/dev/pdf.npy").stat().st_mtime_ns
    assert _align(root, "dev") == 0
    assert (out / "ali/dev/pdf.npy").stat().st_mtime_ns == mtime
    assert _align(root, "dev", "--beam", "12") == 0
    assert (out / "ali/dev/pdf.npy").stat().st_mtime_ns != mtime


def test_a_gmm_dir_without_its_system_files_is_refused(system, tmp_path):
    root = system[0]
    gmm = tmp_path / "gmm"
    gmm.mkdir()
    for f in ("final.mdl", "tree"):
        (gmm / f).write_bytes((root / "exp/tri" / f).read_bytes())
    with pytest.raises(FileNotFoundError, match="num_pdfs"):
        main(["align", "--model", str(root / "exp/dnn/final.pt"), "--priors", str(root / "exp/tri/pdf_counts.npy"),
              "--feats", str(root / "fbank/dev"), "--data", str(root / "data/dev"), "--lang", str(root / "lang"),
              "--gmm-dir", str(gmm), "--out", str(tmp_path / "out"), "--device", "cpu"])


def test_an_utterance_with_nan_features_is_listed_and_the_rest_aligned(system, tmp_path):
    import shutil

    from data_prep.features.store import FeatureStore

    root = system[0]
    shutil.copytree(root / "fbank/dev", tmp_path / "dev")
    store = FeatureStore.open(tmp_path / "dev")
    feats = np.load(tmp_path / "dev/feats.npy")
    bad = store.utt_ids[2]
    feats[store.starts[2]:store.starts[2] + store.lengths[2]] = np.nan
    np.save(tmp_path / "dev/feats.npy", feats)
    assert main(["align", "--model", str(root / "exp/dnn/final.pt"), "--priors", str(root / "exp/tri/pdf_counts.npy"),
                 "--feats", str(tmp_path / "dev"), "--data", str(root / "data/dev"), "--lang", str(root / "lang"),
                 "--gmm-dir", str(root / "exp/tri"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    failed = (tmp_path / "out/ali/dev/failed.tsv").read_text().splitlines()[1:]
    assert failed == [f"{bad}\tnon-finite log-likelihoods (NaN or inf in the features?)"]
    done = json.loads((tmp_path / "out/ali/dev/done.json").read_text())
    assert done["aligned"] == len(store.utt_ids) - 1
