"""Speculative decoding: cache roll-back, the acceptance rule, greedy identity, exact sampling,
the cost formula, and one tiny run of the stage's experiment."""

import itertools
import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.decoding.spec_experiments import (
    SpeculativeConfig,
    bigram_draft,
    distill_loss,
    exactness_check,
    kl_to_target,
    run_speculative,
)
from nlpcurriculum.decoding.speculative import (
    SpecStats,
    accept_block,
    acceptance_rate_from_tokens_per_call,
    autoregressive,
    expected_speedup,
    expected_tokens_per_call,
    speculative_generate,
)
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.models.bigram import BigramLM
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import TrainerConfig


def lm(seed: int, vocab: int = 50, layers: int = 2, init_std: float = 0.02, **kw):
    torch.manual_seed(seed)
    cfg = llama_like("tiny", vocab_size=vocab, max_seq_len=32, n_layers=layers, init_std=init_std, **kw)
    return build_model(cfg).eval()


# --- KVCache.crop ------------------------------------------------------------------------------


def test_crop_rolls_back_to_the_same_logits_as_a_fresh_cache():
    model = lm(0)
    a, b, c = [1, 2, 3, 4], [5, 6, 7], [8, 9]
    cache = KVCache(len(model.blocks))
    with torch.no_grad():
        model(torch.tensor([a + b]), kv_cache=cache)
        cache.crop(len(a))
        assert cache.seq_len(0) == len(a) and cache.seq_len(1) == len(a)
        rolled = model(torch.tensor([c]), kv_cache=cache).logits
        fresh = model(torch.tensor([a + c])).logits[:, len(a):]
    torch.testing.assert_close(rolled, fresh, rtol=1e-5, atol=1e-5)


def test_crop_past_the_end_is_a_no_op_and_negative_is_an_error():
    cache = KVCache(2)
    k = torch.zeros(1, 2, 3, 4)
    cache.update(0, k, k)
    cache.crop(10)
    assert cache.seq_len(0) == 3 and cache.seq_len(1) == 0
    with pytest.raises(ValueError, match="length"):
        cache.crop(-1)


# --- the rule ----------------------------------------------------------------------------------


def test_accept_block_with_one_hot_distributions_is_greedy_matching():
    V = 5
    target_best = torch.tensor([[2, 4, 1, 3]])  # (B=1, G+1=4)
    drafted = torch.tensor([[2, 4, 0]])  # matches twice, then differs
    p = F.one_hot(target_best, V).double()
    q = F.one_hot(drafted, V).double()
    n, nxt = accept_block(p, q, drafted, torch.Generator().manual_seed(0))
    assert n.tolist() == [2] and nxt.tolist() == [1]
    n, nxt = accept_block(p, F.one_hot(target_best[:, :3], V).double(), target_best[:, :3])
    assert n.tolist() == [3] and nxt.tolist() == [3]  # all accepted: the bonus token


def test_accept_block_equal_distributions_accept_everything_and_zero_p_rejects():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(64, 4, 7, generator=gen), -1)
    drafted = torch.multinomial(p[:, :3].reshape(-1, 7), 1, generator=gen).view(64, 3)
    n, _ = accept_block(p, p[:, :3], drafted, gen)
    assert (n == 3).all()
    # the target gives the drafted token probability 0: always rejected, never re-emitted
    p0 = p.clone()
    p0[:, 0, 0] = 0.0
    p0[:, 0] /= p0[:, 0].sum(-1, keepdim=True)
    d0 = torch.zeros(64, 3, dtype=torch.long)
    n, nxt = accept_block(p0, p[:, :3], d0, gen)
    assert (n == 0).all() and (nxt != 0).all()


def test_accept_block_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        accept_block(torch.ones(1, 3, 4), torch.ones(1, 3, 4), torch.zeros(1, 2, dtype=torch.long))


# --- greedy: identical output ------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1, 2, 3, 5])
def test_greedy_speculative_equals_target_greedy(gamma):
    target = lm(0, init_std=0.3)  # peaky enough that drafts are sometimes right, sometimes wrong
    draft = lm(1, layers=1, init_std=0.3)
    prompt = [3, 1, 4, 1, 5]
    stats = SpecStats(gamma)
    out = speculative_generate(target, draft, prompt, 20, gamma, stats=stats)
    assert out == greedy_cached(target, prompt, 20)
    assert stats.tokens == 20 and len(stats.accepted) == stats.target_calls


def test_greedy_with_the_target_as_its_own_draft_accepts_everything():
    # every call accepts all gamma tokens: exercises the bonus token and the draft's catch-up
    target = lm(0, init_std=0.3)
    stats = SpecStats(3)
    out = speculative_generate(target, target, [7, 8], 18, 3, stats=stats)
    assert out == greedy_cached(target, [7, 8], 18)
    assert stats.acceptance_rate == 1.0
    assert stats.proposed == [3, 3, 3, 3, 1] and stats.accepted == stats.proposed


def test_greedy_with_a_cacheless_bigram_draft():
    target = lm(0, init_std=0.3)
    torch.manual_seed(2)
    draft = BigramLM(50)
    draft.table.weight.data.normal_()
    assert speculative_generate(target, draft, [1, 2, 3], 15, 4) == greedy_cached(target, [1, 2, 3], 15)


def test_errors_name_the_problem():
    target, draft = lm(0), lm(1, vocab=40)
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_generate(target, draft, [1], 4)
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, target, [1], 4, gamma=0)
    with pytest.raises(ValueError, match="temperature"):
        speculative_generate(target, target, [1], 4, temperature=-1)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, target, [], 4)


# --- sampling: the target's distribution, exactly ----------------------------------------------


def _sequence_distribution(model, prompt, n, temperature):
    """The exact probability of every length-``n`` continuation over a tiny vocabulary."""
    V = model.config.vocab_size
    out = {}
    with torch.no_grad():
        for seq in itertools.product(range(V), repeat=n):
            ids = torch.tensor([list(prompt) + list(seq)])
            logp = F.log_softmax(model(ids).logits[0].double() / temperature, -1)  # (T, V)
            out[seq] = math.exp(sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(seq)))
    return out


@pytest.mark.parametrize("cached_draft", [True, False])
def test_speculative_samples_follow_the_target_not_the_draft(cached_draft):
    V, n, T, N = 3, 3, 1.0, 600
    target = lm(0, vocab=V, init_std=0.5)
    if cached_draft:
        draft = lm(5, vocab=V, layers=1, init_std=0.5)
    else:
        torch.manual_seed(5)
        draft = BigramLM(V)
        draft.table.weight.data.normal_(std=1.5)
    prompt = [0, 1, 2, 1]
    p = _sequence_distribution(target, prompt, n, T)
    q = _sequence_distribution(draft, prompt, n, T) if cached_draft else None
    gen = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(p, 0)
    stats = SpecStats(2)
    for _ in range(N):
        s = SpecStats(2)
        counts[tuple(speculative_generate(target, draft, prompt, n, 2, T, gen, stats=s))] += 1
        stats.merge(s)
    tv = 0.5 * sum(abs(counts[k] / N - p[k]) for k in p)
    # E[TV] <= 0.5 sum sqrt(p(1-p)/N); McDiarmid adds sqrt(ln(1000) / 2N) for a 0.1% false alarm
    bound = 0.5 * sum(math.sqrt(v * (1 - v) / N) for v in p.values()) + math.sqrt(math.log(1000) / (2 * N))
    assert tv < bound, (tv, bound)
    assert 0 < stats.acceptance_rate < 1  # both branches of the rule were exercised
    # each judged token is accepted with probability beta = sum min(p, q)
    assert abs(stats.acceptance_rate - np.mean(stats.beta)) < 4 * math.sqrt(0.25 / len(stats.beta))
    if q is not None:  # the draft's own distribution is outside the bound: the test can tell
        assert 0.5 * sum(abs(q[k] - p[k]) for k in p) > bound


def test_exactness_check_on_small_models():
    target, draft = lm(0, init_std=0.5), lm(1, layers=1, init_std=0.5)
    r = exactness_check(target, draft, [1, 2, 3], 1.0, 5000, 8, seed=0)
    assert r["tv_spec_vs_target"] < r["tv_bound"] < r["tv_draft_vs_target"]
    assert abs(r["acceptance_first_position"] - r["expected_acceptance"]) < 0.05


def test_autoregressive_baseline():
    model = lm(0, init_std=0.3)
    assert autoregressive(model, [1, 2], 8) == greedy_cached(model, [1, 2], 8)
    a = autoregressive(model, [1, 2], 8, 1.0, torch.Generator().manual_seed(3))
    b = autoregressive(model, [1, 2], 8, 1.0, torch.Generator().manual_seed(3))
    assert a == b and len(a) == 8


# --- stats and the cost formula ----------------------------------------------------------------


def test_stats_by_position_by_hand():
    s = SpecStats(3, proposed=[3, 3, 3, 2], accepted=[0, 3, 1, 2])
    # the last call drafted 2 and kept both: position 3 was never judged there
    assert s.reached() == [4, 3, 1]
    assert s.accepted_at() == [3, 2, 1]
    assert s.acceptance_by_position() == [3 / 4, 2 / 3, 1.0]
    assert s.acceptance_rate == 6 / 8
    assert s.tokens == 6 + 4 and s.tokens_per_call == 2.5
    assert s.cumulative_acceptance() == [2 / 3, 1 / 3, 1 / 3]


def test_expected_speedup_formula():
    assert expected_tokens_per_call(0.0, 4) == 1.0
    assert expected_tokens_per_call(1.0, 4) == 5.0
    # a = 0.8, gamma = 5, c = 0.05 (the paper's Figure 3 regime): (1 - 0.8^6) / (0.2 * 1.25)
    assert expected_speedup(0.8, 5, 0.05) == pytest.approx((1 - 0.8 ** 6) / (0.2 * 1.25))
    assert expected_speedup(0.5, 2, 0.1, verify_ratio=2.0) == pytest.approx(1.75 / 2.2)
    for a in (0.1, 0.5, 0.9):
        assert acceptance_rate_from_tokens_per_call(expected_tokens_per_call(a, 3), 3) == pytest.approx(a)
    with pytest.raises(ValueError):
        expected_speedup(1.5, 2, 0.1)


def test_bigram_draft_is_the_normalised_counts():
    stream = np.array([0, 1, 2, 1, 2, 0, 1], dtype=np.int32)
    model = bigram_draft(stream, 3, alpha=0.5)
    probs = torch.softmax(model.table.weight.detach(), -1)
    counts = np.zeros((3, 3))
    for a, b in zip(stream[:-1], stream[1:]):
        counts[a, b] += 1
    expected = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-5)


@torch.no_grad()
def test_distill_loss_mixes_cross_entropy_and_kl_to_the_target():
    target, draft = lm(0, init_std=0.3), lm(1, layers=1, init_std=0.3)
    x = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    ce = draft(x, targets=y).loss
    torch.testing.assert_close(distill_loss(target, 0.0)(draft, (x, y)), ce)
    assert float(distill_loss(target, 1.0)(target, (x, y))) == pytest.approx(0.0, abs=1e-5)
    kl = float(distill_loss(target, 1.0)(draft, (x, y)))
    assert kl > 0
    assert float(distill_loss(target, 0.25)(draft, (x, y))) == pytest.approx(0.75 * float(ce) + 0.25 * kl, rel=1e-5)


def test_kl_to_target_is_zero_for_the_target_itself():
    target, draft = lm(0, init_std=0.3), lm(1, layers=1, init_std=0.3)
    data = TokenBatcher(torch.arange(200) % 50, 8, mode="sequential")
    assert kl_to_target(target, target, data, 4, 2) == pytest.approx(0.0, abs=1e-5)
    assert kl_to_target(target, draft, data, 4, 2) > 0.01


# --- config and the experiment -----------------------------------------------------------------


TRAIN = TrainerConfig(max_steps=3, warmup_steps=1, batch_size=4, eval_every=0, progress=False)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="draft_widths"):
        SpeculativeConfig(train=TRAIN, draft_layers=[1, 2], draft_widths=[32])
    with pytest.raises(ValueError, match="gammas"):
        SpeculativeConfig(train=TRAIN, gammas=[4, 2])
    with pytest.raises(ValueError, match="draft_head_dim"):
        SpeculativeConfig(train=TRAIN, draft_widths=[30, 64, 64])
    with pytest.raises(ValueError, match="temperatures"):
        SpeculativeConfig(train=TRAIN, temperatures=[-1.0])
    with pytest.raises(ValueError, match="distill"):
        SpeculativeConfig(train=TRAIN, distill=1.5)
    with pytest.raises(ValueError, match="lookup_gammas"):
        SpeculativeConfig(train=TRAIN, lookup_gammas=[8, 4])
    with pytest.raises(ValueError, match="min_ngram"):
        SpeculativeConfig(train=TRAIN, min_ngram=4, max_ngram=3)
    with pytest.raises(ValueError, match="table_min_confidence"):
        SpeculativeConfig(train=TRAIN, table_min_confidence=2.0)
    with pytest.raises(ValueError, match="no draft"):
        SpeculativeConfig(train=TRAIN, draft_layers=[], draft_widths=[], bigram=False,
                          context_draft=False, table_draft=False)


def test_run_speculative_tiny(tmp_path):
    target = lm(0, vocab=40, init_std=0.3)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 40, 3000).astype(np.int32)
    val = rng.integers(0, 40, 600).astype(np.int32)
    cfg = SpeculativeConfig(
        draft_layers=[1], draft_widths=[16], train=TRAIN,
        seq_len=16, val_batches=1, prompt_tokens=4, n_prompts=2, new_tokens=8, gammas=[1, 3],
        temperatures=[0.0, 1.0], curve_gamma=2, exact_samples=500, repeats=1, cost_calls=2,
        table_tokens=1024, table_generations=4, lookup_gammas=[4, 6])
    results = run_speculative(cfg, target, train, val)
    assert [r.item for r in results] == [f"speculative-decoding/{i}" for i in (1, 2, 3)]
    assert results[0].metrics["greedy_runs_different"] == 0
    assert results[0].findings[0].passed
    assert all(r.findings for r in results)
    assert {"bigram.best_speedup", "1L-d16.best_speedup", "context.best_speedup", "table.best_speedup",
            "context-table.best_speedup"} <= set(results[2].metrics)
    # the lookup drafts are swept over lookup_gammas, the model drafts over gammas
    assert {"context-table.g6.speedup", "1L-d16.g3.speedup"} <= set(results[1].metrics)
    assert "1L-d16.g6.speedup" not in results[1].metrics
    # exactness is checked for a sampled q (the mini-former) and a one-hot q (context-table)
    m = results[0].metrics
    for name in ("1L-d16", "context-table"):
        assert m[f"exact.{name}.tv_spec_vs_target"] < m[f"exact.{name}.tv_bound"]
    assert results[2].metrics["table.params"] > 0  # table entries
    for r in results:
        for fig in r.figures.values():
            fig.savefig(tmp_path / "f.png")
