"""Read and rewire the queries, keys and values inside a trained mini-former.

Every attention layer computes ``q, k, v = split(qkv(x))`` with one fused projection
(:class:`~nlpcurriculum.nn.attention.MultiHeadAttention`). A forward hook on that projection
sees its output ``(B, T, (nh + 2 nkv) hs)`` and may return a replacement, so the model's code
stays untouched while we

- *read* them: :func:`capture_qkv` returns every layer's per-head q, k, v as the attention
  product sees them (after RoPE, when the model uses it);
- *break* them: :func:`intervene_qkv` swaps, zeroes, randomizes or ties them, at inference or
  during training (hooks are differentiable, so a model can be retrained with, say, ``K := Q``).

What each intervention does to ``softmax(q k^T / sqrt(hs)) v``:

===========  ==================================================================================
``swap_qk``  every token asks with its key and advertises with its query: scores transpose
             (``s[t, j] = k_t . q_j``), so a head that looked "back at what matches me" now
             looks for tokens that match what it *offers*.
``swap_kv``  tokens are matched by their values and deliver their keys.
``zero_q``   all scores 0: every row attends *uniformly* over its visible prefix (a running mean).
``zero_k``   the same uniform attention (scores are bilinear in q and k).
``zero_v``   attention outputs nothing (only the output projection's bias): the model is left
             with the residual path, i.e. a per-token (bigram-like) predictor.
``random_*``  the slice is replaced by Gaussian noise with its own standard deviation.
``tie_qk``   ``K := Q``: scores become symmetric, ``s[t, j] = q_t . q_j``, a positive
             semi-definite form, so a token always scores itself highly.
===========  ==================================================================================

Dimension legend: B batch, T tokens, nh query heads, nkv key/value heads, hs head size.

Left out: per-head interventions (these act on every head of the chosen layers), activation
patching between two inputs, and interventions on the output projection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.attention import MultiHeadAttention

__all__ = ["QKV_INTERVENTIONS", "LayerQKV", "capture_qkv", "intervene_qkv", "split_fused_qkv"]

QKV_INTERVENTIONS = (
    "none",
    "swap_qk",
    "swap_kv",
    "zero_q",
    "zero_k",
    "zero_v",
    "random_q",
    "random_k",
    "random_v",
    "tie_qk",
)


@dataclass
class LayerQKV:
    """One layer's queries, keys and values, per head.

    Attributes:
        q: ``(B, nh, T, hs)`` queries (rotated if the model uses RoPE).
        k: ``(B, nkv, T, hs)`` keys (rotated likewise).
        v: ``(B, nkv, T, hs)`` values.
    """

    q: Tensor
    k: Tensor
    v: Tensor


def split_fused_qkv(attn: MultiHeadAttention, fused: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split the fused projection output into per-head q, k, v (the layout attention uses).

    Args:
        attn: the attention module that produced ``fused``.
        fused: ``(B, T, (nh + 2 nkv) hs)``.

    Returns:
        ``q (B, nh, T, hs)``, ``k (B, nkv, T, hs)``, ``v (B, nkv, T, hs)``.
    """
    B, T, _ = fused.shape
    nh, nkv, hs = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q, k, v = fused.split([nh * hs, nkv * hs, nkv * hs], dim=-1)
    q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
    v = v.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
    return q, k, v


@torch.no_grad()
def capture_qkv(model: nn.Module, idx: Tensor) -> list[LayerQKV]:
    """Run ``model`` on ``idx`` and return every layer's q, k, v as the attention product sees them.

    Args:
        model: a :class:`~nlpcurriculum.models.miniformer.MiniFormer` (``blocks[i].attn.qkv``).
        idx: ``(B, T)`` token ids (no KV cache: positions are ``0..T-1``).

    Returns:
        One :class:`LayerQKV` per block.
    """
    fused: list[Tensor] = []
    handles = [
        block.attn.qkv.register_forward_hook(lambda m, a, out: fused.append(out.detach()))
        for block in model.blocks
    ]
    try:
        model(idx)
    finally:
        for h in handles:
            h.remove()
    positions = torch.arange(idx.size(1), device=idx.device)
    layers = []
    for block, out in zip(model.blocks, fused):
        q, k, v = split_fused_qkv(block.attn, out)
        q, k = model.position.rotate(q, k, positions)  # RoPE rotates here; other schemes pass through
        layers.append(LayerQKV(q, k, v))
    return layers


def _rewire(kind: str, q: Tensor, k: Tensor, v: Tensor, generator: torch.Generator) -> list[Tensor]:
    """The ``[q, k, v]`` slices after intervention ``kind`` (each ``(B, T, n * hs)``)."""

    def noise(like: Tensor) -> Tensor:
        # the same scale as what it replaces, so only the *information* is destroyed
        std = like.detach().std()
        return torch.randn(like.shape, generator=generator).to(like) * std

    if kind == "none":
        return [q, k, v]
    if kind == "swap_qk":
        return [k, q, v]
    if kind == "swap_kv":
        return [q, v, k]
    if kind == "zero_q":
        return [torch.zeros_like(q), k, v]
    if kind == "zero_k":
        return [q, torch.zeros_like(k), v]
    if kind == "zero_v":
        return [q, k, torch.zeros_like(v)]
    if kind == "random_q":
        return [noise(q), k, v]
    if kind == "random_k":
        return [q, noise(k), v]
    if kind == "random_v":
        return [q, k, noise(v)]
    if kind == "tie_qk":
        return [q, q, v]
    raise ValueError(f"unknown intervention {kind!r}; choose one of {QKV_INTERVENTIONS}")


@contextmanager
def intervene_qkv(
    model: nn.Module,
    kind: str,
    layers: Sequence[int] | None = None,
    seed: int = 0,
) -> Iterator[None]:
    """Apply a Q/K/V intervention to every forward pass run inside the ``with`` block.

    Example:
        >>> with intervene_qkv(model, "zero_v"):
        ...     loss = model(x, targets=y).loss  # the model without its values

    Args:
        model: a :class:`~nlpcurriculum.models.miniformer.MiniFormer`.
        kind: one of :data:`QKV_INTERVENTIONS`.
        layers: block indices to intervene on; ``None`` means all.
        seed: seed of the noise of the ``random_*`` interventions.

    Raises:
        ValueError: unknown ``kind`` or layer index, or a swap/tie that needs ``nkv == nh``
            (q and k must have the same shape to trade places).
    """
    if kind not in QKV_INTERVENTIONS:
        raise ValueError(f"unknown intervention {kind!r}; choose one of {QKV_INTERVENTIONS}")
    n_blocks = len(model.blocks)
    chosen = list(range(n_blocks)) if layers is None else list(layers)
    bad = [i for i in chosen if not 0 <= i < n_blocks]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist (the model has {n_blocks} blocks)")
    generator = torch.Generator().manual_seed(seed)
    handles = []
    for i in chosen:
        attn = model.blocks[i].attn
        nh, nkv, hs = attn.n_heads, attn.n_kv_heads, attn.head_dim
        if kind in ("swap_qk", "tie_qk") and nh != nkv:
            raise ValueError(f"{kind} needs as many key heads as query heads (nh={nh}, nkv={nkv})")
        sizes = [nh * hs, nkv * hs, nkv * hs]

        def hook(module: nn.Module, args: tuple, out: Tensor, sizes: list[int] = sizes) -> Tensor:
            q, k, v = out.split(sizes, dim=-1)  # (B, T, nh*hs), (B, T, nkv*hs) x 2
            return torch.cat(_rewire(kind, q, k, v, generator), dim=-1)  # (B, T, (nh+2nkv)*hs)

        handles.append(attn.qkv.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
