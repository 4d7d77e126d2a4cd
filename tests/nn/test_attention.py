"""Attention: the hand-wired single query, the by-hand formula vs torch, multi-head vs torch,
fused vs by-hand paths, grouped-query sharing, masks and the KV cache at the attention level."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.nn.attention import (
    MultiHeadAttention,
    causal_mask,
    repeat_kv,
    scaled_dot_product_attention,
    single_token_attention,
    softmax,
)
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.positional import build_position

ATOL = 1e-6  # fp32, attention over <= 16 keys with small dims


def test_single_token_attention_hand_worked_example():
    r = single_token_attention(torch.tensor([1.0, 0.0]), torch.eye(2), torch.tensor([[10.0], [20.0]]))
    assert torch.allclose(r.scores, torch.tensor([1.0, 0.0]))
    assert torch.allclose(r.scaled_scores, torch.tensor([1 / math.sqrt(2), 0.0]))
    assert torch.allclose(r.weights, torch.tensor([0.6698, 0.3302]), atol=1e-4)
    assert torch.allclose(r.output, torch.tensor([13.302]), atol=1e-3)


def test_single_token_attention_matches_the_batched_formula():
    torch.manual_seed(0)
    q, K, V = torch.randn(8), torch.randn(5, 8), torch.randn(5, 3)
    r = single_token_attention(q, K, V)
    out, w = scaled_dot_product_attention(q[None], K, V)
    assert torch.allclose(r.output, out[0], atol=ATOL)
    assert torch.allclose(r.weights, w[0], atol=ATOL)
    assert float(r.weights.sum()) == pytest.approx(1.0, abs=ATOL)


def test_single_token_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatch"):
        single_token_attention(torch.randn(4), torch.randn(3, 5), torch.randn(3, 2))


def test_softmax_matches_torch_and_gives_zero_for_fully_masked_rows():
    torch.manual_seed(0)
    x = torch.randn(4, 7) * 30  # large scores: the max subtraction is what keeps exp finite
    assert torch.allclose(softmax(x), torch.softmax(x, dim=-1), atol=ATOL)
    x[1] = float("-inf")
    out = softmax(x)
    assert torch.equal(out[1], torch.zeros(7)) and not out.isnan().any()


def _qkv(B=2, nh=3, T_q=5, T_k=5, hs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, nh, T_q, hs, generator=g), torch.randn(B, nh, T_k, hs, generator=g),
            torch.randn(B, nh, T_k, hs, generator=g))


@pytest.mark.parametrize("case", ["plain", "causal", "causal_rect", "bool_mask", "float_mask", "scale"])
def test_scaled_dot_product_attention_matches_torch(case):
    T_k = 7 if case == "causal_rect" else 5
    q, k, v = _qkv(T_k=T_k)
    kwargs = {}
    if case in ("causal", "causal_rect"):
        kwargs["is_causal"] = True
    if case == "bool_mask":
        kwargs["attn_mask"] = torch.rand(5, 5, generator=torch.Generator().manual_seed(1)) > 0.3
        kwargs["attn_mask"][:, 0] = True  # every query keeps one key
    if case == "float_mask":
        kwargs["attn_mask"] = torch.randn(3, 5, 5)
    if case == "scale":
        kwargs["scale"] = 0.3
    ours, _ = scaled_dot_product_attention(q, k, v, **kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, **kwargs)
    assert torch.allclose(ours, ref, atol=ATOL, rtol=0)


def test_causal_mask_is_bottom_right_aligned_for_cached_keys():
    mask = causal_mask(torch.tensor([3, 4]), torch.arange(5))
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert torch.equal(causal_mask(torch.arange(4), torch.arange(4)), torch.ones(4, 4, dtype=torch.bool).tril())


def test_repeat_kv_shares_each_kv_head_with_consecutive_query_heads():
    x = torch.arange(2).float().view(1, 2, 1, 1)  # two kv heads with values 0 and 1
    assert repeat_kv(x, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("padding", [False, True])
def test_multihead_attention_matches_torch_nn_multiheadattention(padding):
    torch.manual_seed(0)
    B, T, C, nh = 2, 6, 16, 4
    ours = MultiHeadAttention(C, nh, bias=True, fused=False)
    ref = torch.nn.MultiheadAttention(C, nh, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)  # both stack [W_q; W_k; W_v]
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(B, T, C)
    pad = torch.ones(B, T, dtype=torch.bool)
    if padding:
        pad[1, 4:] = False  # right padding: the first key is always real, no empty rows
    y, w = ours(x, padding_mask=pad if padding else None, need_weights=True)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch: True = masked out
    ref_y, ref_w = ref(x, x, x, attn_mask=future, key_padding_mask=~pad if padding else None,
                       need_weights=True, average_attn_weights=False)
    assert torch.allclose(y, ref_y, atol=ATOL, rtol=0)
    assert torch.allclose(w, ref_w, atol=ATOL, rtol=0)


@pytest.mark.parametrize("position", ["none", "rope", "alibi"])
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("padding", [False, True])
def test_fused_path_equals_by_hand_path(position, n_kv_heads, padding):
    torch.manual_seed(0)
    B, T, C, nh = 2, 7, 32, 4
    attn = MultiHeadAttention(C, nh, n_kv_heads, bias=False)
    scheme = build_position(position, d_model=C, n_heads=nh, max_seq_len=16)
    x = torch.randn(B, T, C)
    pad = torch.ones(B, T, dtype=torch.bool)
    pad[0, 5:] = False
    kw = dict(position=scheme, padding_mask=pad if padding else None)
    fused, none = attn(x, **kw)
    by_hand, weights = attn(x, need_weights=True, **kw)
    assert none is None and weights.shape == (B, nh, T, T)
    assert torch.allclose(fused, by_hand, atol=ATOL, rtol=0)


def test_grouped_query_attention_equals_multihead_with_repeated_kv_weights():
    torch.manual_seed(0)
    C, nh, hs = 16, 4, 4
    gqa = MultiHeadAttention(C, nh, n_kv_heads=2, bias=False)
    mha = MultiHeadAttention(C, nh, n_kv_heads=4, bias=False)
    q, k, v = gqa.qkv.weight.split([nh * hs, 2 * hs, 2 * hs])
    k_rep = k.view(2, 1, hs, C).expand(2, 2, hs, C).reshape(4 * hs, C)  # kv head j -> query heads 2j, 2j+1
    v_rep = v.view(2, 1, hs, C).expand(2, 2, hs, C).reshape(4 * hs, C)
    with torch.no_grad():
        mha.qkv.weight.copy_(torch.cat([q, k_rep, v_rep]))
        mha.proj.weight.copy_(gqa.proj.weight)
    x = torch.randn(2, 5, C)
    assert torch.allclose(gqa(x)[0], mha(x)[0], atol=ATOL, rtol=0)
    assert gqa.qkv.weight.numel() < mha.qkv.weight.numel()


def test_attention_weights_are_causal_distributions():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2)
    _, w = attn(torch.randn(1, 6, 16), need_weights=True)
    assert torch.allclose(w.sum(-1), torch.ones(1, 2, 6), atol=ATOL)
    assert torch.equal(w.triu(1), torch.zeros_like(w))  # nothing on future keys


def test_user_attn_mask_replaces_the_causal_mask():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2)
    x = torch.randn(1, 4, 16)
    _, w = attn(x, attn_mask=torch.ones(4, 4, dtype=torch.bool), need_weights=True)
    assert (w[..., 0, 1:] > 0).all()  # the first query now sees the future
    bidir = MultiHeadAttention(16, 2, causal=False)
    bidir.load_state_dict(attn.state_dict())
    assert torch.allclose(bidir(x)[0], attn(x, attn_mask=torch.ones(4, 4, dtype=torch.bool))[0], atol=ATOL)


@pytest.mark.parametrize("position", ["none", "rope", "alibi"])
@pytest.mark.parametrize("fused", [True, False])
def test_kv_cache_decoding_matches_full_attention(position, fused):
    torch.manual_seed(0)
    B, T, C, nh = 2, 9, 32, 4
    attn = MultiHeadAttention(C, nh, n_kv_heads=2, fused=fused)
    scheme = build_position(position, d_model=C, n_heads=nh, max_seq_len=16)
    x = torch.randn(B, T, C)
    full, _ = attn(x, position=scheme)
    cache = KVCache(n_layers=1)
    pieces = [attn(x[:, :4], position=scheme, kv_cache=cache)[0]]  # prefill 4 tokens
    for t in range(4, T):  # then one token at a time
        pieces.append(attn(x[:, t : t + 1], position=scheme, kv_cache=cache)[0])
    assert cache.seq_len() == T
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs,match", [(dict(d_model=10, n_heads=4), "divisible"), (dict(d_model=16, n_heads=4, n_kv_heads=3), "n_kv_heads"),
                     (dict(d_model=16, n_heads=4, dropout=1.0), "dropout")]
)
def test_multihead_attention_rejects_bad_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_multihead_attention_rejects_bad_masks():
    attn = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match="padding_mask"):
        attn(torch.randn(2, 4, 16), padding_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="attn_mask"):
        attn(torch.randn(2, 4, 16), attn_mask=torch.ones(4, 4))
