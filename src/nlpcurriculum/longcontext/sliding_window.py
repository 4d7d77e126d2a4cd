"""Sliding-window attention with a ring-buffer KV cache.

A causal query at position ``i`` attends to the ``W`` most recent keys only, positions
``i - W + 1 .. i`` (Longformer's local pattern, Beltagy et al. 2020, arXiv:2004.05150; Mistral 7B's
sliding window, Jiang et al. 2023, arXiv:2310.06825). Two consequences:

* attention costs ``O(T W)`` instead of ``O(T^2)``, and a decoder needs to keep only the last
  ``W`` keys and values per layer: the **ring buffer** :class:`RingKVCache` writes the key of
  position ``p`` into slot ``p mod W``, overwriting the key that just left the window, so its
  memory is the same at token 100 and at token 100 000;
* information still travels further than ``W``: layer ``l`` reads what layer ``l - 1`` wrote at
  positions up to ``W - 1`` back, so ``L`` layers see ``L (W - 1)`` tokens back (the receptive
  field), but only through intermediate positions.

The mask is built from absolute positions (:func:`window_mask`), so the same code serves training
(``T`` queries against their own ``T`` keys), the full :class:`~nlpcurriculum.nn.kv_cache.KVCache`
(keys at ``0 .. T_k - 1``) and the ring buffer (keys at whatever positions its slots hold; an
empty slot has position -1 and is masked). Attention is order-free over its keys once the mask and
the position bias are right, which is why the ring never needs to be unrolled: RoPE keys are
stored already rotated, ALiBi's bias is computed from the stored positions.

Worked example (``W = 2``, ring of 2 slots): after tokens 0, 1, 2 the slots hold positions
``[2, 1]`` (token 2 overwrote token 0 in slot ``2 mod 2 = 0``); the query at position 2 sees keys
1 and 2, exactly the band ``2 - 2 < j <= 2`` of the dense masked reference.

Dimension legend: B batch, T new tokens, T_k attended keys, W window, nh query heads, nkv
key/value heads, hs head size, C = d_model.

Left out: attention sinks (StreamingLLM keeps the first tokens too), dilated and global windows,
rolling-buffer chunked prefill with pre-allocated KV blocks (Mistral's); a multi-token step with the
ring concatenates the cached window and the new keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlpcurriculum.nn.attention import MultiHeadAttention, repeat_kv, scaled_dot_product_attention
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.positional import PositionScheme

__all__ = ["RingKVCache", "SlidingWindowAttention", "window_mask"]


def window_mask(q_positions: Tensor, k_positions: Tensor, window: int) -> Tensor:
    """Bool ``(T_q, T_k)``, True where key ``j`` lies in query ``i``'s window: ``i - W < j <= i``.

    Keys at negative positions (empty ring slots) are never visible.

    Example: ``window_mask(arange(3), arange(3), 2)`` is
    ``[[1, 0, 0], [1, 1, 0], [0, 1, 1]]``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    delta = q_positions[:, None] - k_positions[None, :]  # (T_q, T_k): how far back each key lies
    return (delta >= 0) & (delta < window) & (k_positions[None, :] >= 0)


class RingKVCache:
    """Per layer, the keys and values of the last ``window`` positions, in a ring of slots.

    The interface the mini-former needs from a cache (``n_layers``, :meth:`seq_len`) plus
    :meth:`update`, which also returns the absolute positions of the keys it hands back.

    Args:
        n_layers: attention layers that write to it.
        window: W, slots per layer.

    Example:
        >>> cache = RingKVCache(n_layers=1, window=2)
        >>> for p in range(3):
        ...     k = v = torch.full((1, 1, 1, 4), float(p))       # (B, nkv, 1, hs)
        ...     _, _, pos = cache.update(0, k, v, torch.tensor([p]))
        >>> pos.tolist(), cache.seq_len()
        ([2, 1], 3)
    """

    def __init__(self, n_layers: int, window: int) -> None:
        if n_layers < 1 or window < 1:
            raise ValueError(f"need n_layers >= 1 and window >= 1, got {n_layers}, {window}")
        self.n_layers, self.window = n_layers, window
        self._k: list[Tensor | None] = [None] * n_layers  # (B, nkv, W, hs)
        self._v: list[Tensor | None] = [None] * n_layers
        self._pos: list[Tensor | None] = [None] * n_layers  # (W,) int64, -1 for an empty slot
        self._len = [0] * n_layers

    def seq_len(self, layer_idx: int = 0) -> int:
        """Positions seen so far by a layer (not the number kept, which is at most ``window``)."""
        return self._len[layer_idx]

    def update(self, layer_idx: int, k: Tensor, v: Tensor, positions: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Store new keys/values and return the keys the new queries may need, with positions.

        One new token (decoding) is written into its slot in place and the whole ring is returned
        (``T_k = W``). Several new tokens (a prefill chunk) return the cached ring followed by the
        new keys (``T_k = W + T``; the earliest new queries need cached keys the last new ones
        overwrite), then the last ``W`` of them are stored.

        Args:
            layer_idx: which layer writes.
            k, v: new keys and values, ``(B, nkv, T, hs)``.
            positions: their absolute positions, ``(T,)``, consecutive after :meth:`seq_len`.

        Returns:
            ``(keys, values, key_positions)``: ``(B, nkv, T_k, hs)`` twice and ``(T_k,)``.
        """
        if k.shape != v.shape or k.dim() != 4 or positions.shape != (k.size(2),):
            raise ValueError(f"need k, v (B, nkv, T, hs) and positions (T,), got {tuple(k.shape)}, "
                             f"{tuple(v.shape)}, {tuple(positions.shape)}")
        W, T = self.window, k.size(2)
        if self._k[layer_idx] is None:
            B, nkv, _, hs = k.shape
            self._k[layer_idx] = k.new_zeros(B, nkv, W, hs)
            self._v[layer_idx] = v.new_zeros(B, nkv, W, hs)
            self._pos[layer_idx] = torch.full((W,), -1, dtype=torch.long, device=k.device)
        buf_k, buf_v, buf_pos = self._k[layer_idx], self._v[layer_idx], self._pos[layer_idx]
        self._len[layer_idx] += T
        if T == 1:  # decoding: overwrite the slot of the key that just left the window
            slot = int(positions[0]) % W
            buf_k[:, :, slot] = k[:, :, 0]
            buf_v[:, :, slot] = v[:, :, 0]
            buf_pos[slot] = positions[0]
            return buf_k, buf_v, buf_pos
        keys = torch.cat([buf_k, k], dim=2)  # (B, nkv, W + T, hs)
        values = torch.cat([buf_v, v], dim=2)
        key_pos = torch.cat([buf_pos, positions])  # (W + T,)
        keep = min(T, W)  # the last `keep` new tokens go into their slots
        slots = positions[-keep:] % W
        buf_k[:, :, slots] = k[:, :, -keep:]
        buf_v[:, :, slots] = v[:, :, -keep:]
        buf_pos[slots] = positions[-keep:]
        return keys, values, key_pos

    def allocated_bytes(self) -> int:
        """Bytes of the key, value and position buffers, all layers (``numel * element_size``)."""
        return sum(t.numel() * t.element_size() for t in self._k + self._v + self._pos if t is not None)


class SlidingWindowAttention(MultiHeadAttention):
    """Causal multi-head attention over the last ``window`` positions.

    The same parameters as :class:`~nlpcurriculum.nn.attention.MultiHeadAttention` (a swap keeps
    a model's state dict loadable) and the same call signature, so it drops into a
    :class:`~nlpcurriculum.nn.block.Block`. With a :class:`RingKVCache` it decodes in memory
    bounded by the window; with a plain :class:`~nlpcurriculum.nn.kv_cache.KVCache` (every key
    kept) or without a cache it masks to the window.

    Args:
        d_model, n_heads, n_kv_heads, bias: as for ``MultiHeadAttention``.
        window: W, keys each query sees (its own included).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, *,
                 window: int, bias: bool = True) -> None:
        super().__init__(d_model, n_heads, n_kv_heads, bias=bias, causal=True)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window

    def heads(self, x: Tensor, position: PositionScheme | None, positions: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Project ``x`` to ``(q, k, v, q_raw, k_raw)``: rotated and unrotated queries and keys.

        Shapes: q and q_raw ``(B, nh, T, hs)``, k, k_raw and v ``(B, nkv, T, hs)``. The unrotated
        ones are what a position-free memory reads and writes (:mod:`.infini`).
        """
        B, T, _ = x.shape
        nh, nkv, hs = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.qkv(x).view(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B, nh+2nkv, T, hs)
        qk_raw, v = qkv.split([nh + nkv, nkv], dim=1)  # (B, nh+nkv, T, hs), (B, nkv, T, hs)
        qk = position.rotate_heads(qk_raw, positions) if position is not None else qk_raw
        q, k = qk.split([nh, nkv], dim=1)
        q_raw, k_raw = qk_raw.split([nh, nkv], dim=1)
        return q, k, v, q_raw, k_raw

    def local(self, q: Tensor, k: Tensor, v: Tensor, q_positions: Tensor, k_positions: Tensor,
              position: PositionScheme | None) -> Tensor:
        """Windowed softmax attention of ``q`` over ``k, v`` given their positions: ``(B, nh, T, hs)``."""
        keep = window_mask(q_positions, k_positions, self.window)  # (T, T_k)
        bias = position.score_bias(q_positions, k_positions) if position is not None else None
        mask: Tensor = keep if bias is None else bias.masked_fill(~keep, float("-inf"))  # (nh|1, T, T_k)
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, T_k, hs)
        if self.fused:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return scaled_dot_product_attention(q, k, v, attn_mask=mask)[0]

    def keys_for(self, k: Tensor, v: Tensor, positions: Tensor, kv_cache, layer_idx: int
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """The keys, values and key positions the new queries attend over, caching the new ones."""
        if isinstance(kv_cache, RingKVCache):
            return kv_cache.update(layer_idx, k, v, positions)
        if isinstance(kv_cache, KVCache):
            k, v = kv_cache.update(layer_idx, k, v)  # every key since position 0
            return k, v, torch.arange(k.size(2), device=k.device)
        return k, v, positions

    def forward(self, x: Tensor, *, position: PositionScheme | None = None,
                positions: Tensor | None = None, attn_mask: Tensor | None = None,
                padding_mask: Tensor | None = None, kv_cache=None, layer_idx: int = 0,
                need_weights: bool = False) -> tuple[Tensor, None]:
        """Attend over the window.

        ``attn_mask`` may only be the causal mask the mini-former passes for a multi-token step
        after cached ones (the window mask implies it); padding masks and returned weights are
        not supported.

        Returns:
            ``(y, None)``: ``(B, T, C)``.
        """
        if padding_mask is not None or need_weights:
            raise ValueError("SlidingWindowAttention supports neither padding masks nor weights")
        if kv_cache is not None and not isinstance(kv_cache, (RingKVCache, KVCache)):
            raise TypeError(f"unsupported cache {type(kv_cache).__name__}")
        B, T, _ = x.shape
        if positions is None:
            start = kv_cache.seq_len(layer_idx) if kv_cache is not None else 0
            positions = torch.arange(start, start + T, device=x.device)
            if position is not None:
                position.ensure_length(start + T)
        q, k, v, _, _ = self.heads(x, position, positions)
        k, v, k_positions = self.keys_for(k, v, positions, kv_cache, layer_idx)
        y = self.local(q, k, v, positions, k_positions, position)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, nh*hs)
        return self.proj(y), None
