"""Infini-attention: the memory's worked example, streaming equals parallel, the gate's limits."""

import pytest
import torch

from nlpcurriculum.longcontext.infini import (InfiniAttention, InfiniCache, memory_retrieve,
                                              memory_update, positive_features)
from nlpcurriculum.longcontext.models import build_long_model, new_cache
from nlpcurriculum.models.miniformer import MiniFormerConfig

TOL = 1e-5


def test_docstring_worked_example_and_the_delta_rule():
    k = torch.full((1, 1, 1, 1), 1.0)  # sigma(1) = ELU(1) + 1 = 2
    v = torch.full((1, 1, 1, 1), 3.0)
    assert positive_features(k).item() == 2.0
    M, z = memory_update(k, v, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1))
    assert M.item() == 6.0 and z.item() == 2.0
    assert memory_retrieve(k, M, z).item() == pytest.approx(3.0)
    M2, z2 = memory_update(k, v, M, z)
    assert M2.item() == pytest.approx(6.0)  # the delta rule writes nothing it already returns
    assert z2.item() == 4.0


def test_an_empty_memory_reads_zero():
    q = torch.randn(2, 3, 5, 4)
    assert memory_retrieve(q, torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4)).abs().max() == 0


def _model(position="rope", W=5, T=23):
    cfg = MiniFormerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, max_seq_len=T, position=position)
    torch.manual_seed(0)
    model = build_long_model(cfg, "infini", W).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.gate.normal_()
    return model


@pytest.mark.parametrize("position", ["rope", "alibi"])
@torch.no_grad()
def test_streaming_equals_parallel(position):
    W, T = 5, 23
    model = _model(position, W, T)
    idx = torch.randint(0, 40, (2, T), generator=torch.Generator().manual_seed(1))
    parallel = model(idx).logits
    cache = new_cache(model, "infini", W)
    steps = [model(idx[:, :3], kv_cache=cache).logits]
    steps += [model(idx[:, t:t + 1], kv_cache=cache).logits for t in range(3, T)]
    assert (torch.cat(steps, 1) - parallel).abs().max() < TOL
    chunks = new_cache(model, "infini", W)  # chunks that cross segment boundaries
    out = [model(idx[:, a:b], kv_cache=chunks).logits for a, b in [(0, 7), (7, 8), (8, 21), (21, 23)]]
    assert (torch.cat(out, 1) - parallel).abs().max() < TOL


@torch.no_grad()
def test_the_gate_closed_is_the_sliding_window_and_the_memory_matters_when_open():
    W, T = 4, 20
    model = _model("rope", W, T)
    cfg = model.config
    torch.manual_seed(0)
    sliding = build_long_model(cfg, "sliding", W).eval()
    sliding.load_state_dict(model.state_dict(), strict=False)
    idx = torch.randint(0, 40, (1, T), generator=torch.Generator().manual_seed(2))
    for block in model.blocks:
        block.attn.gate.fill_(-1e4)  # sigmoid -> 0: local attention only
    assert (model(idx).logits - sliding(idx).logits).abs().max() < TOL
    for block in model.blocks:
        block.attn.gate.fill_(0.0)
    # the first segment has an empty memory, so it differs only from the second segment on
    diff = (model(idx).logits - sliding(idx).logits).abs().amax(-1)[0]  # (T,)
    assert diff[W:].min() > 1e-4


@torch.no_grad()
def test_a_memory_that_forgets_to_write_is_caught():
    """Mutation: no memory update makes the later segments differ from the streaming reference."""
    import nlpcurriculum.longcontext.infini as infini

    W, T = 4, 16
    model = _model("rope", W, T)
    idx = torch.randint(0, 40, (1, T), generator=torch.Generator().manual_seed(3))
    good = model(idx).logits
    original = infini.memory_update
    infini.memory_update = lambda k, v, M, z: (M, z)
    try:
        broken = model(idx).logits
    finally:
        infini.memory_update = original
    assert (good - broken)[:, :W].abs().max() < TOL and (good - broken)[:, W:].abs().max() > 1e-4


@torch.no_grad()
def test_the_decode_state_does_not_grow():
    W = 4
    model = _model("rope", W, 64)
    cache = new_cache(model, "infini", W)
    assert isinstance(cache, InfiniCache)
    sizes = []
    for t in range(48):
        model(torch.tensor([[t % 40]]), kv_cache=cache)
        if (t + 1) % W == 0:  # at a segment boundary the pending segment is empty
            sizes.append(cache.allocated_bytes())
    assert len(set(sizes[1:])) == 1


def test_refuses_other_caches_and_grouped_heads():
    attn = InfiniAttention(16, 2, window=3)
    with pytest.raises(TypeError, match="InfiniCache"):
        attn(torch.zeros(1, 2, 16), kv_cache=object())
    cfg = MiniFormerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=4, n_kv_heads=2)
    with pytest.raises(ValueError, match="n_kv_heads"):
        build_long_model(cfg, "infini", 4)
