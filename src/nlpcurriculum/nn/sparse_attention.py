"""Block-sparse attention patterns: local windows, strided blocks and global tokens.

Full attention lets every query see every key: ``T^2`` scores. Sparse Transformers (Child et al.
2019, arXiv:1904.10509), Longformer (Beltagy et al. 2020, arXiv:2004.05150) and BigBird (Zaheer
et al. 2020, arXiv:2007.14062) keep a pattern of ``O(T)`` of them instead:

* **local**: each query sees the keys within a window around it (here: ``window`` blocks on each
  side, its own block included), so information travels ``window`` blocks per layer;
* **strided**: each query also sees every ``stride``-th block, a sparse long-range path;
* **global**: the first ``n_global`` blocks see everything and are seen by everyone, a hub
  through which any two positions connect in two hops.

The pattern is a *block layout*, ``(n_blocks, n_blocks)`` booleans over tiles of ``block x block``
tokens, so that the computation skips whole tiles: :func:`~nlpcurriculum.nn.tiled_attention.tiled_attention`
with ``layout=`` never multiplies a dead tile, and its time grows with the live tiles, not with
``T^2``. :func:`token_mask` expands a layout to the token-level mask a dense reference applies
(multiply everything, then mask), which must give the same numbers.

Left out: patterns that are sparse inside a tile (Longformer's per-token dilations), and
random blocks (BigBird's third component).
"""

from __future__ import annotations

import math

import torch

from nlpcurriculum.nn.tiled_attention import tiled_attention

__all__ = ["block_layout", "block_sparse_attention", "live_fraction", "token_mask"]


def block_layout(seq_len: int, block: int, *, window: int | None = None, stride: int | None = None,
                 n_global: int = 0, causal: bool = False) -> torch.Tensor:
    """The union of the chosen patterns as ``(n_blocks, n_blocks)`` booleans (row = query block).

    Args:
        seq_len: tokens ``T``.
        block: tokens per tile.
        window: local pattern: query block ``i`` sees key blocks ``j`` with ``|i - j| <= window``.
        stride: strided pattern: query block ``i`` sees key blocks ``j`` with
            ``j % stride == stride - 1`` (the last block of each stride, as in Sparse
            Transformers' fixed pattern).
        n_global: the first ``n_global`` blocks see and are seen by every block.
        causal: drop key blocks after the query block (tokens inside the diagonal tile are
            masked by the kernel).

    With no pattern chosen the layout is dense (every tile live).
    """
    if seq_len < 1 or block < 1:
        raise ValueError(f"seq_len and block must be >= 1, got {seq_len}, {block}")
    n = math.ceil(seq_len / block)
    i = torch.arange(n)[:, None]                                          # (n, 1) query blocks
    j = torch.arange(n)[None, :]                                          # (1, n) key blocks
    if window is None and stride is None and n_global == 0:
        layout = torch.ones(n, n, dtype=torch.bool)
    else:
        layout = torch.zeros(n, n, dtype=torch.bool)
        if window is not None:
            layout |= (i - j).abs() <= window
        if stride is not None:
            if stride < 1:
                raise ValueError(f"stride must be >= 1, got {stride}")
            layout |= (j % stride == stride - 1).expand(n, n)
        if n_global:
            layout |= (i < n_global) | (j < n_global)
        layout |= i == j  # every query sees its own block: no row without keys
    if causal:
        layout &= j <= i
    return layout


def live_fraction(layout: torch.Tensor, causal: bool = False) -> float:
    """Share of the tiles that dense attention computes (all, or the lower triangle if causal)
    that the layout keeps live."""
    n = layout.shape[0]
    total = n * (n + 1) // 2 if causal else n * n
    return float(layout.sum()) / total


def token_mask(layout: torch.Tensor, seq_len: int, block: int, causal: bool = False) -> torch.Tensor:
    """The ``(T, T)`` token mask (True = attend) of a block layout, for a dense masked reference."""
    idx = torch.arange(seq_len) // block
    mask = layout[idx[:, None], idx[None, :]]
    if causal:
        mask &= torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    return mask


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: torch.Tensor,
                           block: int, causal: bool = False) -> torch.Tensor:
    """Attention over the live tiles of ``layout`` only: ``(..., T, d)`` in, ``(..., T, d)`` out."""
    return tiled_attention(q, k, v, causal=causal, block=block, layout=layout)
