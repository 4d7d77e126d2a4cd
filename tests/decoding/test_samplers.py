"""Samplers: parity with transformers' logits processors, properties, cached sampling."""

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from nlpcurriculum.decoding.samplers import (
    SamplerConfig,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    next_token_distribution,
    process_logits,
    sample,
)
from nlpcurriculum.metrics.stats import entropy
from nlpcurriculum.models import build_model, llama_like


def _random(seed, B=6, V=300, T=12, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, V, generator=g) * scale
    ids = torch.randint(0, V, (B, T), generator=g)
    return ids, scores


def assert_same(ours, ref):
    """Identical masks and identical finite scores."""
    assert torch.equal(torch.isfinite(ours), torch.isfinite(ref))
    keep = torch.isfinite(ref)
    assert torch.equal(ours[keep], ref[keep])


@pytest.mark.parametrize("seed", range(5))
def test_each_processor_matches_transformers(seed):
    ids, scores = _random(seed)
    assert_same(apply_temperature(scores, 0.7), TemperatureLogitsWarper(0.7)(ids, scores.clone()))
    assert_same(apply_repetition_penalty(scores, ids, 1.3), RepetitionPenaltyLogitsProcessor(1.3)(ids, scores.clone()))
    for k, keep in [(1, 1), (10, 1), (3, 5), (1000, 1)]:
        assert_same(apply_top_k(scores, k, keep), TopKLogitsWarper(k, min_tokens_to_keep=keep)(ids, scores.clone()))
    for p, keep in [(0.05, 1), (0.5, 1), (0.9, 1), (0.99, 1), (0.3, 4)]:
        assert_same(apply_top_p(scores, p, keep), TopPLogitsWarper(p, min_tokens_to_keep=keep)(ids, scores.clone()))
    for m, keep in [(0.01, 1), (0.1, 1), (0.5, 1), (1.0, 1), (0.5, 3)]:
        assert_same(apply_min_p(scores, m, keep), MinPLogitsWarper(m, min_tokens_to_keep=keep)(ids, scores.clone()))


@pytest.mark.parametrize("seed", range(4))
def test_whole_chain_matches_transformers_in_generate_order(seed):
    ids, scores = _random(seed + 10)
    cfg = SamplerConfig(temperature=0.8, top_k=50, top_p=0.9, min_p=0.05, repetition_penalty=1.2)
    ref = LogitsProcessorList([
        RepetitionPenaltyLogitsProcessor(1.2), TemperatureLogitsWarper(0.8), TopKLogitsWarper(50),
        TopPLogitsWarper(0.9), MinPLogitsWarper(0.05),
    ])(ids, scores.clone())
    assert_same(process_logits(scores, ids, cfg), ref)


def test_config_errors_name_the_field():
    for kwargs, field in [({"temperature": -0.1}, "temperature"), ({"top_k": -1}, "top_k"),
                          ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"min_p": 1.2}, "min_p"),
                          ({"repetition_penalty": 0}, "repetition_penalty"), ({"top_k": 2.5}, "top_k"),
                          ({"min_tokens_to_keep": 0}, "min_tokens_to_keep"),
                          ({"temperature": float("nan")}, "temperature")]:
        with pytest.raises(ValueError, match=field):
            SamplerConfig(**kwargs)


def test_properties_of_the_filters():
    _, scores = _random(3, B=4, V=200)
    probs = scores.softmax(-1)
    # top-p: the kept set is the smallest prefix (by probability) with mass >= p.
    for p in (0.3, 0.8):
        kept = torch.isfinite(apply_top_p(scores, p))
        for row in range(4):
            sp, _ = probs[row][kept[row]].sort(descending=True)
            assert sp.sum() >= p - 1e-6 and sp.sum() - sp[-1] < p
    # min-p: exactly the ids with p >= min_p * max p.
    kept = torch.isfinite(apply_min_p(scores, 0.2))
    assert torch.equal(kept, probs >= 0.2 * probs.max(-1, keepdim=True).values)
    # top-k keeps k (no ties in random scores); temperature 0 is a one-hot on the arg-max.
    assert (torch.isfinite(apply_top_k(scores, 7)).sum(-1) == 7).all()
    dist = next_token_distribution(scores, None, SamplerConfig(temperature=0))
    assert torch.equal(dist.argmax(-1), scores.argmax(-1)) and torch.allclose(dist.sum(-1), torch.ones(4))
    assert torch.allclose(entropy(dist), torch.zeros(4))
    # sharper with lower temperature
    h = [entropy(next_token_distribution(scores, None, SamplerConfig(temperature=t))).mean() for t in (0.5, 1, 2)]
    assert h[0] < h[1] < h[2]
    # the repetition penalty lowers the probability of every id already seen
    ids = torch.tensor([[5, 9, 9]] * 4)
    pen = next_token_distribution(scores, ids, SamplerConfig(repetition_penalty=2.0))
    assert (pen[:, [5, 9]] < probs[:, [5, 9]]).all()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(llama_like("tiny", vocab_size=50, max_seq_len=40, n_layers=2)).eval()


def test_cached_sampling_matches_uncached_step_distributions(model):
    cfg = SamplerConfig(temperature=0.9, top_k=20, top_p=0.95, repetition_penalty=1.1)
    out = sample(model, [[1, 2, 3], [4, 5, 6]], 8, cfg, n_samples=3,
                 generator=torch.Generator().manual_seed(0), keep_distributions=True)
    assert len(out.tokens) == 6 and all(len(t) == 8 for t in out.tokens)
    prompts = [[1, 2, 3]] * 3 + [[4, 5, 6]] * 3
    for b in range(6):  # recompute every step's distribution without the cache
        seq = torch.tensor([prompts[b] + out.tokens[b]])
        for s in range(8):
            ctx = seq[:, : 3 + s]
            ref = next_token_distribution(model(ctx).logits[:, -1], ctx, cfg)
            assert torch.allclose(out.sampled_probs[b, s], ref[0], atol=1e-5)
            assert out.sampled_probs[b, s, out.tokens[b][s]] > 0
    assert torch.allclose(out.sampled_probs.sum(-1), torch.ones(6, 8), atol=1e-5)


def test_sampling_is_seeded_and_greedy_is_argmax(model):
    from nlpcurriculum.decoding.kv_decode import greedy_cached

    cfg = SamplerConfig(temperature=1.0)
    a = sample(model, [1, 2], 10, cfg, n_samples=4, generator=torch.Generator().manual_seed(1)).tokens
    b = sample(model, [1, 2], 10, cfg, n_samples=4, generator=torch.Generator().manual_seed(1)).tokens
    assert a == b and len({tuple(t) for t in a}) > 1
    g = sample(model, [1, 2], 10, SamplerConfig(temperature=0), n_samples=2)
    assert g.tokens[0] == g.tokens[1] == greedy_cached(model, [1, 2], 10)
    assert float(g.entropy_sampled.abs().max()) == 0.0 and (g.kept == 1).all()


def test_sample_errors(model):
    with pytest.raises(ValueError, match="max_seq_len"):
        sample(model, [1] * 30, 20, SamplerConfig())
    with pytest.raises(ValueError, match="same length"):
        sample(model, [[1, 2], [3]], 2, SamplerConfig())
    import numpy as np

    assert sample(model, np.array([1, 2], dtype=np.int32), 3, SamplerConfig(temperature=0)).tokens == \
        sample(model, torch.tensor([[1, 2]]), 3, SamplerConfig(temperature=0)).tokens
    with pytest.raises(ValueError, match="n_samples"):
        sample(model, [1], 2, SamplerConfig(), n_samples=0)


def test_stop_id_cuts_rows(model):
    out = sample(model, [1, 2], 12, SamplerConfig(temperature=0))
    stop = out.tokens[0][3]
    cut = sample(model, [1, 2], 12, SamplerConfig(temperature=0), stop_id=stop).tokens[0]
    assert cut[-1] == stop and stop not in cut[:-1]
