"""Sliding-window attention and the ring buffer against the stock model with a dense band mask."""

import pytest
import torch

from nlpcurriculum.longcontext.models import build_long_model, new_cache
from nlpcurriculum.longcontext.sliding_window import RingKVCache, SlidingWindowAttention, window_mask
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.nn.kv_cache import KVCache

TOL = 1e-5  # fp32: the same products, keys in another order


def test_window_mask_worked_example():
    m = window_mask(torch.arange(3), torch.arange(3), 2)
    assert m.int().tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    empty_slot = window_mask(torch.tensor([5]), torch.tensor([-1, 5]), 10)
    assert empty_slot.tolist() == [[False, True]]


def test_ring_docstring_example_keeps_the_last_window():
    cache = RingKVCache(n_layers=1, window=2)
    for p in range(3):
        k = v = torch.full((1, 1, 1, 4), float(p))
        keys, _, pos = cache.update(0, k, v, torch.tensor([p]))
    assert pos.tolist() == [2, 1] and cache.seq_len() == 3
    assert keys[0, 0, :, 0].tolist() == [2.0, 1.0]


def _pair(position: str, W: int, T: int, n_kv_heads=None):
    cfg = MiniFormerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads,
                           max_seq_len=T, position=position)
    torch.manual_seed(0)
    reference = build_model(cfg).eval()
    model = build_long_model(cfg, "sliding", W).eval()
    model.load_state_dict(reference.state_dict())
    return reference, model


@pytest.mark.parametrize("position", ["rope", "alibi", "none", "sinusoidal"])
@torch.no_grad()
def test_every_path_equals_the_dense_band_masked_reference(position):
    W, T = 5, 23
    reference, model = _pair(position, W, T)
    idx = torch.randint(0, 40, (2, T), generator=torch.Generator().manual_seed(1))
    dense = reference(idx, attn_mask=window_mask(torch.arange(T), torch.arange(T), W)).logits
    assert (model(idx).logits - dense).abs().max() < TOL  # parallel, no cache
    ring = new_cache(model, "sliding", W)
    steps = [model(idx[:, :3], kv_cache=ring).logits]  # a prefill, then one token at a time past W
    steps += [model(idx[:, t:t + 1], kv_cache=ring).logits for t in range(3, T)]
    assert (torch.cat(steps, 1) - dense).abs().max() < TOL
    chunks = new_cache(model, "sliding", W)  # chunks shorter and longer than the window
    out = [model(idx[:, a:b], kv_cache=chunks).logits for a, b in [(0, 4), (4, 11), (11, 12), (12, 23)]]
    assert (torch.cat(out, 1) - dense).abs().max() < TOL
    full = KVCache(2)  # every key kept, masked to the window
    out = [model(idx[:, :6], kv_cache=full).logits] + [model(idx[:, t:t + 1], kv_cache=full).logits
                                                         for t in range(6, T)]
    assert (torch.cat(out, 1) - dense).abs().max() < TOL


@torch.no_grad()
def test_grouped_query_heads_and_the_by_hand_path_agree():
    W, T = 4, 12
    reference, model = _pair("rope", W, T, n_kv_heads=2)
    idx = torch.randint(0, 40, (1, T), generator=torch.Generator().manual_seed(2))
    dense = reference(idx, attn_mask=window_mask(torch.arange(T), torch.arange(T), W)).logits
    for block in model.blocks:
        block.attn.fused = False
    ring = new_cache(model, "sliding", W)
    out = torch.cat([model(idx[:, t:t + 1], kv_cache=ring).logits for t in range(T)], 1)
    assert (out - dense).abs().max() < TOL


@torch.no_grad()
def test_a_window_as_long_as_the_input_is_full_causal_attention():
    T = 10
    reference, model = _pair("rope", T, T)
    idx = torch.randint(0, 40, (2, T), generator=torch.Generator().manual_seed(3))
    assert (model(idx).logits - reference(idx).logits).abs().max() < TOL


@torch.no_grad()
def test_a_wrong_window_mask_is_caught():
    """Mutation: a window one too wide differs from the reference once the input passes it."""
    W, T = 4, 12
    reference, model = _pair("rope", W, T)
    idx = torch.randint(0, 40, (1, T), generator=torch.Generator().manual_seed(4))
    dense = reference(idx, attn_mask=window_mask(torch.arange(T), torch.arange(T), W)).logits
    for block in model.blocks:
        block.attn.window = W + 1
    assert (model(idx).logits - dense).abs().max() > 1e-3


@torch.no_grad()
def test_ring_memory_is_bounded_by_the_window():
    W = 4
    _, model = _pair("rope", W, 40)
    ring = new_cache(model, "sliding", W)
    sizes = []
    for t in range(40):
        model(torch.tensor([[t % 40]]), kv_cache=ring)
        sizes.append(ring.allocated_bytes())
    assert len(set(sizes)) == 1 and ring.seq_len() == 40
    # 2 layers x (keys + values) x (1, 4, W, 8) fp32 + W int64 positions per layer
    assert sizes[0] == 2 * (2 * 4 * W * 8 * 4 + W * 8)


def test_refuses_what_it_does_not_support():
    attn = SlidingWindowAttention(16, 2, window=3)
    x = torch.zeros(1, 4, 16)
    with pytest.raises(ValueError, match="padding"):
        attn(x, padding_mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="unsupported cache"):
        attn(x, kv_cache=object())
    with pytest.raises(ValueError, match="window"):
        SlidingWindowAttention(16, 2, window=0)
