"""Causal self-attention for training, with its backward pass written out by hand.

:class:`~nlpcurriculum.nn.attention.MultiHeadAttention` trains through this module when the
window is short (``T <= MATERIALIZED_MAX_T``); otherwise through ``F.scaled_dot_product_attention``.
Both compute the same function. They differ in what they keep for the backward pass.

torch's CPU kernel is a flash-attention loop (Dao et al. 2022, arXiv:2205.14135): it never stores
the ``(T, T)`` attention weights and recomputes them, tile by tile, in the backward pass. That
pays off for long windows, where the weights would not fit in the cache and where whole tiles
above the diagonal can be skipped. For short windows the weights are small (64 heads-in-batch x
128 x 128 floats = 4 MB), and keeping them is cheaper than recomputing them. Here the forward pass
stores them, and the backward pass is four batched matrix products and two elementwise passes
over the weights.

Forward, per head (``S`` scores, ``P`` weights, ``O`` output; the mask is -inf above the
diagonal)::

    S = Q K^T / sqrt(hs) + mask        P = softmax(S)        O = P V

Backward, given ``dO``::

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - D),  with D = rowsum(dO * O)
    dQ = dS K / sqrt(hs)
    dK = dS^T Q / sqrt(hs)

The softmax step: each row ``p = softmax(s)`` has the Jacobian ``diag(p) - p p^T``, so
``ds = p * (dp - (p . dp))``. The dot product ``p . dp`` equals ``rowsum(dO * O)``, because
``p . dp = sum_j p_j (dO . v_j) = dO . (sum_j p_j v_j) = dO . o``. That is the identity the
FlashAttention paper uses (its ``D_i``). It is cheaper: an ``hs``-long dot product per row instead
of a ``T``-long one.

The same function also does the surrounding data movement, which the per-op path pays for in
copies:

- It takes the fused projection ``(B, T, 3C)`` as it is. RoPE (Su et al. 2021,
  arXiv:2104.09864) writes the rotated queries and keys straight into the contiguous layout that
  the batched products read.
- Its backward pass writes ``dQ``, ``dK`` and ``dV`` straight into one ``(B, T, 3C)`` gradient,
  undoing the rotation on the way. Without it, autograd concatenates ``dQ`` and ``dK``, then
  ``dQK`` and ``dV``, and then copies the result into the projection's layout.

Measured on this project's 2-core CPU (fp32, 2 threads, forward and backward of the attention
core including RoPE; ``python benchmarks/bench_attention.py``, three runs): 1.05-1.27x faster
than ``F.scaled_dot_product_attention`` at T = 128 (B = 16, 4 heads of 32, the pretrain model's
shape) and 1.25-1.27x with 8 heads of 64; 0.65-1.05x at T = 256; 0.71-0.74x at T = 512 and
0.50-0.54x at T = 1024.
Hence ``MATERIALIZED_MAX_T = 128``. On one thread the gain is smaller: 0.93x with 4 heads of 32
and 1.10x with 8 heads of 64 at T = 128.

Scope: causal self-attention over a whole window (no KV cache, no padding mask, no score bias),
as many key/value heads as query heads, no attention dropout, fp32 or fp64, CPU. Everything else
goes through :mod:`~nlpcurriculum.nn.attention`'s other paths.

Dimension legend: B batch, T tokens, nh heads, hs head size, C = nh * hs, N = B * nh.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MATERIALIZED_MAX_T", "causal_self_attention"]

# longest window for which keeping the (T, T) weights beat torch's flash kernel on this CPU
MATERIALIZED_MAX_T = 128


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, out: Tensor, inverse: bool = False) -> None:
    """RoPE in the rotate-half layout, written into ``out``: pair ``(i, i + hs/2)`` turns by one angle.

    ``out1 = x1 cos - x2 sin`` and ``out2 = x2 cos + x1 sin``. The inverse (the transpose, used on
    gradients) turns the other way: ``out1 = x1 cos + x2 sin``, ``out2 = x2 cos - x1 sin``.

    Args:
        x: ``(..., T, hs)``, any strides.
        cos, sin: ``(T, hs/2)``.
        out: ``(..., T, hs)``, must not overlap ``x``.
        inverse: rotate by minus the angle.
    """
    h = x.size(-1) // 2
    x1, x2, out1, out2 = x[..., :h], x[..., h:], out[..., :h], out[..., h:]
    sign = 1.0 if inverse else -1.0
    torch.mul(x1, cos, out=out1).addcmul_(x2, sin, value=sign)
    torch.mul(x2, cos, out=out2).addcmul_(x1, sin, value=-sign)


class CausalSelfAttentionFunction(torch.autograd.Function):
    """Causal multi-head self-attention from the fused ``(B, T, 3C)`` projection to ``(B, T, C)``.

    Call it through :func:`causal_self_attention`.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, n_heads: int, cos: Tensor | None, sin: Tensor | None) -> Tensor:
        B, T, C3 = qkv.shape
        nh = n_heads
        hs = C3 // (3 * nh)
        heads = qkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs), a view
        qk = qkv.new_empty(2, B, nh, T, hs)  # rotated queries and keys, contiguous per head
        if cos is None:
            qk.copy_(heads[:2])
        else:
            _rotate(heads[:2], cos, sin, qk)
        q, k = qk[0].view(B * nh, T, hs), qk[1].view(B * nh, T, hs)  # (N, T, hs) each
        v = heads[2].reshape(B * nh, T, hs)  # (N, T, hs), a copy
        scale = 1.0 / math.sqrt(hs)
        mask = qkv.new_full((T, T), float("-inf")).triu_(1)  # (T, T): -inf above the diagonal
        p = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=scale).softmax(dim=-1)  # (N, T, T)
        o = torch.bmm(p, v)  # (N, T, hs)
        ctx.save_for_backward(qk, v, p, o, cos, sin)
        ctx.scale = scale
        return o.view(B, nh, T, hs).transpose(1, 2).reshape(B, T, nh * hs)  # merge the heads

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None, None, None]:
        qk, v, p, o, cos, sin = ctx.saved_tensors
        _, B, nh, T, hs = qk.shape
        q, k = qk[0].view(B * nh, T, hs), qk[1].view(B * nh, T, hs)
        do = dy.view(B, T, nh, hs).transpose(1, 2).reshape(B * nh, T, hs)  # (N, T, hs)
        dqkv = dy.new_empty(B, T, 3 * nh * hs)
        dheads = dqkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs), a view

        dheads[2].copy_(torch.bmm(p.transpose(1, 2), do).view(B, nh, T, hs))  # dV = P^T dO
        d = (do * o).sum(dim=-1, keepdim=True)  # (N, T, 1): D = rowsum(dO * O) = rowsum(P * dP)
        ds = torch.bmm(do, v.transpose(1, 2)).sub_(d).mul_(p)  # (N, T, T): dS = P * (dP - D)
        dqk = dy.new_empty(2, B * nh, T, hs)
        torch.baddbmm(dqk[0], ds, k, beta=0, alpha=ctx.scale, out=dqk[0])  # dQ = dS K * scale
        torch.baddbmm(dqk[1], ds.transpose(1, 2), q, beta=0, alpha=ctx.scale, out=dqk[1])  # dK
        dqk = dqk.view(2, B, nh, T, hs)
        if cos is None:
            dheads[:2].copy_(dqk)
        else:
            _rotate(dqk, cos, sin, dheads[:2], inverse=True)  # back to the unrotated projection
        return dqkv, None, None, None


def causal_self_attention(qkv: Tensor, n_heads: int,
                          rotation: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Causal self-attention of every position over the positions up to it, heads merged.

    Args:
        qkv: the fused projection, ``(B, T, 3C)``: queries, keys, values, each ``nh`` heads of
            ``hs`` features (the layout of ``MultiHeadAttention.qkv``).
        n_heads: nh.
        rotation: RoPE's ``(cos, sin)``, ``(T, hs/2)`` each
            (:meth:`~nlpcurriculum.nn.positional.PositionScheme.rotation_angles`), or ``None``.

    Returns:
        ``(B, T, C)``: the heads' outputs side by side, ready for the output projection.
    """
    if qkv.dim() != 3 or qkv.size(-1) % (3 * n_heads):
        raise ValueError(f"expected qkv (B, T, 3 * n_heads * hs) with n_heads={n_heads}, "
                         f"got {tuple(qkv.shape)}")
    cos, sin = rotation if rotation is not None else (None, None)
    half = (qkv.size(1), qkv.size(-1) // (6 * n_heads))  # (T, hs/2)
    if cos is not None and (cos.shape != half or sin.shape != half or qkv.size(-1) % (6 * n_heads)):
        raise ValueError(f"RoPE needs an even head size and cos, sin of shape {half}; got qkv "
                         f"{tuple(qkv.shape)}, cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")
    return CausalSelfAttentionFunction.apply(qkv, n_heads, cos, sin)
