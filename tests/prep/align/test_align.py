"""End-to-end tests of ``data-prep align`` (data_prep.align.stage) on a tiny synthetic corpus with known alignments."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def corpus(make_lexicon, write_align_split, tmp_path_factory):
    from data_prep.lang.lang_dir import write_lang_dir

    root = tmp_path_factory.mktemp("align")
    lang = write_lang_dir(make_lexicon(), root / "lang")
    extra = [("zz-short", 5, "W00 W01 W02"), ("zz-notext", 40, None), ("zz-oov", 80, "W03 NOTAWORD W04"),
             ("zz-lower", 80, "w03 w04 w05")]  # lower case: no word has a pronunciation
    train = write_align_split(root, lang, "train", 0, 60, extra)
    dev = write_align_split(root, lang, "dev", 1, 10)
    return root, lang, train, dev


def _cfg(root, **kw):
    from data_prep.align.stage import AlignStageConfig

    base = dict(lang=str(root / "lang"), fbank_dir=str(root / "fbank"), data_dir=str(root / "data"),
                exp=str(root / "exp"), splits=["train", "dev"], mono_iters=6, mono_realign=[1, 2, 3, 5],
                mono_gauss=120, num_leaves=80, tree_min_count=20, tri_iters=3, tri_realign=[1, 2], tri_gauss=150,
                jobs=1, mono_subset=45)
    base.update(kw)
    return AlignStageConfig(**base)


@pytest.mark.e2e
def test_align_pipeline_writes_everything_and_lists_failures(corpus):
    from data_prep.align.stage import run_align
    from data_prep.align.tree.event_map import TiedStateTree
    from data_prep.align.hmm import read_final_mdl

    root, lang, (c, utts, lengths), (cdev, dutts, dlengths) = corpus
    report = run_align(_cfg(root))
    tri = root / "exp" / "tri"
    for f in ["final.mdl", "tree", "num_pdfs", "pdf_counts.npy", "report.json", "occupancy.png",
              "ali/train/pdf.npy", "ali/train/phones.ctm", "ali/train/failed.tsv", "ali/dev/pdf.npy"]:
        assert (tri / f).is_file(), f
    num_pdfs = int((tri / "num_pdfs").read_text())
    assert num_pdfs == TiedStateTree.read(tri / "tree").num_pdfs == report["num_tied_states"]
    assert read_final_mdl(tri / "final.mdl").gmm.num_pdfs == num_pdfs
    pdf = np.load(tri / "ali" / "train" / "pdf.npy")
    assert pdf.dtype == np.int32 and pdf.shape == (sum(lengths),)
    # failures: listed with reasons, frames -1; the OOV utterance maps to <UNK> and is not dropped silently
    failed = dict(line.split("\t") for line in (tri / "ali/train/failed.tsv").read_text().splitlines()[1:])
    assert "too short" in failed["zz-short"]
    assert failed["zz-notext"] == "no transcript"
    # mostly out of vocabulary (3 of 3 words): left out of training and alignment, listed with the reason
    assert failed["zz-lower"].startswith("OOV rate 1.00 > --max-oov-rate 0.5: 3 of 3 words")
    mono_failed = (root / "exp/mono/ali/train/failed.tsv").read_text()
    assert "zz-lower\tOOV rate 1.00" in mono_failed
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for u in ("zz-short", "zz-notext", "zz-lower"):
        i = utts.index(u)
        assert (pdf[starts[i]:starts[i] + lengths[i]] == -1).all()
    assert set(failed) <= {"zz-short", "zz-notext", "zz-oov", "zz-lower"} 
    assert not failed.get("zz-oov", "").startswith("OOV")  # 1 of 3 words: kept (aligned to <UNK> = SPN, or tried)
    # the OOV rate per split is in the report: 4 OOV tokens (NOTAWORD + the 3 lower-case words)
    oov = report["splits"]["train"]["oov"]
    assert oov["oov_words"] == 4 and oov["utterances_with_oov"] == 2 and oov["utterances_left_out"] == 1
    assert oov["oov_rate"] == pytest.approx(4 / oov["words"]) and report["oov_rate"]["train"] == oov["oov_rate"]
    assert report["splits"]["dev"]["oov"]["oov_words"] == 0
    # the synthetic utterances are all aligned, and to the right phones
    n = int(c.true_phone.size)
    assert (pdf[:n] >= 0).all()
    tid = np.load(tri / "ali" / "train" / "tid.npy")[:n]
    from data_prep.align.hmm import HmmModel
    from data_prep.lang.lang_dir import load_topology

    hmm = HmmModel(load_topology(lang), TiedStateTree.read(tri / "tree").to_context_dependency())
    assert np.mean(hmm.tid2phone[tid] == c.true_phone) >= 0.95
    assert report["splits"]["dev"]["fraction_aligned"] == 1.0
    # monophones trained on the 45 shortest utterances only; the tree saw the whole train split
    with_text = sorted(n for u, n in zip(utts, lengths) if u not in ("zz-notext", "zz-lower"))
    assert all(h["frames"] <= sum(with_text[:45]) for h in report["mono"]["iterations"])
    assert report["splits"]["train"]["sanity"]["fraction_start_sil"] > 0.9
    counts = np.load(tri / "pdf_counts.npy")
    assert counts.sum() == (pdf >= 0).sum() and report["states_used"] == int((counts > 0).sum())
    # likelihood improves during monophone training
    lls = [h["avg_loglik"] for h in report["mono"]["iterations"]]
    assert lls[-1] > lls[0]
    # CTM: silence at utterance edges
    ctm = [line.split() for line in (tri / "ali/train/phones.ctm").read_text().splitlines()]
    first = {}
    for utt, _ch, st, _dur, ph in ctm:
        first.setdefault(utt, ph)
    assert all(first[u] == "SIL" for u in c.utt_ids)


@pytest.mark.e2e
def test_ctm_times_follow_the_store_frame_shift(corpus, tmp_path):
    import dataclasses

    from data_prep.align.hmm import HmmModel
    from data_prep.align.outputs import write_ctm
    from data_prep.align.report import read_ctm
    from data_prep.align.split_data import load_split
    from data_prep.align.stage import run_align
    from data_prep.align.tree.event_map import TiedStateTree
    from data_prep.lang.lang_dir import load_topology

    root, lang = corpus[0], corpus[1]
    tri = root / "exp" / "tri"
    if not (tri / "report.json").is_file():
        run_align(_cfg(root))
    split = load_split("train", root / "fbank" / "train", {}, lang)
    assert split.frame_shift == 0.01  # the store's meta.json (10 ms when not recorded)
    hmm = HmmModel(load_topology(lang), TiedStateTree.read(tri / "tree").to_context_dependency())
    write_ctm(tmp_path / "ctm", dataclasses.replace(split, frame_shift=0.03), np.load(tri / "ali/train/tid.npy"), hmm,
              lang)
    ours, slow = read_ctm(tri / "ali/train/phones.ctm"), read_ctm(tmp_path / "ctm")
    assert ours.keys() == slow.keys()
    for utt, segs in ours.items():
        assert [p for *_, p in segs] == [p for *_, p in slow[utt]]
        np.testing.assert_allclose([s[:2] for s in slow[utt]], [(3 * a, 3 * b) for a, b, _ in segs], atol=0.011)


def test_max_oov_rate_threshold(corpus):
    """load_split: an utterance is left out only when its OOV fraction is above --max-oov-rate (1 keeps all)."""
    from data_prep.align.split_data import load_split

    root, lang = corpus[0], corpus[1]
    text = {"zz-oov": "W03 NOTAWORD W04", "zz-lower": "w03 w04 w05", "zz-short": "W00 W01 W02"}
    rows = {u: i for i, u in enumerate(load_split("train", root / "fbank" / "train", {}, lang).utt_ids)}
    strict = load_split("train", root / "fbank" / "train", text, lang, max_oov_rate=0.3)
    assert set(strict.excluded) == {rows["zz-oov"], rows["zz-lower"]} and strict.words[rows["zz-short"]] is not None
    assert "1 of 3 words have no pronunciation (NOTAWORD)" in strict.excluded[rows["zz-oov"]]
    keep_all = load_split("train", root / "fbank" / "train", text, lang, max_oov_rate=1.0)
    assert not keep_all.excluded and keep_all.word_strs[rows["zz-lower"]] == ["<UNK>"] * 3
    assert keep_all.oov == {"words": 9, "oov_words": 4, "oov_rate": 4 / 9, "utterances_with_oov": 2,
                            "max_oov_rate": 1.0, "utterances_left_out": 0}
    from data_prep.align.config import AlignStageConfig

    with pytest.raises(ValueError, match="--max-oov-rate must be in"):
        AlignStageConfig(max_oov_rate=1.5)


SUB_STAGES = ("mono", "tree", "tri", "ali train", "ali dev", "report")


def _mtimes(exp):
    return {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}


@pytest.mark.e2e
def test_align_resumes_without_redoing(corpus, caplog):
    from data_prep.align.stage import run_align

    root = corpus[0]
    exp = root / "exp"
    if not (exp / "tri" / "report.json").is_file():
        run_align(_cfg(root))
    report = json.loads((exp / "tri" / "report.json").read_text())
    mtimes = _mtimes(exp)
    with caplog.at_level(logging.INFO):
        again = run_align(_cfg(root, jobs=2, chunk_frames=500))  # speed options change nothing
    assert _mtimes(exp) == mtimes and again == report
    for name in SUB_STAGES:
        assert f"{name}: up to date" in caplog.text
    # an output deleted by hand is rebuilt, with whatever depends on it
    (exp / "tri" / "ali" / "dev" / "phones.ctm").unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_align(_cfg(root))
    assert "ali dev: rebuilding, output missing" in caplog.text and "input changed: ali_dev" in caplog.text
    assert (exp / "tri" / "ali" / "dev" / "phones.ctm").is_file()
    redone = {p for p, t in _mtimes(exp).items() if mtimes.get(p) != t}
    report_files = {"report.json", "pdf_counts.npy", "occupancy.png", ".report.stamp.json"}
    assert redone and all("dev" in p.parts or p.name in report_files for p in redone)


@pytest.mark.e2e
def test_changed_option_rebuilds_only_what_depends_on_it(corpus, caplog):
    """--num-leaves changed: tree, tri, every alignment and the report are rebuilt, the monophones are not."""
    from data_prep.align.hmm import read_final_mdl
    from data_prep.align.stage import run_align
    from data_prep.align.tree.event_map import TiedStateTree

    root = corpus[0]
    exp = root / "exp_leaves"
    tri = exp / "tri"
    first = run_align(_cfg(root, exp=str(exp)))
    before = _mtimes(exp)
    with caplog.at_level(logging.INFO):
        second = run_align(_cfg(root, exp=str(exp), num_leaves=60))
    num_pdfs = second["num_tied_states"]
    assert num_pdfs < first["num_tied_states"]
    assert num_pdfs == int((tri / "num_pdfs").read_text()) == TiedStateTree.read(tri / "tree").num_pdfs
    assert read_final_mdl(tri / "final.mdl").gmm.num_pdfs == num_pdfs
    assert np.load(tri / "pdf_counts.npy").shape == (num_pdfs,)
    for split in ("train", "dev"):
        assert np.load(tri / "ali" / split / "pdf.npy").max() < num_pdfs
    after = _mtimes(exp)
    mono = [p for p in before if "mono" in p.relative_to(exp).parts]
    assert mono and all(after[p] == before[p] for p in mono)  # monophones not retrained
    for f in ("tree", "final.mdl", "pdf_counts.npy", "report.json", "ali/train/pdf.npy", "ali/train/phones.ctm",
              "ali/dev/pdf.npy", "ali/dev/done.json"):
        assert after[tri / f] != before[tri / f], f
    log = caplog.text
    assert "mono: up to date" in log
    assert "tree: rebuilding, option changed: num_leaves 80 -> 60" in log
    assert "tri: rebuilding, input changed: tree" in log
    assert "ali train: rebuilding, input changed: model" in log and "ali dev: rebuilding, input changed: model" in log
    # the same options again: every sub-stage is skipped
    caplog.clear()
    with caplog.at_level(logging.INFO):
        third = run_align(_cfg(root, exp=str(exp), num_leaves=60))
    assert third == second and _mtimes(exp) == after
    for name in SUB_STAGES:
        assert f"{name}: up to date" in caplog.text
    assert "rebuilding" not in caplog.text


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "data_prep.cli", "align", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--num-leaves" in out.stdout and "--jobs" in out.stdout


def test_cli_options_from_conf_file_and_comma_lists(tmp_path):
    from asr_base.cli import build_parser
    from asr_base.config import from_args
    from data_prep.align.stage import AlignStageConfig

    conf = tmp_path / "align.conf"
    conf.write_text("# options\n--num-leaves 600  # tied states\n--tri-realign 3,6\n--reference-timings refs\n")
    parser = build_parser("data-prep", "", [("align", "data_prep.align.stage", "align")])
    args = parser.parse_args(["align", f"@{conf}", "--mono-realign", "1,2,3", "--splits", "train", "dev", "--jobs", "4"])
    cfg = from_args(AlignStageConfig, args)
    assert cfg.mono_realign == [1, 2, 3] and cfg.tri_realign == [3, 6] and cfg.num_leaves == 600
    assert cfg.splits == ["train", "dev"] and cfg.jobs == 4 and cfg.reference_timings == "refs"
    assert cfg.mono_iters == AlignStageConfig().mono_iters and cfg.force is False
    args = parser.parse_args(["align", "--mono-realign", "1", "2", "5", "--force"])
    assert from_args(AlignStageConfig, args).mono_realign == [1, 2, 5] and args.force


def test_gaussian_budget_below_the_leaf_count_is_a_clear_error():
    """--num-leaves 14000 with the default --tri-gauss 4000 once left every tied state with ONE Gaussian."""
    import argparse

    from asr_base.config import add_options, from_args
    from data_prep.align.stage import AlignStageConfig

    with pytest.raises(ValueError, match="--tri-gauss 4000 is below --num-leaves 14000"):
        AlignStageConfig(num_leaves=14000)
    parser = argparse.ArgumentParser()
    add_options(parser, AlignStageConfig)
    with pytest.raises(SystemExit, match="below --num-leaves"):
        from_args(AlignStageConfig, parser.parse_args(["--num-leaves", "900", "--tri-gauss", "800"]))
    assert from_args(AlignStageConfig, parser.parse_args(["--num-leaves", "900", "--tri-gauss", "900"])).tri_gauss == 900
