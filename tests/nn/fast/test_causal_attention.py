"""The hand-written causal self-attention against the plain path (the formula by hand), torch's
fused kernel and autograd; and ``MultiHeadAttention``'s dispatch to it."""

import pytest
import torch
import torch.nn.functional as F

import nlpcurriculum.nn.fast as fast
import nlpcurriculum.nn.fast.causal_attention as causal_attention
from nlpcurriculum.nn.attention import MultiHeadAttention, scaled_dot_product_attention
from nlpcurriculum.nn.fast.causal_attention import MATERIALIZED_MAX_T, causal_self_attention
from nlpcurriculum.nn.positional import ALiBiPositions, RotaryPositions


def reference(qkv, n_heads, rope=None, by_hand=False):
    """The per-op path: split heads, RoPE, attention (the plain formula by hand, or
    ``F.scaled_dot_product_attention``), merge heads."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_heads)
    q, k, v = qkv.view(B, T, 3 * n_heads, hs).transpose(1, 2).split(n_heads, dim=1)  # (B, nh, T, hs)
    if rope is not None:
        positions = torch.arange(T)
        q, k = rope.rotate_heads(q, positions), rope.rotate_heads(k, positions)
    if by_hand:
        y, _ = scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    else:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, n_heads * hs)


@pytest.mark.parametrize("T", [17, 150])  # one block of query rows; three, the last one partial
@pytest.mark.parametrize("with_rope", [False, True])
@pytest.mark.parametrize("by_hand", [True, False], ids=["plain", "torch"])
def test_forward_and_backward_match_the_plain_formula_and_torch_sdpa(with_rope, T, by_hand):
    torch.manual_seed(0)
    B, nh, hs = 3, 4, 8
    rope = RotaryPositions(hs, T) if with_rope else None
    rotation = rope.rotation_angles(torch.arange(T)) if with_rope else None
    qkv = torch.randn(B, T, 3 * nh * hs, requires_grad=True)
    grad = torch.randn(B, T, nh * hs)
    ours = causal_self_attention(qkv, nh, rotation)
    expected = reference(qkv, nh, rope, by_hand)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=0)
    (d_ours,) = torch.autograd.grad(ours, qkv, grad)
    (d_expected,) = torch.autograd.grad(expected, qkv, grad)
    assert d_ours.shape == qkv.shape
    assert torch.allclose(d_ours, d_expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("query_block", [64, 2])  # one block; blocks of 2, 2 and 1 rows
@pytest.mark.parametrize("with_rope", [False, True])
def test_passes_gradcheck(with_rope, query_block, monkeypatch):
    monkeypatch.setattr(causal_attention, "QUERY_BLOCK", query_block)
    torch.manual_seed(0)
    B, T, nh, hs = 2, 5, 2, 4
    qkv = torch.randn(B, T, 3 * nh * hs, dtype=torch.float64, requires_grad=True)
    rotation = None
    if with_rope:
        angles = torch.rand(T, hs // 2, dtype=torch.float64) * 6.0
        rotation = (angles.cos(), angles.sin())
    assert torch.autograd.gradcheck(lambda x: causal_self_attention(x, nh, rotation), (qkv,))


def test_future_tokens_do_not_reach_the_past():
    torch.manual_seed(0)
    qkv = torch.randn(1, 9, 3 * 2 * 4)
    changed = qkv.clone()
    changed[:, 5:] = torch.randn(1, 4, 24)  # new tokens 5..8
    before, after = causal_self_attention(qkv, 2), causal_self_attention(changed, 2)
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="3 \\* n_heads"):
        causal_self_attention(torch.randn(2, 4, 20), 3)
    with pytest.raises(ValueError, match="even head size"):
        causal_self_attention(torch.randn(2, 4, 18), 2, (torch.randn(4, 1), torch.randn(4, 1)))


def _calls(monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[0].shape)
        return causal_self_attention(*args, **kwargs)

    monkeypatch.setattr(fast, "causal_self_attention", spy)
    return seen


def test_multi_head_attention_trains_short_windows_through_it_and_gets_the_same_gradients(monkeypatch):
    torch.manual_seed(0)
    seen = _calls(monkeypatch)
    mha = MultiHeadAttention(32, 4, bias=False)
    rope = RotaryPositions(8, 64)
    x = torch.randn(2, 12, 32, requires_grad=True)
    y = mha(x, position=rope)[0]
    assert len(seen) == 1
    grads = torch.autograd.grad(y.square().sum(), [x, *mha.parameters()])
    with torch.no_grad():  # the same pass through the other paths
        expected_y = mha(x, position=rope)[0]
    assert len(seen) == 1  # no gradients: torch's kernel
    assert torch.allclose(y, expected_y, atol=1e-5, rtol=0)
    mha.fused = False  # the by-hand path, differentiated by autograd
    expected = torch.autograd.grad(mha(x, position=rope)[0].square().sum(), [x, *mha.parameters()])
    assert len(seen) == 1
    for ours, theirs in zip(grads, expected, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_multi_head_attention_keeps_the_other_cases_on_their_paths(monkeypatch):
    seen = _calls(monkeypatch)
    x = torch.randn(2, 8, 32, requires_grad=True)
    MultiHeadAttention(32, 4, n_kv_heads=2)(x)  # grouped heads
    MultiHeadAttention(32, 4)(x, padding_mask=torch.ones(2, 8, dtype=torch.bool))
    MultiHeadAttention(32, 4)(x, position=ALiBiPositions(4))  # a score bias
    MultiHeadAttention(32, 4, dropout=0.1).train()(x)
    MultiHeadAttention(32, 4, causal=False)(x)
    MultiHeadAttention(32, 4)(x, need_weights=True)
    MultiHeadAttention(32, 4)(torch.randn(1, MATERIALIZED_MAX_T + 1, 32, requires_grad=True))
    assert seen == []
    MultiHeadAttention(32, 4, dropout=0.1).eval()(x)  # dropout is off in eval mode
    MultiHeadAttention(32, 4)(torch.randn(1, MATERIALIZED_MAX_T, 32, requires_grad=True))
    assert len(seen) == 2
