"""Block-sparse attention equals dense attention under the same token mask, and skips dead tiles."""

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.nn import tiled_attention as tiled
from nlpcurriculum.nn.sparse_attention import block_layout, block_sparse_attention, live_fraction, token_mask


def test_layouts_have_the_expected_tiles():
    local = block_layout(64, 8, window=1)                                 # 8 x 8 blocks
    assert local.sum().item() == 8 + 2 * 7                               # tridiagonal
    strided = block_layout(64, 8, stride=4)
    assert strided[:, 3].all() and strided[:, 7].all() and not strided[0, 2]
    glob = block_layout(64, 8, n_global=1)
    assert glob[0].all() and glob[:, 0].all() and not glob[3, 5]
    causal = block_layout(64, 8, window=1, causal=True)
    assert not causal.triu(1).any() and causal.diagonal().all()
    assert block_layout(64, 8).all()
    assert live_fraction(block_layout(64, 8, causal=True), causal=True) == 1.0


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pattern", [dict(window=1), dict(stride=3), dict(n_global=1),
                                     dict(window=1, stride=4, n_global=1)])
def test_block_sparse_equals_dense_masked_attention(pattern, causal):
    T, block = 70, 8                                                     # T not a multiple of block
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, T, 8, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    layout = block_layout(T, block, causal=causal, **pattern)
    out = block_sparse_attention(q, k, v, layout, block, causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=token_mask(layout, T, block, causal))
    assert torch.allclose(out, ref, atol=1e-12)
    d_out = torch.randn_like(out)
    for ours, theirs in zip(torch.autograd.grad(out, (q, k, v), d_out),
                            torch.autograd.grad(ref, (q, k, v), d_out)):
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_dead_tiles_are_never_multiplied(monkeypatch):
    """Count the key blocks the kernel visits: exactly the live tiles of the layout."""
    visited = []
    original = tiled._key_blocks

    def spy(*args):
        blocks = original(*args)
        visited.append(len(blocks))
        return blocks

    monkeypatch.setattr(tiled, "_key_blocks", spy)
    layout = block_layout(128, 16, window=1)
    q = torch.randn(1, 1, 128, 4)
    block_sparse_attention(q, q, q, layout, 16)
    assert sum(visited) == int(layout.sum())


def test_a_wrong_layout_shape_is_refused():
    q = torch.randn(1, 1, 32, 4)
    with pytest.raises(ValueError, match="layout must be"):
        block_sparse_attention(q, q, q, torch.ones(3, 3, dtype=torch.bool), 8)
