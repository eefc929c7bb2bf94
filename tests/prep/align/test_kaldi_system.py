"""import-kaldi-system: our own aligner's system written out the way Kaldi leaves it (ali.*.gz of transition ids,
tree, final.mdl, a lang dir with phones/align_lexicon.txt and no lexicon.txt) and imported back."""

import shutil

import numpy as np
import pytest

from data_prep.align.kaldi_system import ImportSystemConfig, import_kaldi_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def native(make_lexicon, write_align_split, tmp_path_factory):
    """A tiny corpus aligned by our own aligner (train with odd utterances that fail, dev)."""
    from data_prep.align.stage import AlignStageConfig, run_align
    from data_prep.lang.lang_dir import write_lang_dir

    root = tmp_path_factory.mktemp("kaldi_system")
    lang = write_lang_dir(make_lexicon(), root / "lang")
    write_align_split(root, lang, "train", 0, 50, [("zz-short", 5, "W00 W01 W02"), ("zz-notext", 40, None)])
    write_align_split(root, lang, "dev", 1, 8)
    run_align(AlignStageConfig(lang=str(root / "lang"), fbank_dir=str(root / "fbank"), data_dir=str(root / "data"),
                               exp=str(root / "exp"), splits=["train", "dev"], mono_iters=5,
                               mono_realign=[1, 2, 4], mono_gauss=100, num_leaves=60, tree_min_count=20,
                               tri_iters=3, tri_realign=[1, 2], tri_gauss=120, jobs=1))
    return root


def kaldi_copy(kaldi_layout, root, dest, edit_dev=None):
    """The native system in Kaldi's layout: <dest>/ali/{train,dev}/ali.*.gz (+ tree, final.mdl), <dest>/lang."""
    for s in ("train", "dev"):
        kaldi_layout.ali_dir(root / "exp/tri", root / "fbank" / s, s, dest / "ali" / s,
                             edit=edit_dev if s == "dev" else None)
    kaldi_layout.lang_dir(root / "lang", dest / "lang")
    return dest


def cfg_for(root, kaldi, out, **kw):
    return ImportSystemConfig(ali_root=str(kaldi / "ali"), kaldi_lang=str(kaldi / "lang"), splits=["train", "dev"],
                              fbank_dir=str(root / "fbank"), out=str(out), **kw)


def test_round_trip_gives_the_native_labels_tree_model_and_lexicon(kaldi_layout, native, tmp_path, caplog):
    from data_prep.lang.lang_dir import LangDir

    kaldi = kaldi_copy(kaldi_layout, native, tmp_path / "kaldi")
    out = tmp_path / "exp_kaldi/tri"
    report = import_kaldi_system(cfg_for(native, kaldi, out))
    tri = native / "exp/tri"
    for s in ("train", "dev"):
        assert np.array_equal(np.load(out / "ali" / s / "pdf.npy"), np.load(tri / "ali" / s / "pdf.npy"))
        assert np.array_equal(np.load(out / "ali" / s / "tid.npy"), np.load(tri / "ali" / s / "tid.npy"))
    failed = (out / "ali/train/failed.tsv").read_text()
    assert "zz-short\tmissing from the alignments" in failed and "zz-notext" in failed
    assert report["splits"]["train"]["failed"] == 2 and report["splits"]["dev"]["failed"] == 0
    assert np.array_equal(np.load(out / "pdf_counts.npy"), np.load(tri / "pdf_counts.npy"))
    assert (out / "num_pdfs").read_text() == (tri / "num_pdfs").read_text()
    assert (out / "tree").read_bytes() == (tri / "tree").read_bytes()
    assert (out / "final.mdl").read_bytes() == (tri / "final.mdl").read_bytes()
    assert LangDir.load(out / "lang").lexicon == LangDir.load(native / "lang").lexicon  # from align_lexicon.txt
    assert (out / "lang/L_disambig.fst").read_bytes() == (native / "lang/L_disambig.fst").read_bytes()
    mtime = (out / "ali/train/pdf.npy").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        import_kaldi_system(cfg_for(native, kaldi, out))  # up to date: nothing rewritten
    assert (out / "ali/train/pdf.npy").stat().st_mtime_ns == mtime


def test_bad_utterances_are_listed_and_the_rest_imported(kaldi_layout, native, tmp_path):
    def spoil(entries):  # one utterance with a transition id outside the model, one 5 frames short
        (u0, t0), (u1, t1) = entries[0], entries[1]
        return [(u0, np.concatenate([t0[:-1], [99999]])), (u1, t1[:-5])] + entries[2:]

    kaldi = kaldi_copy(kaldi_layout, native, tmp_path / "kaldi", edit_dev=spoil)
    report = import_kaldi_system(cfg_for(native, kaldi, tmp_path / "out"))
    failed = (tmp_path / "out/ali/dev/failed.tsv").read_text()
    assert "transition ids outside [1, " in failed and "length mismatch" in failed
    assert report["splits"]["dev"]["failed"] == 2 and report["splits"]["dev"]["imported"] == 6


def test_missing_inputs_are_one_clear_error_before_any_work(kaldi_layout, native, tmp_path):
    kaldi = kaldi_copy(kaldi_layout, native, tmp_path / "kaldi")
    (kaldi / "ali/train/tree").unlink()
    shutil.rmtree(kaldi / "ali/dev")
    (kaldi / "lang/L_disambig.fst").unlink()
    with pytest.raises(FileNotFoundError) as e:
        import_kaldi_system(cfg_for(native, kaldi, tmp_path / "out"))
    msg = str(e.value)
    assert "ali/train/tree" in msg and "ali/dev/ali.*.gz" in msg and "L_disambig.fst" in msg
    assert not (tmp_path / "out").exists()


def test_a_model_of_another_tree_is_refused(kaldi_layout, native, tmp_path):
    kaldi = kaldi_copy(kaldi_layout, native, tmp_path / "kaldi")
    shutil.copyfile(native / "exp/mono/final.mdl", kaldi / "ali/train/final.mdl")  # the monophone model
    with pytest.raises(ValueError, match="does not belong to"):
        import_kaldi_system(cfg_for(native, kaldi, tmp_path / "out"))
    kaldi2 = kaldi_copy(kaldi_layout, native, tmp_path / "kaldi2")
    (kaldi2 / "ali/dev/tree").write_bytes((native / "exp/tri/tree").read_bytes() + b"x")
    with pytest.raises(ValueError, match="different systems"):
        import_kaldi_system(cfg_for(native, kaldi2, tmp_path / "out2"))


def test_cli_help_and_error_exit(tmp_path, capsys):
    from data_prep.cli import main

    with pytest.raises(SystemExit) as e:
        main(["import-kaldi-system", "--help"])
    assert e.value.code == 0 and "--ali-root" in capsys.readouterr().out
    assert main(["import-kaldi-system", "--ali-root", str(tmp_path), "--kaldi-lang", str(tmp_path)]) == 1
