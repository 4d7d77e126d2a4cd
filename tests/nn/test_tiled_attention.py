"""Tiled (flash) attention against torch's fused CPU kernel: outputs and gradients, causal or not."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.nn.tiled_attention import bytes_moved, choose_block_size, tiled_attention


def _qkv(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T,block", [(1, 4), (37, 8), (64, 16), (200, 64)])
def test_forward_and_gradients_equal_sdpa(causal, T, block):
    """T not a multiple of the block, a single token, and a block wider than the tail are covered."""
    q, k, v = _qkv((2, 3, T, 8))
    out = tiled_attention(q, k, v, causal=causal, block=block)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    d_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), d_out)
    ref_grads = torch.autograd.grad(ref, (q, k, v), d_out)
    for ours, theirs in zip(grads, ref_grads):
        assert torch.allclose(ours, theirs, atol=1e-12, rtol=0)


def test_fp32_at_a_thousand_tokens_within_fp32_tolerance():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 1000, 32, generator=g, requires_grad=True) for _ in range(3))
    out = tiled_attention(q, k, v, causal=True, block=128)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out - ref).abs().max().item() < 1e-5
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for ours, theirs in zip(grads, ref_grads):
        assert (ours - theirs).abs().max().item() < 1e-4


def test_large_scores_do_not_overflow():
    """The running maximum keeps exp() finite where a naive softmax of scores ~1e4 would overflow."""
    q, k, v = _qkv((1, 1, 32, 4))
    with torch.no_grad():
        q.mul_(300.0)
        k.mul_(300.0)
    out = tiled_attention(q, k, v, causal=True, block=8)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-10)


def test_rejects_mismatched_shapes_and_bad_blocks():
    q, k, v = _qkv((1, 1, 8, 4))
    with pytest.raises(ValueError, match="one shape"):
        tiled_attention(q, k[..., :4, :], v)
    with pytest.raises(ValueError, match="block"):
        tiled_attention(q, k, v, block=0)


def test_block_size_fits_half_the_cache_and_grows_with_it():
    for cache in (48 * 1024, 2 * 1024 ** 2, 32 * 1024 ** 2):
        b = choose_block_size(64, cache)
        assert (4 * b * 64 + 2 * b * b) * 4 <= cache // 2
    assert choose_block_size(64, 48 * 1024) < choose_block_size(64, 2 * 1024 ** 2)


def test_bytes_moved_plain_attention_grows_quadratically_tiled_does_not_hold_t_squared():
    plain = [bytes_moved(t, 64) for t in (1024, 2048)]
    tiled = [bytes_moved(t, 64, block=256) for t in (1024, 2048)]
    assert plain[1] / plain[0] > 3.5  # the T^2 term dominates
    assert all(tl < p for tl, p in zip(tiled, plain))
    assert bytes_moved(1024, 64, block=1024) == 4 * (2 * 1024 * 64 + 2 * 1024 * 64 * math.ceil(1024 / 1024))
