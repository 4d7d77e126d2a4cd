"""Scaled dot-product attention, from one hand-wired query up to multi-head attention.

Attention (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, section 3.2) lets
every position read from every other position it is allowed to see:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + bias, masked) V

A query asks a question, every key advertises what its token offers, the dot product scores the
match, the softmax turns scores into a probability distribution over keys, and the output is the
weighted average of the values. Dividing by ``sqrt(d_k)`` keeps the scores' variance at about 1
when q and k have unit-variance components (a sum of d_k unit-variance products has variance
d_k); without it the softmax saturates and its gradients vanish.

Three levels, each the teaching reference for the next:

1. :func:`single_token_attention`: one query against T keys, every intermediate returned.
2. :func:`scaled_dot_product_attention`: the batched formula by hand (matmul, scale, mask,
   softmax, matmul), returning the weights too; parity-tested against
   ``torch.nn.functional.scaled_dot_product_attention``.
3. :class:`MultiHeadAttention`: project x to queries, keys and values with one fused linear
   layer, split them into heads, attend, merge the heads, project back. It supports a causal
   mask, a padding mask, position schemes (RoPE rotates q/k, ALiBi biases the scores), fewer
   key/value heads than query heads (grouped-query attention, Ainslie et al. 2023,
   arXiv:2305.13245: each K/V head is shared by ``nh / nkv`` query heads), a KV cache for
   decoding, and optionally returns the attention weights for heatmaps.

:meth:`MultiHeadAttention.forward` reads top to bottom as the steps above. Its one choice is
in step 5: with the weights requested (or ``fused=False``) it runs the by-hand formula of level 2;
otherwise ``F.scaled_dot_product_attention``, one fused kernel that never materialises the
``(T_q, T_k)`` weight matrix (on CPU a flash-attention style tiled loop with an online softmax),
faster and lighter. One dispatch at the top hands the case a hand-written kernel is faster for,
training on a short causal window, to :mod:`nlpcurriculum.nn.fast`
(:func:`~nlpcurriculum.nn.fast.causal_attention.causal_self_attention`, which keeps the weights and
has its backward pass written out by hand). The tests prove the paths agree to fp32 rounding.

Masks follow torch's convention: a boolean mask is True where a query *may* attend; a float mask
is added to the scores. Rows where every key is masked produce zero output (as torch does).

Dimension legend: B batch, T sequence length, T_q / T_k query / key lengths (differ with a KV
cache), C = d_model, nh query heads, nkv key/value heads, hs head size (C / nh).

Left out: cross-attention (queries from one sequence, keys from another: pass different tensors
to :func:`scaled_dot_product_attention`), sliding-window / sparse / linear attention, attention
sinks, QK-norm, and ragged-batch KV caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.torch_version import TorchVersion

from nlpcurriculum.nn import fast
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.linear import Linear
from nlpcurriculum.nn.positional import PositionScheme

__all__ = [
    "MultiHeadAttention",
    "SingleTokenAttention",
    "causal_mask",
    "repeat_kv",
    "scaled_dot_product_attention",
    "single_token_attention",
    "softmax",
]


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax by hand: ``exp(x - max) / sum(exp(x - max))``.

    Subtracting the row maximum changes nothing mathematically (it cancels in the ratio) but
    keeps ``exp`` from overflowing. A row that is entirely ``-inf`` (every key masked) gets
    all-zero weights instead of NaN.

    Args:
        x: scores, any shape.
        dim: the dimension to normalise over.

    Returns:
        Weights of x's shape, non-negative, summing to 1 along ``dim`` (0 for all-masked rows).
    """
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf row: avoid inf - inf
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s > 0, s, torch.ones_like(s))


@dataclass
class SingleTokenAttention:
    """Every intermediate of one query attending over T keys.

    Attributes:
        scores: raw dot products ``q . k_j``, ``(T,)``.
        scaled_scores: ``scores / sqrt(d)``, ``(T,)``.
        weights: softmax of the scaled scores, ``(T,)``, sums to 1.
        output: ``sum_j weights_j * v_j``, ``(d_v,)``.
    """

    scores: Tensor
    scaled_scores: Tensor
    weights: Tensor
    output: Tensor


def single_token_attention(q: Tensor, K: Tensor, V: Tensor) -> SingleTokenAttention:
    """Hand-wired dot-product attention for a single query token.

    Worked example: ``q = [1, 0]``, keys ``K = [[1, 0], [0, 1]]``, values ``V = [[10], [20]]``.
    Scores are ``[1, 0]``; scaled by ``1/sqrt(2)`` they are ``[0.7071, 0]``; the softmax gives
    ``e^.7071 / (e^.7071 + 1) = 0.6698`` and ``0.3302``; the output is
    ``0.6698 * 10 + 0.3302 * 20 = 13.30``. The query "looks like" the first key, so it mostly
    reads the first value.

    Args:
        q: the query, ``(d,)``.
        K: one key per token, ``(T, d)``.
        V: one value per token, ``(T, d_v)``.

    Returns:
        A :class:`SingleTokenAttention` with scores, scaled scores, weights and output.
    """
    if q.dim() != 1 or K.dim() != 2 or V.dim() != 2:
        raise ValueError(
            f"expected q (d,), K (T, d), V (T, d_v); got {tuple(q.shape)}, {tuple(K.shape)}, {tuple(V.shape)}"
        )
    if K.size(1) != q.size(0) or K.size(0) != V.size(0):
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, K {tuple(K.shape)}, V {tuple(V.shape)}")
    scores = (K * q[None, :]).sum(dim=1)  # (T,): one dot product per key, written out
    scaled = scores / math.sqrt(q.size(0))  # (T,)
    weights = softmax(scaled, dim=0)  # (T,)
    output = (weights[:, None] * V).sum(dim=0)  # (d_v,): weighted average of the values
    return SingleTokenAttention(scores, scaled, weights, output)


def causal_mask(q_positions: Tensor, k_positions: Tensor) -> Tensor:
    """Boolean mask, True where the key's position is not after the query's.

    Built from absolute positions so it stays right when a KV cache makes ``T_q < T_k``: a
    query at position 7 may see cached keys 0..7 (the mask is "bottom-right aligned").

    Args:
        q_positions: ``(T_q,)`` int64.
        k_positions: ``(T_k,)`` int64.

    Returns:
        ``(T_q, T_k)`` bool.
    """
    return k_positions[None, :] <= q_positions[:, None]  # (T_q, T_k)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Batched attention by hand: the reference for ``F.scaled_dot_product_attention``.

    Args:
        q: queries, ``(..., T_q, hs)``.
        k: keys, ``(..., T_k, hs)``.
        v: values, ``(..., T_k, hs_v)``.
        attn_mask: bool (True = may attend) or float (added to scores), broadcastable to
            ``(..., T_q, T_k)``.
        is_causal: apply a lower-triangular mask. Like torch, it is top-left aligned
            (``tril(ones(T_q, T_k))``); use :func:`causal_mask` with positions for a KV cache.
        scale: score multiplier; ``1/sqrt(hs)`` by default.
        dropout_p: dropout on the weights (pass 0 at eval time).

    Returns:
        ``(output, weights)``: ``(..., T_q, hs_v)`` and the pre-dropout ``(..., T_q, T_k)``
        weights.
    """
    T_q, T_k = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, hs) @ (..., hs, T_k) -> (..., T_q, T_k)
    if is_causal:
        keep = torch.ones(T_q, T_k, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = softmax(scores, dim=-1)  # (..., T_q, T_k)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (..., T_q, T_k) @ (..., T_k, hs_v) -> (..., T_q, hs_v)


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Share each key/value head among ``n_rep`` consecutive query heads (grouped-query).

    Query head ``h`` uses K/V head ``h // n_rep``, the same grouping as Llama's ``repeat_kv``.

    Args:
        x: ``(B, nkv, T, hs)``.
        n_rep: ``nh // nkv``.

    Returns:
        ``(B, nkv * n_rep, T, hs)`` (x itself when ``n_rep == 1``).
    """
    if n_rep == 1:
        return x
    B, nkv, T, hs = x.shape
    x = x[:, :, None, :, :].expand(B, nkv, n_rep, T, hs)  # (B, nkv, n_rep, T, hs), no copy yet
    return x.reshape(B, nkv * n_rep, T, hs)  # (B, nh, T, hs)


# torch >= 2.5 lets the fused kernel index shared K/V heads itself instead of copying them
_SDPA_HAS_GQA = TorchVersion(torch.__version__) >= "2.5"


def _fused_sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    dropout_p: float,
    n_rep: int,
    is_causal: bool = False,
) -> Tensor:
    """``F.scaled_dot_product_attention`` with grouped K/V heads: ``(B, nh, T_q, hs)``."""
    if n_rep > 1 and _SDPA_HAS_GQA:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, enable_gqa=True
        )
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, T_k, hs)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
    )


class MultiHeadAttention(nn.Module):
    """Multi-head (optionally grouped-query) self-attention.

    ``nh`` heads of size ``hs = C / nh`` attend in parallel, each in its own learned subspace, so
    one head can track the previous token while another tracks the subject of the sentence.
    Queries, keys and values come from one fused ``Linear(C, (nh + 2*nkv) * hs)``: one big
    matmul instead of three smaller ones, same parameters (the rows are just stacked
    ``[W_q; W_k; W_v]``).

    Args:
        d_model: model width C.
        n_heads: query heads nh; must divide C.
        n_kv_heads: key/value heads nkv; must divide nh. ``None`` means nh (plain multi-head);
            1 is multi-query attention.
        bias: add biases to the projections.
        dropout: dropout on the attention weights (training only).
        causal: apply the causal mask by default.
        fused: use a fast kernel (``nn/fast/`` or ``F.scaled_dot_product_attention``) when the
            weights are not requested; ``False``: always the formula by hand.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.dropout, self.causal, self.fused = dropout, causal, fused
        self.qkv = Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=bias)
        self.proj = Linear(n_heads * self.head_dim, d_model, bias=bias)

    def forward(
        self,
        x: Tensor,
        *,
        position: PositionScheme | None = None,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend.

        Args:
            x: input, ``(B, T, C)``.
            position: the model's position scheme; its ``rotate`` and ``score_bias`` hooks are
                applied here (``None``: no position information).
            positions: absolute positions of the T inputs, ``(T,)``; default ``start..start+T-1``
                where ``start`` is the number of tokens already in ``kv_cache`` (or 0). Whoever
                passes positions must have called ``position.ensure_length`` for them.
            attn_mask: bool ``(T_q, T_k)`` or ``(B, T_q, T_k)``, True = may attend. Replaces the
                causal mask (e.g. a prefix-LM mask).
            padding_mask: bool ``(B, T_k)``, True for real tokens, False for padding keys.
            kv_cache: if given, new keys/values are appended to it and attention runs over
                everything cached.
            layer_idx: this layer's slot in ``kv_cache``.
            need_weights: also return the attention weights (forces the by-hand path).

        Returns:
            ``(y, weights)``: ``(B, T, C)`` and ``(B, nh, T_q, T_k)`` weights or ``None``.
        """
        B, T, C = x.shape
        if C != self.d_model:
            raise ValueError(f"expected last dim {self.d_model}, got input {tuple(x.shape)}")
        if positions is None:
            start = kv_cache.seq_len(layer_idx) if kv_cache is not None else 0
            positions = torch.arange(start, start + T, device=x.device)
            if position is not None:
                position.ensure_length(start + T)
        if fast.can_train_causal(self, x, position, attn_mask, padding_mask, kv_cache, need_weights):
            # training on a short causal window: the hand-written kernel, the same function
            rotation = position.rotation_angles(positions) if position is not None else None
            return self.proj(fast.causal_self_attention(self.qkv(x), self.n_heads, rotation)), None

        # 1. project to queries, keys and values and split them into heads
        nh, nkv, hs = self.n_heads, self.n_kv_heads, self.head_dim
        heads = self.qkv(x).view(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B, nh+2nkv, T, hs)
        qk, v = heads.split([nh + nkv, nkv], dim=1)  # (B, nh+nkv, T, hs), (B, nkv, T, hs)
        # 2. positions: RoPE turns queries and keys of the same tokens by the same angles (one
        #    call for both); the other schemes pass through
        if position is not None:
            qk = position.rotate_heads(qk, positions)
        q, k = qk.split([nh, nkv], dim=1)  # (B, nh, T, hs), (B, nkv, T, hs)
        # 3. the KV cache keeps the rotated keys: a cached key never needs rotating again
        if kv_cache is not None:
            k, v = kv_cache.update(layer_idx, k, v)  # (B, nkv, T_k, hs)
        # 4. which keys each query may see, and the scores' bias (ALiBi)
        by_hand = need_weights or not self.fused
        mask, is_causal = self._scores_mask(B, positions, k.size(2), position, attn_mask,
                                            padding_mask, kv_cache, by_hand)
        # 5. softmax(q k^T / sqrt(hs) + mask) v, every head at once
        dropout_p = self.dropout if self.training else 0.0
        if by_hand:  # the formula written out, weights kept
            k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)  # (B, nh, T_k, hs)
            y, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:  # torch's fused kernel: the weights are never materialised
            y = _fused_sdpa(q, k, v, mask, dropout_p, nh // nkv, is_causal)  # (B, nh, T, hs)
            weights = None
        # 6. merge the heads and project back
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # (B, nh, T, hs) -> (B, T, nh*hs)
        return self.proj(y), (weights if need_weights else None)

    def _scores_mask(
        self,
        B: int,
        positions: Tensor,
        T_k: int,
        position: PositionScheme | None,
        attn_mask: Tensor | None,
        padding_mask: Tensor | None,
        kv_cache: KVCache | None,
        by_hand: bool,
    ) -> tuple[Tensor | None, bool]:
        """``(mask, is_causal)``: the bool or float mask for the scores, or ``None``.

        The two common cases need no mask tensor for torch's fused kernel: training (``T ==
        T_k``), where the kernel applies the causal mask itself (``is_causal``), tile by tile,
        skipping the fully masked tiles; and one-token decoding with a KV cache, where the newest
        query may see every cached key. Otherwise the causal, user and padding masks combine into
        one bool mask, and a score bias (ALiBi) turns it into a float one: the bias where allowed,
        ``-inf`` where masked.
        """
        T = positions.numel()
        no_user_mask = attn_mask is None and padding_mask is None
        no_bias = position is None or not position.biases_scores
        if not by_hand and no_user_mask and no_bias and ((self.causal and T == T_k) or T == 1):
            return None, T > 1 and self.causal
        k_positions = torch.arange(T_k, device=positions.device) if kv_cache is not None else positions
        mask = self._keep_mask(B, positions, k_positions, attn_mask, padding_mask)  # bool or None
        bias = position.score_bias(positions, k_positions) if position is not None else None
        if bias is not None:
            mask = bias[None] if mask is None else bias[None].masked_fill(~mask, float("-inf"))
        return mask, False

    def _keep_mask(
        self,
        B: int,
        q_positions: Tensor,
        k_positions: Tensor,
        attn_mask: Tensor | None,
        padding_mask: Tensor | None,
    ) -> Tensor | None:
        """Combine causal, user and padding masks into one bool ``(B|1, 1, T_q, T_k)`` or None."""
        T_q, T_k = q_positions.numel(), k_positions.numel()
        keep = None
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool or attn_mask.shape[-2:] != (T_q, T_k):
                raise ValueError(
                    f"attn_mask must be bool (..., {T_q}, {T_k}), "
                    f"got {attn_mask.dtype} {tuple(attn_mask.shape)}"
                )
            keep = attn_mask.reshape(-1, 1, T_q, T_k)  # (B|1, 1, T_q, T_k): same for every head
        elif self.causal:
            keep = causal_mask(q_positions, k_positions)[None, None]  # (1, 1, T_q, T_k)
        if padding_mask is not None:
            if padding_mask.shape != (B, T_k):
                raise ValueError(
                    f"padding_mask must be ({B}, {T_k}), got {tuple(padding_mask.shape)}"
                )
            pad = padding_mask.bool()[:, None, None, :]  # (B, 1, 1, T_k)
            keep = pad if keep is None else keep & pad
        return keep
