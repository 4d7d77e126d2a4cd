"""Infini-attention: sliding-window attention plus a compressive memory of what left the window.

Munkhdalai, Faruqui & Gopal 2024, "Leave No Context Behind: Efficient Infinite Context
Transformers with Infini-attention", arXiv:2404.07143. Each head keeps, besides its local softmax
attention, a **linear-attention memory** (Katharopoulos et al. 2020, arXiv:2006.16236): a matrix
``M`` (``hs x hs``) and a normaliser ``z`` (``hs``) that summarise every key-value pair written so
far in constant space. With ``sigma(x) = ELU(x) + 1`` (positive features):

    retrieve   A_mem = sigma(Q) M / (sigma(Q) z)
    update     M <- M + sigma(K)^T (V - sigma(K) M / (sigma(K) z))      (the delta rule)
               z <- z + sum_t sigma(K_t)
    mix        A = g * A_mem + (1 - g) * A_local,     g = sigmoid(beta_h), one learned beta per head

The delta rule writes only what the memory does not already return for a key (``V`` minus the
current retrieval), so writing the same pair twice does not double it (Schlag et al. 2021,
arXiv:2102.11174). Memory is read and written with the *unrotated* queries and keys: it is
addressed by content, not by position.

Segments: the sequence is cut into segments of ``W`` tokens (the window). A token of segment
``s`` reads the memory of segments ``0 .. s - 1`` and attends locally over its window of ``W``
keys; segment ``s`` is written into memory once it is complete. Every key at or before ``i - W``
lies in an earlier segment, so local attention plus memory together cover the whole past (keys of
segment ``s - 1`` inside the window are seen both ways). The paper's local attention is within
the segment; here it is the sliding window, so that the control (the same model, no memory) is
exactly :class:`~nlpcurriculum.longcontext.sliding_window.SlidingWindowAttention`.

Two equal forms (tested): the parallel one (:meth:`InfiniAttention.forward` without a cache:
a loop over segments for the memory, one banded attention for the local part) for training, and
the streaming one with an :class:`InfiniCache` (a ring of ``W`` keys, ``M``, ``z`` and the raw
keys/values of the unfinished segment) for decoding in memory that does not grow with the
position.

Worked example (one head, ``hs = 1``, ``sigma(k) = 2``, ``v = 3``, empty memory): the retrieval
for the key is 0 (``M = 0``), so the update writes ``M = 2 * 3 = 6``, ``z = 2``; a query with
``sigma(q) = 2`` then reads ``2 * 6 / (2 * 2) = 3``, the stored value. Writing the same pair
again adds ``2 * (3 - 2 * 6 / 4) = 0``: the delta rule leaves it unchanged.

Dimension legend: B batch, T tokens, W window (= segment length), nh heads (nkv = nh here), hs
head size, C = d_model.

Left out: the paper's "linear" (non-delta) update variant as an option, per-channel gates,
grouped-query heads for the memory (``n_kv_heads`` must equal ``n_heads``), and the paper's
1M-token passkey and 500k-token book-summary scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.longcontext.sliding_window import RingKVCache, SlidingWindowAttention
from nlpcurriculum.nn.positional import PositionScheme

__all__ = ["InfiniAttention", "InfiniCache", "memory_retrieve", "memory_update", "positive_features"]

EPS = 1e-6  # the normaliser of an empty memory is 0: retrieval then reads 0 / EPS = 0


def positive_features(x: Tensor) -> Tensor:
    """``sigma(x) = ELU(x) + 1``, elementwise positive."""
    return F.elu(x) + 1.0


def memory_retrieve(q: Tensor, M: Tensor, z: Tensor) -> Tensor:
    """``sigma(q) M / (sigma(q) z)``.

    Args:
        q: queries, ``(B, nh, T, hs)``.
        M: memory, ``(B, nh, hs, hs)``.
        z: normaliser, ``(B, nh, hs)``.

    Returns:
        ``(B, nh, T, hs)``.
    """
    sq = positive_features(q)
    return (sq @ M) / ((sq @ z[..., None]).clamp_min(EPS))  # (B,nh,T,hs) / (B,nh,T,1)


def memory_update(k: Tensor, v: Tensor, M: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """One segment written with the delta rule: ``(M', z')``.

    Args:
        k, v: the segment's keys and values, ``(B, nh, T, hs)``.
        M, z: the memory before, ``(B, nh, hs, hs)`` and ``(B, nh, hs)``.
    """
    sk = positive_features(k)
    already = (sk @ M) / ((sk @ z[..., None]).clamp_min(EPS))  # (B, nh, T, hs): what M returns now
    M = M + sk.transpose(-2, -1) @ (v - already)  # (B, nh, hs, T) @ (B, nh, T, hs)
    return M, z + sk.sum(dim=2)


class InfiniCache(RingKVCache):
    """The decode state of Infini-attention: the ring of the last ``window`` keys and values,
    and per layer the memory ``M``, ``z`` and the raw keys/values of the unfinished segment.
    Its size does not depend on the position."""

    def __init__(self, n_layers: int, window: int) -> None:
        super().__init__(n_layers, window)
        self.M: list[Tensor | None] = [None] * n_layers  # (B, nh, hs, hs)
        self.z: list[Tensor | None] = [None] * n_layers  # (B, nh, hs)
        self.pending_k: list[list[Tensor]] = [[] for _ in range(n_layers)]  # (B, nh, t, hs) pieces
        self.pending_v: list[list[Tensor]] = [[] for _ in range(n_layers)]

    def memory(self, layer_idx: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(M, z)`` of a layer, zeros before the first write; ``like`` gives B, nh, hs."""
        if self.M[layer_idx] is None:
            B, nh, _, hs = like.shape
            self.M[layer_idx] = like.new_zeros(B, nh, hs, hs)
            self.z[layer_idx] = like.new_zeros(B, nh, hs)
        return self.M[layer_idx], self.z[layer_idx]

    def write(self, layer_idx: int, k_raw: Tensor, v: Tensor, end_position: int) -> None:
        """Queue a piece of the current segment; fold the segment into memory once complete.

        ``end_position`` is one past the piece's last position; pieces never cross a segment
        boundary (:meth:`InfiniAttention.forward` splits them).
        """
        self.pending_k[layer_idx].append(k_raw)
        self.pending_v[layer_idx].append(v)
        if end_position % self.window == 0:
            k_seg = torch.cat(self.pending_k[layer_idx], dim=2)  # (B, nh, W, hs)
            v_seg = torch.cat(self.pending_v[layer_idx], dim=2)
            M, z = self.memory(layer_idx, k_seg)
            self.M[layer_idx], self.z[layer_idx] = memory_update(k_seg, v_seg, M, z)
            self.pending_k[layer_idx], self.pending_v[layer_idx] = [], []

    def allocated_bytes(self) -> int:
        """Ring, memory and pending-segment bytes, all layers."""
        tensors = [t for t in self.M + self.z if t is not None]
        tensors += [t for pieces in self.pending_k + self.pending_v for t in pieces]
        return super().allocated_bytes() + sum(t.numel() * t.element_size() for t in tensors)


class InfiniAttention(SlidingWindowAttention):
    """Sliding-window attention plus a gated compressive memory (see the module docstring).

    Args:
        d_model, n_heads, bias: as for ``MultiHeadAttention`` (key/value heads = query heads).
        window: W, the local window and the memory's segment length.
        gate_init: initial ``beta`` of every head (``sigmoid(0) = 0.5``: half memory, half local).
    """

    def __init__(self, d_model: int, n_heads: int, *, window: int, bias: bool = True,
                 gate_init: float = 0.0) -> None:
        super().__init__(d_model, n_heads, None, window=window, bias=bias)
        self.gate = nn.Parameter(torch.full((n_heads,), float(gate_init)))  # beta, one per head

    def mix(self, local: Tensor, retrieved: Tensor) -> Tensor:
        """``g * retrieved + (1 - g) * local`` per head: ``(B, nh, T, hs)``."""
        g = torch.sigmoid(self.gate)[None, :, None, None]  # (1, nh, 1, 1)
        return g * retrieved + (1 - g) * local

    def parallel_memory(self, q_raw: Tensor, k_raw: Tensor, v: Tensor, start: int) -> Tensor:
        """The memory read of every token of a fresh sequence starting at ``start = 0``, segment
        by segment: ``(B, nh, T, hs)``."""
        if start != 0:
            raise ValueError("the parallel form starts a sequence at position 0; decode with an InfiniCache")
        B, nh, T, hs = q_raw.shape
        W = self.window
        M, z = q_raw.new_zeros(B, nh, hs, hs), q_raw.new_zeros(B, nh, hs)
        reads = []
        for s in range(0, T, W):  # segment [s, s + W): read the memory of earlier segments, then write
            reads.append(memory_retrieve(q_raw[:, :, s:s + W], M, z))
            if s + W <= T:
                M, z = memory_update(k_raw[:, :, s:s + W], v[:, :, s:s + W], M, z)
        return torch.cat(reads, dim=2)  # (B, nh, T, hs)

    def forward(self, x: Tensor, *, position: PositionScheme | None = None,
                positions: Tensor | None = None, attn_mask: Tensor | None = None,
                padding_mask: Tensor | None = None, kv_cache=None, layer_idx: int = 0,
                need_weights: bool = False) -> tuple[Tensor, None]:
        """Attend locally, read the memory, mix by the gate.

        Without a cache the input is a whole sequence from position 0 (parallel form); with an
        :class:`InfiniCache` it continues the cached one (streaming form). ``attn_mask`` as for
        :class:`SlidingWindowAttention`.

        Returns:
            ``(y, None)``: ``(B, T, C)``.
        """
        if padding_mask is not None or need_weights:
            raise ValueError("InfiniAttention supports neither padding masks nor weights")
        if kv_cache is not None and not isinstance(kv_cache, InfiniCache):
            raise TypeError(f"InfiniAttention decodes with an InfiniCache, got {type(kv_cache).__name__}")
        B, T, _ = x.shape
        start = kv_cache.seq_len(layer_idx) if kv_cache is not None else 0
        if positions is None:
            positions = torch.arange(start, start + T, device=x.device)
            if position is not None:
                position.ensure_length(start + T)
        q, k, v, q_raw, k_raw = self.heads(x, position, positions)
        if kv_cache is None:
            local = self.local(q, k, v, positions, positions, position)
            y = self.mix(local, self.parallel_memory(q_raw, k_raw, v, start))
        else:
            pieces, W = [], self.window
            a = 0
            while a < T:  # pieces that end at a segment boundary or at the end of the input
                b = min(T, a + W - (start + a) % W)
                ks, vs, kpos = kv_cache.update(layer_idx, k[:, :, a:b], v[:, :, a:b], positions[a:b])
                local = self.local(q[:, :, a:b], ks, vs, positions[a:b], kpos, position)
                M, z = kv_cache.memory(layer_idx, q_raw)
                pieces.append(self.mix(local, memory_retrieve(q_raw[:, :, a:b], M, z)))
                kv_cache.write(layer_idx, k_raw[:, :, a:b], v[:, :, a:b], start + b)
                a = b
            y = torch.cat(pieces, dim=2)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, nh*hs)
        return self.proj(y), None
