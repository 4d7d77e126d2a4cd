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

Storage: one buffer per layer for keys and one for values, ``(B, nkv, capacity, hs)``, filled
from the front. A new step writes its keys into the next free slots and attention reads a view
of the filled part, so a step costs O(new tokens) copies, not the O(T) of concatenating the
whole history again. A full buffer doubles (amortised O(1) per token); a caller that knows the
final length passes it as ``capacity`` and never regrows. When autograd is recording (the new
keys require grad) the cache concatenates instead: writing in place into tensors that earlier
steps saved for backward would corrupt their gradients.

Left out: paged storage (vLLM's PagedAttention), per-sequence lengths for ragged batches,
eviction and sliding-window truncation (``crop`` only rolls back the tail), quantised caches.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["KVCache"]


class KVCache:
    """Per-layer buffers of keys and values, filled front to back.

    Args:
        n_layers: number of attention layers that will write to the cache.
        capacity: positions to allocate on the first write (more are added by doubling when
            needed); 0 allocates just what the first write holds.

    Example:
        >>> cache = KVCache(n_layers=2, capacity=16)
        >>> k = v = torch.zeros(1, 4, 3, 8)  # (B, nkv, T=3, hs)
        >>> k_all, v_all = cache.update(0, k, v)
        >>> cache.seq_len(0), k_all.shape
        (3, torch.Size([1, 4, 3, 8]))
    """

    def __init__(self, n_layers: int, capacity: int = 0) -> None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.n_layers, self.capacity = n_layers, capacity
        self._k: list[Tensor | None] = [None] * n_layers  # (B, nkv, allocated, hs) buffers
        self._v: list[Tensor | None] = [None] * n_layers
        self._len = [0] * n_layers  # filled positions per layer

    @property
    def keys(self) -> list[Tensor | None]:
        """Per layer, the cached keys ``(B, nkv, T, hs)`` (a view of the buffer), or ``None``."""
        return [None if k is None else k[:, :, :n] for k, n in zip(self._k, self._len)]

    @property
    def values(self) -> list[Tensor | None]:
        """Per layer, the cached values ``(B, nkv, T, hs)`` (a view of the buffer), or ``None``."""
        return [None if v is None else v[:, :, :n] for v, n in zip(self._v, self._len)]

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
        buf_k, buf_v, old = self._k[layer_idx], self._v[layer_idx], self._len[layer_idx]
        if buf_k is not None and (buf_k.shape[:2] != k.shape[:2] or buf_k.shape[3] != k.shape[3]):
            raise ValueError(
                f"new keys {tuple(k.shape)} do not extend cached keys "
                f"{tuple(buf_k[:, :, :old].shape)}"
            )
        new = old + k.size(2)
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            if buf_k is not None:  # autograd is recording: concatenate, never write in place
                k = torch.cat([buf_k[:, :, :old], k], dim=2)  # (B, nkv, T_old + T_new, hs)
                v = torch.cat([buf_v[:, :, :old], v], dim=2)
            self._k[layer_idx], self._v[layer_idx], self._len[layer_idx] = k, v, new
            return k, v
        if buf_k is None or buf_k.size(2) < new:
            size = max(new, self.capacity, 2 * buf_k.size(2) if buf_k is not None else 0)
            buf_k, buf_v = self._grow(buf_k, k, old, size), self._grow(buf_v, v, old, size)
            self._k[layer_idx], self._v[layer_idx] = buf_k, buf_v
        buf_k[:, :, old:new] = k  # write the new positions in place: no copy of the history
        buf_v[:, :, old:new] = v
        self._len[layer_idx] = new
        return buf_k[:, :, :new], buf_v[:, :, :new]

    @staticmethod
    def _grow(buf: Tensor | None, like: Tensor, filled: int, size: int) -> Tensor:
        """A ``(B, nkv, size, hs)`` buffer holding the first ``filled`` positions of ``buf``."""
        B, nkv, _, hs = like.shape
        grown = like.new_empty(B, nkv, size, hs)
        if buf is not None and filled:
            grown[:, :, :filled] = buf[:, :, :filled]
        return grown

    def seq_len(self, layer_idx: int = 0) -> int:
        """Number of positions cached for a layer (0 when empty)."""
        return self._len[layer_idx]

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions of every layer (drop the rest).

        Speculative decoding (:mod:`nlpcurriculum.decoding.speculative`) appends keys and values
        for drafted tokens and rolls back to the last accepted one when the target rejects.
        A ``length`` at or past the cached length leaves the cache as it is. The buffers stay
        allocated: the next write overwrites the dropped positions.

        Raises:
            ValueError: when ``length`` is negative.
        """
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self._len = [min(n, length) for n in self._len]

    def reorder(self, index: Tensor) -> None:
        """Keep batch row ``index[j]`` as row ``j`` in every layer (beam search's reshuffle).

        ``index`` may repeat rows and change the batch size: ``index = zeros(n)`` copies one
        prefilled sequence to a batch of ``n``.
        """
        for i in range(self.n_layers):
            if self._k[i] is not None:
                self._k[i] = self._k[i].index_select(0, index)  # (len(index), nkv, allocated, hs)
                self._v[i] = self._v[i].index_select(0, index)

    def reset(self) -> None:
        """Forget everything (start a new sequence)."""
        self._k, self._v = [None] * self.n_layers, [None] * self.n_layers
        self._len = [0] * self.n_layers

    def memory_bytes(self) -> int:
        """Bytes of the cached keys and values, all layers together (filled positions only)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)

    def allocated_bytes(self) -> int:
        """Bytes of the buffers as allocated (filled or not), all layers together."""
        return sum(t.numel() * t.element_size() for t in self._k + self._v if t is not None)
