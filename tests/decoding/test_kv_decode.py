"""Greedy decoding with and without the KV cache, and the cache trace."""

import pytest
import torch

from nlpcurriculum.decoding.kv_decode import CacheStep, greedy_cached, greedy_no_cache
from nlpcurriculum.models import MiniFormerConfig, build_model, llama_like


def tiny(position: str = "rope", **kw):
    torch.manual_seed(0)
    if position == "rope":
        cfg = llama_like("tiny", vocab_size=50, max_seq_len=16, **kw)
    else:
        cfg = MiniFormerConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=32,
                               position=position, **kw)
    return build_model(cfg).eval()


@pytest.mark.parametrize("position,kv_heads", [("rope", None), ("rope", 1), ("learned", None)])
def test_cached_greedy_equals_full_recompute(position, kv_heads):
    model = tiny(position, n_kv_heads=kv_heads)
    prompt = [3, 1, 4, 1, 5]
    assert greedy_cached(model, prompt, 12) == greedy_no_cache(model, prompt, 12)


def test_cached_greedy_matches_beyond_max_seq_len_with_rope():
    # 5 + 20 > max_seq_len 16: both paths extrapolate RoPE positions the same way.
    model = tiny("rope")
    assert greedy_cached(model, [7, 8, 9, 10, 11], 20) == greedy_no_cache(model, [7, 8, 9, 10, 11], 20)


def test_trace_records_prefill_then_one_miss_per_step():
    model = tiny()
    trace: list[CacheStep] = []
    new = greedy_cached(model, [1, 2, 3], 4, trace=trace)
    assert [(s.hits, s.misses) for s in trace] == [(0, 3), (3, 1), (4, 1), (5, 1)]
    assert [s.token for s in trace] == new


def test_bad_arguments_raise():
    model = tiny()
    with pytest.raises(ValueError, match="prompt"):
        greedy_cached(model, [], 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_no_cache(model, [1], 0)


@torch.inference_mode()
def test_last_position_head_gives_the_last_logits_only_and_is_put_back():
    from nlpcurriculum.decoding.kv_decode import last_position_head, no_cache_logits

    model = tiny()
    ids = torch.tensor([[4, 2, 7, 1, 9]])  # (1, 5)
    full = model(ids).logits  # (1, 5, 50): the head on every position
    head = model.lm_head
    with last_position_head(model):
        out = model(ids).logits
        last = no_cache_logits(model, ids)
    assert out.shape == (1, 1, 50)  # the fair baseline computes one row of the head, not five
    assert torch.allclose(last, full[0, -1], atol=1e-5)
    assert model.lm_head is head
