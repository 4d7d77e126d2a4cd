"""Q/K/V capture and interventions on a small mini-former."""

import math

import pytest
import torch

from nlpcurriculum.interpret.qkv import capture_qkv, intervene_qkv
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(MiniFormerConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2,
                                        max_seq_len=12, init_std=0.2)).eval()


@pytest.fixture
def idx():
    return torch.randint(0, 20, (3, 10), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_captured_qkv_reproduce_the_models_attention_weights(position, idx):
    torch.manual_seed(0)
    m = build_model(MiniFormerConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2,
                                     max_seq_len=12, position=position, init_std=0.2)).eval()
    layers = capture_qkv(m, idx)
    with torch.no_grad():
        maps = m(idx, return_attn=True).attentions
    T = idx.size(1)
    for qkv, w in zip(layers, maps):
        scores = qkv.q @ qkv.k.transpose(-2, -1) / math.sqrt(qkv.q.size(-1))  # (B, nh, T, T)
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        assert torch.allclose(scores.softmax(-1), w, atol=1e-6)


def test_no_intervention_changes_nothing_and_hooks_are_removed(model, idx):
    with torch.no_grad():
        before = model(idx).logits
        with intervene_qkv(model, "none"):
            same = model(idx).logits
        with intervene_qkv(model, "zero_v"):
            broken = model(idx).logits
        after = model(idx).logits
    assert torch.equal(before, same) and torch.equal(before, after)
    assert not torch.allclose(before, broken)
    assert all(not b.attn.qkv._forward_hooks for b in model.blocks)


def test_zeroing_q_or_k_gives_exactly_uniform_attention_and_identical_outputs(model, idx):
    T = idx.size(1)
    uniform = torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]
    with torch.no_grad():
        with intervene_qkv(model, "zero_q"):
            out_q = model(idx, return_attn=True)
        with intervene_qkv(model, "zero_k"):
            out_k = model(idx, return_attn=True)
    for w in out_q.attentions:
        assert torch.allclose(w, uniform.expand_as(w), atol=1e-7)
    assert torch.equal(out_q.logits, out_k.logits)


def test_tie_qk_makes_scores_symmetric_and_swaps_transpose_them(model, idx):
    def raw_scores(kind):
        seen = {}

        def grab(module, args, out):
            seen["qkv"] = out

        with torch.no_grad(), intervene_qkv(model, kind, layers=[0]):
            # hooks run in registration order: registered after the intervention's hook, `grab`
            # sees the rewired output
            handle = model.blocks[0].attn.qkv.register_forward_hook(grab)
            try:
                model(idx)
            finally:
                handle.remove()
        q, k, _ = seen["qkv"].split(16, dim=-1)  # (B, T, C) each
        return q @ k.transpose(-2, -1)  # (B, T, T) all heads together

    tied = raw_scores("tie_qk")
    assert torch.allclose(tied, tied.transpose(-2, -1), atol=1e-6)
    assert torch.allclose(raw_scores("swap_qk"), raw_scores("none").transpose(-2, -1), atol=1e-6)


def test_training_under_tie_qk_leaves_the_key_weights_without_gradient(model, idx):
    model.train()
    with intervene_qkv(model, "tie_qk"):
        model(idx, targets=idx).loss.backward()
    grad = model.blocks[0].attn.qkv.weight.grad  # rows [W_q; W_k; W_v]
    assert float(grad[16:32].abs().max()) == 0.0
    assert float(grad[:16].abs().max()) > 0.0


def test_random_interventions_are_seeded(model, idx):
    with torch.no_grad():
        with intervene_qkv(model, "random_v", seed=7):
            a = model(idx).logits
        with intervene_qkv(model, "random_v", seed=7):
            b = model(idx).logits
        with intervene_qkv(model, "random_v", seed=8):
            c = model(idx).logits
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_requests_fail_clearly(model):
    with pytest.raises(ValueError, match="unknown intervention"):
        with intervene_qkv(model, "shuffle"):
            pass
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        with intervene_qkv(model, "zero_q", layers=[5]):
            pass
    gqa = build_model(MiniFormerConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=4, n_kv_heads=2))
    with pytest.raises(ValueError, match="as many key heads"):
        with intervene_qkv(gqa, "swap_qk"):
            pass
