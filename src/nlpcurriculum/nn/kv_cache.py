"""A key/value cache for autoregressive decoding.

When a causal decoder generates token ``t``, the keys and values of tokens ``0..t-1`` are the
same as when it generated token ``t-1`` (the causal mask guarantees earlier positions never see
later ones). Recomputing them is wasted work: O(T^2) projections for a T-token generation
instead of O(T). The cache stores, per layer, the keys (already position-rotated, for RoPE) and
values of everything seen so far; each new step projects only the new tokens, appends them and
attends over the whole cache. Decoding with the cache gives the same logits as re-running the
full prefix (tested to fp32 rounding), and the same greedy text.

Keys and values are stored with ``nkv`` heads, *before* grouped-query heads are repeated: that is
where grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245) saves memory.

Dimension legend: B batch, nkv key/value heads, T tokens cached so far, hs head size.

Left out: preallocated / paged storage (we grow by concatenation, O(T) copies per step, which is
simple and fine at curriculum sizes), per-sequence lengths for ragged batches, eviction and
sliding-window truncation (``crop`` only rolls back the tail), quantised caches.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KVCache"]


class KVCache:
    """Per-layer growing buffers of keys and values.

    Args:
        n_layers: number of attention layers that will write to the cache.

    Example:
        >>> cache = KVCache(n_layers=2)
        >>> k = v = torch.zeros(1, 4, 3, 8)  # (B, nkv, T=3, hs)
        >>> k_all, v_all = cache.update(0, k, v)
        >>> cache.seq_len(0)
        3
    """

    def __init__(self, n_layers: int) -> None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers

    def update(self, layer_idx: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys and values for one layer and return everything cached for it.

        Args:
            layer_idx: which layer is writing.
            k: new keys, ``(B, nkv, T_new, hs)``.
            v: new values, ``(B, nkv, T_new, hs)``.

        Returns:
            ``(k_all, v_all)``, each ``(B, nkv, T_old + T_new, hs)``.
        """
        if not 0 <= layer_idx < self.n_layers:
            raise IndexError(f"layer_idx {layer_idx} is out of range: {self.n_layers} layers")
        if k.shape != v.shape or k.dim() != 4:
            raise ValueError(
                f"k and v must both be (B, nkv, T, hs), got {tuple(k.shape)} and {tuple(v.shape)}"
            )
        old_k, old_v = self.keys[layer_idx], self.values[layer_idx]
        if old_k is not None:
            if old_k.shape[:2] != k.shape[:2] or old_k.shape[3] != k.shape[3]:
                raise ValueError(
                    f"new keys {tuple(k.shape)} do not extend cached keys {tuple(old_k.shape)}"
                )
            k = torch.cat([old_k, k], dim=2)  # (B, nkv, T_old + T_new, hs)
            v = torch.cat([old_v, v], dim=2)
        self.keys[layer_idx], self.values[layer_idx] = k, v
        return k, v

    def seq_len(self, layer_idx: int = 0) -> int:
        """Number of positions cached for a layer (0 when empty)."""
        k = self.keys[layer_idx]
        return 0 if k is None else k.size(2)

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions of every layer (drop the rest).

        Speculative decoding (:mod:`nlpcurriculum.decoding.speculative`) appends keys and values
        for drafted tokens and rolls back to the last accepted one when the target rejects.
        A ``length`` at or past the cached length leaves the cache as it is.

        Raises:
            ValueError: when ``length`` is negative.
        """
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and k.size(2) > length:
                self.keys[i], self.values[i] = k[:, :, :length], v[:, :, :length]

    def reset(self) -> None:
        """Forget everything (start a new sequence)."""
        self.keys = [None] * self.n_layers
        self.values = [None] * self.n_layers

    def memory_bytes(self) -> int:
        """Bytes held by the cached keys and values, all layers together."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)
