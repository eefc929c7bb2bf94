"""The LibriSpeech recipe end to end on a local LibriSpeech-layout directory (the tiny synthetic corpus renamed
to train-clean-100 / dev-clean / test-clean, with a local lexicon file and ARPA LM): every stage's wiring
without a download. Its own module (and its own tiny corpus), so a second test worker can run it beside the
mini recipe's tests."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, recipe) -> Path:
    """The tiny mini recipe's stages 0-3: corpus, data dirs (their words) and the trigram LM."""
    d = tmp_path_factory.mktemp("tiny")
    recipe.run("recipes/mini/run.sh", "--size", "tiny", "--dir", str(d), "--stop-stage", "3")
    return d


@pytest.fixture(scope="module")
def librispeech_run(recipe, tiny_corpus, tmp_path_factory):
    """recipes/librispeech/run.sh, every stage, on a LibriSpeech-layout copy of the tiny corpus (no download):
    (its stderr, the temporary dir with run/, conf/, corpus/ and lm/, the recipe's options)."""
    d = tiny_corpus
    tmp_path = tmp_path_factory.mktemp("librispeech")
    corpus = tmp_path / "corpus/LibriSpeech"
    for ours, theirs in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test", "test-clean")):
        shutil.copytree(d / "data/corpus/LibriSpeech" / ours, corpus / theirs)
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    # a LibriSpeech-style lexicon (WORD PH1 PH2 ... with stress) for every word of the corpus
    from data_prep.lang.lexicon import load_cmudict  # noqa: PLC0415

    words = {w for f in (d / "data").glob("*/text") for line in f.read_text().splitlines() for w in line.split()[1:]}
    cmu = load_cmudict(keep_stress=True).prons
    (lm_dir / "librispeech-lexicon.txt").write_text(
        "".join(f"{w} {' '.join(cmu[w][0])}\n" for w in sorted(words) if w in cmu))
    with gzip.open(lm_dir / "3-gram.pruned.1e-7.arpa.gz", "wt") as f:
        f.write((d / "data/lm/3gram.arpa").read_text())
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "recipes/librispeech/conf", conf)
    (conf / "align_100h.conf").write_text("--num-leaves 60 --mono-gauss 150 --tri-gauss 300 --mono-iters 6 --tri-iters 4 --tri-realign 2\n")
    (conf / "model.conf").write_text("--hidden-layers 2 --hidden-dim 64 --epochs 2 --min-epochs 1 --epoch-frames 20000\n")
    # LibriSpeech's wide lattice search (beam 11, lattice beam 6) on 2 x 64 nets costs minutes per system: the
    # wiring (lattices, dev sweep, test at dev's point) is what this test checks
    (conf / "decode.conf").write_text("--acoustic-scale 0.1 --beam 7 --max-active 1000 --lattice-beam 2 "
                                      "--sweep-acoustic-scales 0.08 0.14 0.2 --sweep-penalties 0 1\n")
    opts = ["--conf", str(conf), "--corpus-dir", str(tmp_path / "corpus"), "--lm-dir", str(lm_dir), "--jobs", "2",
            "--num-teachers", "2", "--dev-parts", "dev-clean", "--test-parts", "test-clean", "--decode-systems", "table1"]
    proc = recipe.run("recipes/librispeech/run.sh", "--dir", str(tmp_path / "run"), *opts)
    return proc.stderr, tmp_path, opts


def test_librispeech_recipe_on_local_copy(recipe, librispeech_run):
    """Every stage of recipes/librispeech/run.sh on a LibriSpeech-layout dir, no download."""
    stderr, tmp_path, _ = librispeech_run
    lm_dir = tmp_path / "lm"
    assert recipe.steps_run(stderr) == ["download", "data_dirs", "features", "lang_lm", "align", "baseline",
                                       "teachers", "students", "frame_accuracy", "graph", "decode", "export"]
    run = tmp_path / "run"
    assert (run / "data/train/wav.scp").is_file()  # combined from the train parts
    lexicon = {ln.split()[0] for ln in (lm_dir / "librispeech-lexicon.txt").read_text().splitlines()}
    recipe.check_decoding_vocabulary(run, lexicon, ["dev-clean", "test-clean"])
    recipe.check_tuning(run, "dev-clean", ["test-clean"])
    recipe.check_run(run, ["dev-clean", "test-clean"], table1_only=True)



def _wers(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): json.loads(p.read_text())["wer"] for p in sorted(run.glob("exp/decode/*/*/wer.json"))}


def test_librispeech_recipe_with_an_imported_kaldi_system(recipe, librispeech_run, kaldi_layout, tmp_path):
    """--kaldi-ali / --kaldi-lang: the native run's system written out as Kaldi leaves one (ali.*.gz of transition
    ids, tree, final.mdl per split; the decoding lang dir with phones/align_lexicon.txt and no lexicon.txt),
    imported from stage 4 on into a copy of the run without its system, graph, decodings and export: the same labels
    (so no model is retrained), the same graph from Kaldi's lang dir, the same WER, the same exported lexicon; and
    --nnet-align realigns every part with the ensemble on the imported system."""
    _, base, opts = librispeech_run
    run = base / "run"
    kaldi = tmp_path / "kaldi"
    for s in ("train", "dev-clean", "test-clean"):
        kaldi_layout.ali_dir(run / "exp/tri", run / "data/fbank" / s, s, kaldi / "ali" / s)
    kaldi_layout.lang_dir(run / "data/lang_test", kaldi / "lang")
    run2 = tmp_path / "run"
    shutil.copytree(run, run2)  # copy2: mtimes kept, so the stamps of the copied stages stay valid
    for d in ("exp/tri", "exp/graph", "exp/decode", "exp/export"):  # rebuilt from the imported system
        shutil.rmtree(run2 / d)
    model_mtime = (run2 / "exp/baseline/final.pt").stat().st_mtime_ns
    proc = recipe.run("recipes/librispeech/run.sh", "--dir", str(run2), *opts, "--stage", "4",
                      "--kaldi-ali", str(kaldi / "ali"), "--kaldi-lang", str(kaldi / "lang"), "--nnet-align", "true")
    assert recipe.steps_run(proc.stderr)[0] == "align"
    assert json.loads((run2 / "exp/tri/report.json").read_text())["source"] == "kaldi"  # imported, not aligned
    for s in ("train", "dev-clean", "test-clean"):
        assert (run2 / "exp/tri/ali" / s / "pdf.npy").read_bytes() == (run / "exp/tri/ali" / s / "pdf.npy").read_bytes()
    assert (run2 / "exp/baseline/final.pt").stat().st_mtime_ns == model_mtime  # same labels: not retrained
    assert (run2 / "exp/graph/HCLG.fst").read_bytes() == (run / "exp/graph/HCLG.fst").read_bytes()
    assert _wers(run2) == _wers(run) and len(_wers(run)) >= 6
    assert (run2 / "exp/export/lexicon.txt").read_text() == (run / "exp/export/lexicon.txt").read_text()
    # --nnet-align: every part realigned by the ensemble on Kaldi's HMMs, tree and lang dir (stage 12)
    assert recipe.steps_run(proc.stderr)[-1] == "nnet_align"
    for s in ("train", "dev-clean", "test-clean"):
        done = json.loads((run2 / "exp/tri_nnet/ali" / s / "done.json").read_text())
        assert done["fraction_aligned"] > 0.5, s
    assert (run2 / "exp/tri_nnet/final.mdl").read_bytes() == (run2 / "exp/tri/final.mdl").read_bytes()
