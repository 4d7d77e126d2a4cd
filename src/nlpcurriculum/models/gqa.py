"""Convert a multi-head mini-former into grouped-query layout by mean-pooling K/V heads.

Grouped-query attention (GQA; Ainslie et al. 2023, "GQA: Training Generalized Multi-Query
Transformer Models from Multi-Head Checkpoints", arXiv:2305.13245) lets ``nh / nkv`` query heads
share one key/value head. The KV cache, which decoding reads in full at every step, shrinks by
that factor. The paper converts an existing multi-head checkpoint instead of training from
scratch: the K (and V) projection heads of each group are **mean-pooled** into one head (section
2.1; pooling beat keeping one head or random init), then the model is *uptrained* for a small
fraction (5%) of the original steps to adapt to the shared heads.

Grouping follows :func:`~nlpcurriculum.nn.attention.repeat_kv`: query head ``h`` reads K/V head
``h // (nh / nkv)``, so group ``g`` is the consecutive query heads ``g*r .. g*r + r - 1``
(``r = nh / nkv``) and its pooled head is the mean of their K/V heads. Because the projection is
linear, pooling the weights (and biases) equals pooling the projected keys and values; RoPE acts
after the projection and is linear too, so it commutes with the mean.

Two properties pin the conversion down (tested): converting to ``nkv = nh`` changes nothing, and
a model whose heads inside each group are already identical is converted exactly (same logits).

Dimension legend: nh query heads, nkv key/value heads, hs head size, C d_model.

A GQA source with more K/V heads can be pooled further (its groups are merged the same way).

Left out: un-pooling (GQA -> MHA) and other pooling rules (first head of the group, learned).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from nlpcurriculum.models.miniformer import MiniFormer

__all__ = ["convert_to_gqa", "pool_heads"]


def pool_heads(t: Tensor, n_src: int, n_dst: int) -> Tensor:
    """Mean-pool ``n_src`` consecutive head blocks of ``t``'s first dim down to ``n_dst`` blocks.

    Args:
        t: ``(n_src * hs, ...)``: a projection's rows (weight ``(n_src*hs, C)`` or bias
            ``(n_src*hs,)``), head after head.
        n_src: heads in ``t``; a multiple of ``n_dst``.
        n_dst: heads after pooling.

    Returns:
        ``(n_dst * hs, ...)``: block ``g`` is the mean of source blocks ``g*r .. g*r+r-1``.
    """
    if n_dst < 1 or n_src % n_dst:
        raise ValueError(f"n_kv_heads={n_dst} must divide the source's {n_src} key/value heads")
    hs = t.size(0) // n_src
    r = n_src // n_dst
    blocks = t.reshape(n_dst, r, hs, *t.shape[1:])  # (n_dst, r, hs, ...)
    return blocks.mean(dim=1).reshape(n_dst * hs, *t.shape[1:])


@torch.no_grad()
def convert_to_gqa(model: MiniFormer, n_kv_heads: int) -> MiniFormer:
    """A new :class:`MiniFormer` in grouped-query layout with ``n_kv_heads`` K/V heads.

    Every weight is copied; in each attention layer the key and value rows of the fused ``qkv``
    projection (weight and bias) are mean-pooled per group (:func:`pool_heads`). The source model
    is left untouched.

    Args:
        model: a trained mini-former (multi-head, or GQA with a multiple of ``n_kv_heads``).
        n_kv_heads: key/value heads of the result; must divide the source's K/V head count.

    Returns:
        The converted model, in the source's training/eval mode.
    """
    cfg = model.config
    src_kv = cfg.n_kv_heads
    if n_kv_heads < 1 or src_kv % n_kv_heads:
        raise ValueError(
            f"n_kv_heads={n_kv_heads} must divide the source model's n_kv_heads={src_kv}"
        )
    new = MiniFormer(replace(cfg, n_kv_heads=n_kv_heads))
    state = dict(model.state_dict())
    nh, hs = cfg.n_heads, cfg.head_dim
    q_rows, kv_rows = nh * hs, src_kv * hs
    for i in range(cfg.n_layers):
        for name in ("weight", "bias"):
            key = f"blocks.{i}.attn.qkv.{name}"
            if key not in state:
                continue
            t = state[key]  # ((nh + 2*src_kv) * hs, C) or ((nh + 2*src_kv) * hs,)
            q, k, v = t.split([q_rows, kv_rows, kv_rows], dim=0)
            state[key] = torch.cat([q, pool_heads(k, src_kv, n_kv_heads),
                                    pool_heads(v, src_kv, n_kv_heads)], dim=0)
    new.load_state_dict(state)
    return new.train(model.training)
