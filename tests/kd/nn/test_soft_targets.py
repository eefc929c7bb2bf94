"""Ensemble means (arithmetic / geometric), the stacked teacher model and the top-k target cache."""

from __future__ import annotations

import shutil

import pytest
import torch

from asr_kd.nn.model import AcousticDNN, ModelConfig, StackedDNN, save_model
from asr_kd.nn.soft_targets import (TeacherEnsemble, TopKCache, ensemble_centered_logits, ensemble_log_probs,
                                 ensemble_probs)

CFG = ModelConfig(num_pdfs=9, feat_dim=5, left_context=2, right_context=1, hidden_layers=2, hidden_dim=16)


def test_arithmetic_and_geometric_means():
    torch.manual_seed(0)
    z = torch.randn(3, 4, 9, dtype=torch.float64)
    for t in (1.0, 2.0, 10.0):
        arith = ensemble_log_probs(z, t, "arithmetic").exp()
        assert torch.allclose(arith, torch.softmax(z / t, -1).mean(0))
        geo = ensemble_log_probs(z, t, "geometric").exp()
        prod = torch.softmax(z / t, -1).prod(0) ** (1 / 3)
        assert torch.allclose(geo, prod / prod.sum(-1, keepdim=True))
        assert torch.allclose(geo, torch.softmax(z.mean(0) / t, -1))  # = softmax of the mean logits
        assert torch.allclose(arith.sum(-1), torch.ones(4, dtype=torch.float64))
        assert not torch.allclose(arith, geo)
    single = z[:1]
    assert torch.allclose(ensemble_log_probs(single, 2.0, "arithmetic"), ensemble_log_probs(single, 2.0, "geometric"))
    assert ensemble_probs(z, [1.0, 5.0]).shape == (2, 4, 9)
    assert torch.allclose(ensemble_centered_logits(z).sum(-1), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError):
        ensemble_log_probs(z, 1.0, "harmonic")


def test_stacked_model_equals_its_members_and_roundtrips():
    members = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        members.append(AcousticDNN(CFG))
    stack = StackedDNN.from_members(members)
    x = torch.randn(7, CFG.input_dim)
    out = stack(x)
    assert out.shape == (3, 7, 9)
    for m, member in enumerate(members):
        assert torch.allclose(out[m], member(x), atol=1e-5)
        assert torch.allclose(stack.member(m)(x), member(x), atol=1e-6)
    xs = torch.randn(3, 7, CFG.input_dim)  # one batch per member
    assert torch.allclose(stack(xs)[2], members[2](xs[2]), atol=1e-5)
    same = StackedDNN.init_from_seeds(CFG, [2])
    assert torch.equal(same.weights[0][0], members[1].hidden[0].weight.t())


def test_teacher_ensemble_loads_member_dirs(tmp_path):
    for i in range(3):
        torch.manual_seed(10 + i)
        save_model(tmp_path / f"member_{i:02d}" / "final.pt", AcousticDNN(CFG))
    ens = TeacherEnsemble.load(tmp_path, mean="geometric")
    assert ens.num_members == 3
    x = torch.randn(4, CFG.input_dim)
    z = ens.logits(x)
    assert not z.requires_grad
    p = ens.probs(x, [1.0, 2.0])
    assert p.shape == (2, 4, 9) and torch.allclose(p[1], torch.softmax(z.mean(0) / 2, -1), atol=1e-6)
    with pytest.raises(FileNotFoundError):
        TeacherEnsemble.load(tmp_path / "nothing")


def test_topk_cache_reproduces_targets(make_corpus, tmp_path):
    from asr_kd.training.frame_data import FrameSplit

    feats, labels = make_corpus(tmp_path / "c", num_utts=4, num_pdfs=9, dim=5)
    split = FrameSplit.load(feats, labels)
    for i in range(2):
        torch.manual_seed(i)
        save_model(tmp_path / "t" / f"member_{i:02d}" / "final.pt", AcousticDNN(CFG))
    ens = TeacherEnsemble.load(tmp_path / "t")
    idx = split.usable[:10]
    exact = ens.probs(split.windows(idx, 2, 1), [1.0, 3.0])
    full = TopKCache.build(ens, split, [1.0, 3.0], k=9)
    assert torch.allclose(full.dense(idx), exact, atol=1e-6)
    top3 = TopKCache.build(ens, split, [1.0, 3.0], k=3).dense(idx)
    assert torch.allclose(top3.sum(-1), torch.ones(2, 10), atol=1e-5)
    v, i = exact.topk(3, -1)
    assert torch.allclose(top3.gather(-1, i), v, atol=1e-6)


@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile on a CPU needs a C compiler")
@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_compiled_targets_from_bf16_logits_match_eager(mean):
    """``--compile`` (GPU only) compiles the targets from the teachers' raw bf16 logits; CI has no GPU, so the
    compiled function is checked here on the CPU: one graph, and the eager values from the widened logits."""
    z = (4 * torch.randn(3, 16, 50, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)
    compiled = torch.compile(ensemble_probs, fullgraph=True)
    got = compiled(z, [2.0, 5.0], mean)
    assert got.dtype == torch.float32 and got.shape == (2, 16, 50)
    torch.testing.assert_close(got, ensemble_probs(z.float(), [2.0, 5.0], mean), rtol=1e-5, atol=1e-7)
    # on a CPU the teachers' targets stay eager (bit-identical to before)
    assert TeacherEnsemble(StackedDNN.init_from_seeds(CFG, [1]), compile=True)._targets is None
