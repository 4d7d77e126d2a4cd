"""Causal self-attention for training, with its backward pass written out by hand.

:class:`~nlpcurriculum.nn.attention.MultiHeadAttention` trains through this module when
:func:`can_train_causal` says so (a causal window of at most ``MATERIALIZED_MAX_T`` tokens, and
nothing this kernel leaves out); otherwise through its plain path, where torch's
``F.scaled_dot_product_attention`` does the same causal window. Both compute the same function
(the tests in ``tests/nn/fast/`` hold this kernel to the plain path). They differ in what they
keep for the backward pass.

torch's CPU kernel is a flash-attention loop (Dao et al. 2022, arXiv:2205.14135): it never stores
the ``(T, T)`` attention weights and recomputes them, tile by tile, in the backward pass. That
keeps memory linear in T. Here the forward pass stores the weights, and the backward pass is four
batched matrix products and two elementwise passes over them, with no recomputation. For the
windows we train on the weights are small (3 MB per layer for the pretrain model: 64
heads-in-batch, 3/4 of 128 x 128 floats each, see below), and keeping them is the faster choice.

Like the flash kernel, the work is split into blocks of ``QUERY_BLOCK`` query rows. The queries
of block ``[s, e)`` can see keys ``0..e-1`` only, so each block multiplies against those keys and
skips the rest, which the causal mask would have zeroed anyway. With two blocks (T = 128) that
is 3/4 of the full ``T x T`` work; with many blocks it approaches 1/2.

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

Measured on this project's 2-core CPU (fp32, forward and backward of the attention core including
RoPE, best of 9; ``python benchmarks/bench_attention.py``). The ratio is torch's time over ours:

======================  ==============  ==============
(B, heads, T, hs)       2 threads       1 thread
======================  ==============  ==============
(16, 4, 128, 32)        1.25-1.30x      1.07x
(8, 8, 128, 64)         1.34-1.51x      1.26x
(16, 4, 256, 32)        1.26-1.27x      1.14x
(8, 8, 256, 64)         1.36-1.46x      1.28x
(4, 8, 512, 64)         1.53-1.57x      1.53x
(2, 8, 1024, 64)        1.21-1.26x      1.22x
(1, 8, 2048, 64)        0.99-1.08x      1.10x
======================  ==============  ==============

The first row is the pretrain model's shape. The stored weights grow as T^2: at T = 512 they take
0.6 MB per head and sequence, per layer. Beyond ``MATERIALIZED_MAX_T = 512`` the flash kernel's
linear memory is worth more than the speed, which is down to 0.99-1.10x at T = 2048.

Scope: causal self-attention over a whole window (no KV cache, no padding mask, no score bias),
as many key/value heads as query heads, no attention dropout, fp32 or fp64, CPU
(:func:`can_train_causal`). Everything else goes through :mod:`~nlpcurriculum.nn.attention`'s
plain path.

Dimension legend: B batch, T tokens, nh heads, hs head size, C = nh * hs, N = B * nh.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.positional import PositionScheme

__all__ = ["MATERIALIZED_MAX_T", "can_train_causal", "causal_self_attention"]

# the longest window trained through this module: the weights it keeps grow as T^2 (see above)
MATERIALIZED_MAX_T = 512
# query rows per block: a block skips the keys after its last row, all masked
QUERY_BLOCK = 64


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


def _unrotate(grad: Tensor, cos: Tensor | None, sin: Tensor | None, s: int, e: int,
              out: Tensor) -> None:
    """Write the gradient of rotated rows ``s..e-1`` into ``out`` as the unrotated rows' gradient."""
    if cos is None:
        out.copy_(grad)
    else:
        _rotate(grad, cos[s:e], sin[s:e], out, inverse=True)  # the transpose of the rotation


def _query_blocks(T: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each block of ``QUERY_BLOCK`` query rows."""
    return [(s, min(s + QUERY_BLOCK, T)) for s in range(0, T, QUERY_BLOCK)]


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
        y = qkv.new_empty(B, T, nh * hs)
        y_heads = y.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs), a view
        weights = []  # P, one (N, e - s, e) block per block of query rows
        for s, e in _query_blocks(T):
            # queries s..e-1 see keys 0..e-1; the keys after e are masked for all of them: skipped
            scores = torch.baddbmm(mask[s:e, :e], q[:, s:e], k[:, :e].transpose(1, 2), alpha=scale)
            p = scores.softmax(dim=-1)  # (N, e - s, e)
            y_heads[:, :, s:e] = torch.bmm(p, v[:, :e]).view(B, nh, e - s, hs)  # O = P V
            weights.append(p)
        ctx.save_for_backward(qk, v, y, cos, sin, *weights)
        ctx.scale = scale
        return y  # (B, T, C): the heads merged

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None, None, None]:
        qk, v, y, cos, sin, *weights = ctx.saved_tensors
        _, B, nh, T, hs = qk.shape
        N = B * nh
        q, k = qk[0].view(N, T, hs), qk[1].view(N, T, hs)
        do = dy.view(B, T, nh, hs).transpose(1, 2).reshape(N, T, hs)  # (N, T, hs)
        # D = rowsum(dO * O) = rowsum(P * dP), per head and query: (N, T, 1)
        d = (dy * y).view(B, T, nh, hs).sum(dim=-1).transpose(1, 2).reshape(N, T, 1)
        dqkv = dy.new_empty(B, T, 3 * nh * hs)
        dheads = dqkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs), a view
        dk = dv = None
        # from the last block, which sees every key, back: each adds to dK and dV of its keys
        for (s, e), p in reversed(list(zip(_query_blocks(T), weights))):
            dv_block = torch.bmm(p.transpose(1, 2), do[:, s:e])  # (N, e, hs): P^T dO
            ds = torch.bmm(do[:, s:e], v[:, :e].transpose(1, 2)).sub_(d[:, s:e]).mul_(p)  # dS
            dk_block = torch.bmm(ds.transpose(1, 2), q[:, s:e])  # (N, e, hs): dS^T Q
            if dv is None:
                dk, dv = dk_block, dv_block
            else:
                dk[:, :e] += dk_block
                dv[:, :e] += dv_block
            dq = torch.bmm(ds, k[:, :e]).mul_(ctx.scale).view(B, nh, e - s, hs)  # dS K * scale
            _unrotate(dq, cos, sin, s, e, dheads[0][:, :, s:e])
        dk.mul_(ctx.scale)
        _unrotate(dk.view(B, nh, T, hs), cos, sin, 0, T, dheads[1])
        dheads[2].copy_(dv.view(B, nh, T, hs))
        return dqkv, None, None, None


def causal_self_attention(qkv: Tensor, n_heads: int,
                          rotation: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Causal self-attention of every position over the positions up to it, heads merged.

    Args:
        qkv: the fused projection, ``(B, T, 3C)``: queries, keys, values, each ``nh`` heads of
            ``hs`` features (the layout of ``MultiHeadAttention.qkv``).
        n_heads: nh.
        rotation: RoPE's ``(cos, sin)``, ``(T, hs/2)`` each
            (:meth:`~nlpcurriculum.nn.positional.PositionScheme.rotation_angles`; cast to
            ``qkv``'s dtype here), or ``None``.

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
    if cos is not None:
        cos, sin = cos.to(qkv.dtype), sin.to(qkv.dtype)
    return CausalSelfAttentionFunction.apply(qkv, n_heads, cos, sin)


def can_train_causal(
    attn: nn.Module,
    x: Tensor,
    position: PositionScheme | None,
    attn_mask: Tensor | None,
    padding_mask: Tensor | None,
    kv_cache: KVCache | None,
    need_weights: bool,
) -> bool:
    """Whether :func:`causal_self_attention` computes this call of ``attn``: the case it is for.

    ``attn`` is a :class:`~nlpcurriculum.nn.attention.MultiHeadAttention` about to run on ``x``
    with the other arguments of its ``forward``. The kernel applies to a causal pass over a whole
    window of at most ``MATERIALIZED_MAX_T`` tokens, with gradients, without masks, score biases,
    cache, dropout or grouped heads, in fp32/fp64 on the CPU (see the module docstring for the
    measurements).
    """
    return (
        attn.fused and attn.causal and not need_weights and torch.is_grad_enabled()
        and kv_cache is None and attn_mask is None and padding_mask is None
        and (position is None or not position.biases_scores)
        and attn.n_kv_heads == attn.n_heads
        and (attn.dropout == 0 or not attn.training)
        and x.size(1) <= MATERIALIZED_MAX_T
        and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
    )
