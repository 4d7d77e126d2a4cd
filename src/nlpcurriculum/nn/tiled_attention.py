"""Tiled attention with an online softmax, forward and backward: FlashAttention-2 in PyTorch.

Plain attention materialises the ``(T, T)`` score matrix: for one head, ``S = Q K^T / sqrt(d)``,
``P = softmax(S)``, ``O = P V``. At T = 16k that is 256M floats (1 GiB) per head, written to
main memory and read back twice. FlashAttention (Dao et al. 2022, arXiv:2205.14135; version 2,
Dao 2023, arXiv:2307.08691) never forms it. It walks blocks of ``Bq`` query rows against blocks of
``Bk`` keys and values, keeping per query row three running quantities:

* ``m``, the largest score seen so far (for a numerically safe ``exp``),
* ``l``, the sum of ``exp(s - m)`` over the keys seen so far,
* ``acc``, the sum of ``exp(s - m) v`` over the keys seen so far (un-normalised output).

A new key block with scores ``s_blk`` updates them as (the *online softmax*, Milakov & Gimelshein
2018, arXiv:1805.02867)::

    m_new = max(m, rowmax(s_blk))
    scale = exp(m - m_new)                  # rescales what was summed under the old maximum
    p_blk = exp(s_blk - m_new)
    l     = l * scale + rowsum(p_blk)
    acc   = acc * scale + p_blk V_blk

and after the last block ``O = acc / l``. The forward pass saves only ``O`` and the log-sum-exp
``L = m + log(l)`` per row (T floats instead of T x T).

Backward (FlashAttention-2, Algorithm 2). Given ``dO``, with ``D = rowsum(dO * O)`` computed once
(the identity ``p . dp = dO . o``: see :mod:`nlpcurriculum.nn.fast.causal_attention`), each block
pair recomputes its probabilities from the saved ``L`` and accumulates::

    P_blk  = exp(S_blk - L)                 # exact softmax weights, no second pass needed
    dV_blk += P_blk^T dO
    dP_blk  = dO V_blk^T
    dS_blk  = P_blk * (dP_blk - D)
    dQ     += dS_blk K_blk / sqrt(d)
    dK_blk += dS_blk^T Q / sqrt(d)

Causal attention skips every key block that lies wholly above the diagonal (its weights are all
zero), so the work is about half of the full ``T x T``.

Why blocks, in bytes (fp32, one head, head size ``d``; counted by :func:`bytes_moved`): plain
attention writes and reads ``S`` and ``P`` (4 passes over ``4 T^2`` bytes) on top of reading Q, K,
V and writing O (``16 T d`` bytes). Tiled attention reads Q and writes O once and reads K and V
once per query block (``T / Bq`` times), and keeps each ``Bq x Bk`` score tile in cache: it moves
``8 T d + 8 T d * T / Bq`` bytes and never the ``T^2`` matrix. The block size is chosen so that one
query block, one key block, one value block and their score tile fit in the core's L2 cache
(:func:`choose_block_size`, read from the machine: :func:`nlpcurriculum.metrics.hardware.cache_sizes`).

On a GPU the same loop runs inside one kernel with the tiles in shared memory (SRAM); here each
block is a few torch calls, so the gain is memory, not speed: the loop's Python overhead makes it
slower than torch's fused CPU kernel (``F.scaled_dot_product_attention``), which is itself a
flash-attention loop in C++. The oracle in the tests is that kernel.

Left out: dropout on the weights, masks other than causal and block layouts, and a fused kernel.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bytes_moved", "choose_block_size", "tiled_attention"]


def choose_block_size(head_dim: int, cache_bytes: int, element_bytes: int = 4,
                      smallest: int = 16, largest: int = 1024) -> int:
    """The largest power-of-two block ``B`` whose working set fits in ``cache_bytes``.

    One step of the loop touches a query block, a key block and a value block (``3 B d``
    elements), the output accumulator (``B d``) and the ``B x B`` score tile twice (scores and
    weights): ``(4 B d + 2 B^2) * element_bytes`` bytes. Half the cache is left for everything
    else the core does.
    """
    if head_dim < 1 or cache_bytes < 1:
        raise ValueError(f"head_dim and cache_bytes must be positive, got {head_dim}, {cache_bytes}")
    block = smallest
    while block * 2 <= largest and (4 * 2 * block * head_dim + 2 * (2 * block) ** 2) * element_bytes <= cache_bytes // 2:
        block *= 2
    return block


def bytes_moved(seq_len: int, head_dim: int, block: int | None = None, element_bytes: int = 4) -> int:
    """Bytes one head's forward pass moves to and from main memory (see the module docstring).

    ``block=None`` counts plain attention (``S`` and ``P`` written and read back); a block size
    counts the tiled loop, whose score tiles stay in cache.
    """
    t, d = seq_len, head_dim
    if block is None:
        return element_bytes * (4 * t * d + 4 * t * t)
    passes = math.ceil(t / block)  # K and V are read once per query block
    return element_bytes * (2 * t * d + 2 * t * d * passes)


def _key_blocks(q_start: int, q_end: int, seq_len: int, block: int, causal: bool,
                layout: torch.Tensor | None) -> list[int]:
    """Start offsets of the key blocks that query rows ``[q_start, q_end)`` compute against.

    Causal attention stops at the diagonal block; a block-sparse ``layout`` (``(n_blocks,
    n_blocks)`` booleans, row = query block) also skips every block it marks dead. Skipped
    blocks are never multiplied: that is where block-sparse attention saves its time.
    """
    last = min(q_end, seq_len) if causal else seq_len
    starts = range(0, last, block)
    if layout is None:
        return list(starts)
    row = layout[q_start // block]
    return [ks for ks in starts if bool(row[ks // block])]


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, block: int,
             scale: float, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``(..., T, d)`` and log-sum-exp ``(..., T)`` by the online softmax."""
    T = q.shape[-2]
    out = torch.empty_like(q)
    lse = q.new_empty(q.shape[:-1])
    for qs in range(0, T, block):
        qe = min(qs + block, T)
        q_blk = q[..., qs:qe, :] * scale                                  # (..., Bq, d)
        m = q.new_full(q_blk.shape[:-1], float("-inf"))                   # (..., Bq)
        l = q.new_zeros(q_blk.shape[:-1])                                 # (..., Bq)
        acc = torch.zeros_like(q_blk)                                     # (..., Bq, d)
        for ks in _key_blocks(qs, qe, T, block, causal, layout):
            ke = min(ks + block, T)
            s = q_blk @ k[..., ks:ke, :].transpose(-2, -1)                # (..., Bq, Bk)
            if causal and ke > qs:  # the tile crosses the diagonal: mask keys after the query
                rows = torch.arange(qs, qe, device=q.device)[:, None]
                cols = torch.arange(ks, ke, device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1))
            rescale = torch.exp(m - m_new)                                # 0 on the first block
            p = torch.exp(s - m_new[..., None])                           # (..., Bq, Bk)
            l = l * rescale + p.sum(dim=-1)
            acc = acc * rescale[..., None] + p @ v[..., ks:ke, :]
            m = m_new
        out[..., qs:qe, :] = acc / l[..., None]
        lse[..., qs:qe] = m + torch.log(l)
    return out, lse


def _backward(q, k, v, out, lse, d_out, causal: bool, block: int, scale: float,
              layout: torch.Tensor | None = None):
    """``dQ, dK, dV`` recomputing each tile's weights from the saved log-sum-exp."""
    T = q.shape[-2]
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    delta = (d_out * out).sum(dim=-1)                                     # (..., T): D = rowsum(dO * O)
    for qs in range(0, T, block):
        qe = min(qs + block, T)
        q_blk, do_blk = q[..., qs:qe, :], d_out[..., qs:qe, :]             # (..., Bq, d)
        lse_blk, delta_blk = lse[..., qs:qe, None], delta[..., qs:qe, None]
        for ks in _key_blocks(qs, qe, T, block, causal, layout):
            ke = min(ks + block, T)
            k_blk, v_blk = k[..., ks:ke, :], v[..., ks:ke, :]              # (..., Bk, d)
            s = (q_blk @ k_blk.transpose(-2, -1)) * scale                  # (..., Bq, Bk)
            if causal and ke > qs:
                rows = torch.arange(qs, qe, device=q.device)[:, None]
                cols = torch.arange(ks, ke, device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            p = torch.exp(s - lse_blk)                                    # exact weights
            dv[..., ks:ke, :] += p.transpose(-2, -1) @ do_blk
            dp = do_blk @ v_blk.transpose(-2, -1)
            ds = p * (dp - delta_blk)
            dq[..., qs:qe, :] += (ds @ k_blk) * scale
            dk[..., ks:ke, :] += (ds.transpose(-2, -1) @ q_blk) * scale
    return dq, dk, dv


class _TiledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal: bool, block: int, layout: torch.Tensor | None):
        scale = 1.0 / math.sqrt(q.shape[-1])
        out, lse = _forward(q, k, v, causal, block, scale, layout)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.block, ctx.scale, ctx.layout = causal, block, scale, layout
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, d_out.contiguous(), ctx.causal, ctx.block,
                               ctx.scale, ctx.layout)
        return dq, dk, dv, None, None, None


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    block: int = 128, layout: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention of ``q`` over ``k``/``v`` in ``block x block`` tiles, with autograd.

    Args:
        q, k, v: ``(..., T, d)`` queries, keys and values (the same ``T``: self-attention).
        causal: mask key ``j`` for query ``i`` when ``j > i``.
        block: rows per query block and per key block.
        layout: optional ``(ceil(T / block), ceil(T / block))`` booleans: query block ``i`` attends
            to key block ``j`` only where ``layout[i, j]`` (block-sparse attention,
            :mod:`nlpcurriculum.nn.sparse_attention`). Every query row must see at least one key.

    Returns:
        ``(..., T, d)``, equal to ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)``
        up to floating-point rounding; the backward pass stores ``O`` and a log-sum-exp per row,
        never the ``(T, T)`` weights.
    """
    if q.shape != k.shape or k.shape != v.shape:
        raise ValueError(f"q, k, v must have one shape (self-attention), got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if layout is not None:
        n = math.ceil(q.shape[-2] / block)
        if tuple(layout.shape) != (n, n) or layout.dtype != torch.bool:
            raise ValueError(f"layout must be ({n}, {n}) booleans for T={q.shape[-2]}, block={block}; "
                             f"got {tuple(layout.shape)} {layout.dtype}")
    return _TiledAttention.apply(q, k, v, causal, block, layout)
