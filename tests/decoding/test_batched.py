"""Batched cached greedy decoding: equal to the uncached forward pass and to batch-1 decoding."""

import pytest
import torch

from nlpcurriculum.decoding.batched import greedy_batched, teacher_forced_argmax, timed_greedy_batched
from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.experiments.grouped_query_attention import kv_formula_bytes
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_batched_cached_decode_equals_uncached_and_batch_one(n_kv):
    torch.manual_seed(0)
    cfg = MiniFormerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv,
                           max_seq_len=32, position="rope")
    model = build_model(cfg).eval()
    prompts = torch.randint(0, 64, (5, 7))
    run = greedy_batched(model, prompts, 6, keep_logits=True)
    assert run.tokens.shape == (5, 6) and run.logits.shape == (5, 6, 64)
    argmax, logits = teacher_forced_argmax(model, prompts, run.tokens)
    assert torch.equal(argmax, run.tokens)
    assert torch.allclose(logits, run.logits, atol=1e-5)
    for b in (0, 3):
        assert greedy_cached(model, prompts[b].tolist(), 6) == run.tokens[b].tolist()
    # the cache holds prompt + 5 fed-back tokens (the last new one is never fed)
    assert run.cache_bytes == kv_formula_bytes(cfg, 5, 7 + 5)


def test_bad_arguments():
    model = build_model(MiniFormerConfig(vocab_size=16, d_model=8, n_layers=1, n_heads=2, max_seq_len=8))
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_batched(model, torch.zeros(2, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="prompts"):
        greedy_batched(model, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="repeats"):
        timed_greedy_batched(model, torch.zeros(2, 3, dtype=torch.long), 2, 0)
