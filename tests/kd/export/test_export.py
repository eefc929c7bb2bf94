"""Export (TorchScript + ONNX + priors + config) and the decode/loglikes stages end to end on the toy graph.

The acoustic model is an AcousticDNN whose weights copy the centre frame's first ``num_pdfs`` feature
dims to the logits, and the features spell known word sequences: decoding must give exactly them, from
the checkpoint, from the export dir and through the external-decoder stand-in.
"""

from __future__ import annotations

import json
import shlex
import sys

import numpy as np
import pytest
import torch

from asr_kd.cli import main as cli
from asr_kd.nn.model import AcousticDNN, ModelConfig, save_model

SEQS = [["CAT", "DOG"], ["BIRD"], ["DOG", "BIRD", "CAT"], ["CAT", "CAT"], ["BIRD", "DOG"]]
LEFT, RIGHT, DIM = 2, 1, 40


def copy_model(num_pdfs: int) -> AcousticDNN:
    cfg = ModelConfig(num_pdfs=num_pdfs, feat_dim=DIM, left_context=LEFT, right_context=RIGHT, hidden_layers=1,
                      hidden_dim=num_pdfs)
    m = AcousticDNN(cfg)
    lin1, lin2 = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    with torch.no_grad():
        lin1.weight.zero_()
        lin1.weight[:, LEFT * DIM:LEFT * DIM + num_pdfs] = torch.eye(num_pdfs)
        lin1.bias.fill_(20.0)  # keeps the ReLU linear on features >= -20
        lin2.weight.copy_(torch.eye(num_pdfs))
        lin2.bias.fill_(-20.0)
    return m


@pytest.fixture(scope="module")
def setup(toy, tmp_path_factory):
    from data_prep.features.store import write_store

    root = tmp_path_factory.mktemp("e2e")
    lang, ctx, gdir = toy.build(root / "toy")
    P = ctx.num_pdfs
    rng = np.random.default_rng(7)
    utts, mats, text = [], [], {}
    for i, seq in enumerate(SEQS):
        u = f"spk{i % 2}-utt{i}"
        utts.append(u)
        mats.append(toy.spell(lang, ctx, seq, P, rng, sil_between=i % 2 == 1))
        text[u] = " ".join(seq)
    utts.append("spk1-zz_empty")
    mats.append(np.zeros((0, P), np.float32))
    text["spk1-zz_empty"] = "CAT"
    feats = np.zeros((sum(len(m) for m in mats), DIM), np.float16)
    feats[:, :P] = np.concatenate(mats)
    store = write_store(root / "fbank" / "test", feats, utts, [len(m) for m in mats], [u.split("-")[0] for u in utts],
                        {"cmvn": "speaker_mean_var", "num_mel_bins": DIM})
    np.savez(root / "fbank" / "test" / "cmvn.npz", speakers=np.array(["spk0", "spk1"]),
             stats=np.ones((2, 2, DIM + 1)))
    data = root / "data" / "test"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("".join(f"{u} /dev/null\n" for u in utts))
    (data / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    (data / "spk2utt").write_text("")
    save_model(root / "exp" / "m" / "final.pt", copy_model(P))
    np.save(root / "exp" / "pdf_counts.npy", np.full(P, 10, np.int64))
    common = ["--feats", str(store.root), "--priors", str(root / "exp" / "pdf_counts.npy")]
    return root, gdir, common, sum(len(s) for s in SEQS) + 1


def decode(root, gdir, common, out, *extra):
    args = ["decode", *common, "--data", str(root / "data" / "test"), "--graph", str(gdir), "--out", str(root / out),
            "--num-jobs", "1", *extra]
    assert cli(args) == 0
    return json.loads((root / out / "wer.json").read_text())


@pytest.mark.e2e
def test_decode_export_and_external_give_the_same_wer(setup):
    root, gdir, common, n_words = setup
    model = ["--model", str(root / "exp" / "m" / "final.pt")]
    ref = decode(root, gdir, [*model, *common], "dec/ckpt")
    # every spelled utterance exact; the empty one is a listed failure scored as 1 deletion
    assert ref["ref_words"] == n_words and ref["deletions"] == 1 and ref["errors"] == 1 and ref["failed"] == 1
    assert ref["wer"] == pytest.approx(100 / n_words, abs=1e-3)
    failed = (root / "dec/ckpt/failed.tsv").read_text()
    assert "spk1-zz_empty\tno frames" in failed
    assert (root / "dec/ckpt/per_spk.tsv").read_text().count("\n") == 3
    hyp = (root / "dec/ckpt/hyp.txt").read_text()
    assert "spk0-utt2 DOG BIRD CAT\n" in hyp

    # resumable: same inputs and options -> skipped (wer.json untouched); a changed option -> redone
    mtime = (root / "dec/ckpt/wer.json").stat().st_mtime_ns
    decode(root, gdir, [*model, *common], "dec/ckpt")
    decode(root, gdir, [*model, *common], "dec/ckpt", "--num-jobs", "2", "--batch-frames", "100")  # speed only
    assert (root / "dec/ckpt/wer.json").stat().st_mtime_ns == mtime
    redone = decode(root, gdir, [*model, *common], "dec/ckpt", "--beam", "12")
    assert (root / "dec/ckpt/wer.json").stat().st_mtime_ns != mtime and redone["wer"] == ref["wer"]
    assert json.loads((root / "dec/ckpt/.stamp.json").read_text())["config"]["decoder_config"]["beam"] == 12.0
    assert ref["audio_seconds"] == pytest.approx(ref["frames"] * 0.01, abs=0.01)  # the store's 10 ms frame shift

    toy = root / "toy"
    assert cli(["export", *model, "--priors", str(root / "exp" / "pdf_counts.npy"), "--out", str(root / "export"),
                "--feats", str(root / "fbank" / "test"), "--tree", str(toy / "tree"), "--lang", str(toy / "lang")]) == 0
    man = json.loads((root / "export" / "manifest.json").read_text())
    assert man["verification"]["onnx_max_abs_diff"] < 1e-4
    assert man["verification"]["torchscript_fresh_process_max_abs_diff"] < 1e-5
    for f in ("model.ts", "model.onnx", "log_priors.npy", "feature_config.json", "cmvn.npz", "tree", "phones.txt"):
        assert f in man["files"], f
    assert np.load(root / "export" / "cmvn.npz")["global_stats"].shape == (2, DIM + 1)

    exp_res = decode(root, gdir, ["--export", str(root / "export"), "--feats", str(root / "fbank" / "test")],
                     "dec/export")
    assert exp_res["wer"] == ref["wer"] and exp_res["errors"] == ref["errors"]
    assert (root / "dec/export/hyp.txt").read_text() == hyp

    standin = f"{shlex.quote(sys.executable)} -m asr_kd.decoding.decoder_hook --graph {{graph}} ark:{{loglikes_ark}} {{hyp}}"
    ext = decode(root, gdir, [*model, *common], "dec/external", "--decoder", "external", "--external-cmd", standin)
    assert ext["wer"] == ref["wer"] and (root / "dec/external/hyp.txt").read_text() == hyp


@pytest.mark.e2e
def test_export_loader_backends_and_loglikes_ark(setup):
    from asr_kd.decoding.decoder_hook import read_loglikes
    from asr_kd.export.load import load_export
    from asr_kd.export.write import ExportConfig, export
    from asr_kd.decoding.scorer import ModelScorer, load_log_priors
    from data_prep.features.store import FeatureStore

    root, gdir, common, _ = setup
    ckpt = str(root / "exp" / "m" / "final.pt")
    out = root / "export2"
    export(ExportConfig(model=[ckpt, ckpt], out=str(out), priors=str(root / "exp" / "pdf_counts.npy")))  # 2 members
    store = FeatureStore.open(root / "fbank" / "test")
    priors = load_log_priors(root / "exp" / "pdf_counts.npy")
    want = dict(ModelScorer.from_checkpoints([ckpt], priors, store))
    ts, ort = load_export(out), load_export(out, backend="onnx")
    for u, m in want.items():
        x = np.asarray(store.utt(u), np.float32)
        np.testing.assert_allclose(ts.loglikes(x), m, atol=1e-4)
        np.testing.assert_allclose(ort.loglikes(x), m, atol=1e-4)

    assert cli(["loglikes", "--model", ckpt, *common, "--out", str(root / "ll")]) == 0
    got = dict(read_loglikes(f"scp:{root / 'll' / 'loglikes.scp'}"))
    assert set(got) == {u for u, m in want.items() if len(m)}
    for u, m in got.items():
        np.testing.assert_allclose(m, want[u], atol=1e-5)
    assert "spk1-zz_empty\tno frames" in (root / "ll" / "skipped.tsv").read_text()

    with open(out / "log_priors.npy", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="checksum"):
        load_export(out)


@pytest.mark.e2e
def test_network_files_do_not_depend_on_the_hash_seed(setup, tmp_path, monkeypatch):
    """torch.jit.script orders a module's constants by string hash: the networks are written by a child
    interpreter with a fixed seed, so parents with different PYTHONHASHSEEDs write the same bytes."""
    from asr_base.io import sha256_file
    from asr_kd.export.networks import main as networks_main, write_networks

    root, _, _, _ = setup
    ckpt = str(root / "exp" / "m" / "final.pt")
    digests = set()
    for seed in ("1", "2", "3", "4"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        out = tmp_path / seed
        out.mkdir()
        write_networks([ckpt, ckpt], str(root / "exp" / "pdf_counts.npy"), 1e-10, out)
        digests.add((sha256_file(out / "model.ts"), sha256_file(out / "model.onnx")))
    assert len(digests) == 1
    with pytest.raises(SystemExit, match="PYTHONHASHSEED=0"):
        networks_main([ckpt, "--priors", str(root / "exp" / "pdf_counts.npy"), "--prior-floor", "1e-10",
                       "--out", str(tmp_path)])


@pytest.mark.e2e
def test_test_split_at_dev_point_lattice_or_one_pass(setup):
    """--tune-from: the hypotheses are at dev's best point, as a lattice best path or (--tuned-one-pass, dev's
    penalty 0) as a one-pass search at dev's acoustic scale; both give the spelled words and record the point."""
    root, gdir, common, _ = setup
    model = ["--model", str(root / "exp" / "m" / "final.pt"), *common]
    lattice = ["--lattice-beam", "4", "--sweep-acoustic-scales", "0.2", "0.5", "--sweep-penalties", "0", "1"]
    dev = decode(root, gdir, model, "tune/dev", *lattice, "--select-best")
    point = dev["one_best"]
    assert point[1] == 0.0 and point[0] in (0.1, 0.2, 0.5)  # 0.1: the search scale, also a point
    lat = decode(root, gdir, model, "tune/test_lattice", *lattice, "--tune-from", str(root / "tune/dev"))
    one = decode(root, gdir, model, "tune/test_one_pass", *lattice, "--tune-from", str(root / "tune/dev"),
                 "--tuned-one-pass")
    assert lat["one_best"] == one["one_best"] == point
    assert one["search"] == "one-pass" and "search" not in lat and lat["lattice_beam"] == 4.0
    assert one["config"]["decoder_config"]["acoustic_scale"] == point[0]
    assert one["config"]["decoder_config"]["lattice_beam"] == 0.0
    lat_dc = lat["config"]["decoder_config"]  # the one-pass beam widened as the scale grows (one_pass_beam)
    assert one["config"]["decoder_config"]["beam"] == pytest.approx(
        lat_dc["beam"] * max(1.0, point[0] / lat_dc["acoustic_scale"]), abs=1e-4)
    assert one["errors"] == lat["errors"] == dev["errors"]
    assert (root / "tune/test_one_pass/hyp.txt").read_text() == (root / "tune/test_lattice/hyp.txt").read_text()
