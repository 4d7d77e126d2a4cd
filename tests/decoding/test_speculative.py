"""Speculative decoding: cache roll-back, the acceptance rule, greedy identity, exact sampling and
the cost formula (the stage's experiment: tests/experiments/test_speculative_decoding.py)."""

import itertools
import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.decoding.kv_decode import greedy_cached
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
from nlpcurriculum.nn.fast.decode_layout import decode_layout
from nlpcurriculum.nn.kv_cache import KVCache


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


def _chi_square_test(counts, p, n_samples, min_expected=5.0):
    """Pearson's chi-square of ``counts`` against ``p`` on bins of expected count >= 5 (the
    cells with less are pooled into one bin). Returns ``(statistic, degrees of freedom, bins)``."""
    keep = [k for k in p if n_samples * p[k] >= min_expected]
    rest = [k for k in p if n_samples * p[k] < min_expected]
    bins = [([k], p[k]) for k in keep] + ([(rest, sum(p[k] for k in rest))] if rest else [])
    stat = sum((sum(counts.get(k, 0) for k in ks) - n_samples * pk) ** 2 / (n_samples * pk)
               for ks, pk in bins)
    return stat, len(bins) - 1, bins


def _sample_joint(target, draft, prompt, n, gamma, temperature, n_samples, seed):
    gen = torch.Generator().manual_seed(seed)
    counts: dict[tuple[int, ...], int] = {}
    stats = SpecStats(gamma)
    with decode_layout(target, draft):  # the decoders' weight copies, made once for every sample
        for _ in range(n_samples):
            s = SpecStats(gamma)
            seq = tuple(speculative_generate(target, draft, prompt, n, gamma, temperature, gen, stats=s))
            counts[seq] = counts.get(seq, 0) + 1
            stats.merge(s)
    return counts, stats


def test_speculative_sampling_is_exact_over_the_whole_loop_with_stated_power(monkeypatch):
    """The joint of the first 3 emitted tokens over a vocabulary of 8 (512 sequences) follows the
    target's exact joint, through the whole loop: blocks of 2 drafted tokens, the rejection
    rule, the resampled token and the roll-back of both caches (a cached mini-former draft).

    Test: Pearson's chi-square on the cells of expected count >= 5 (the rest pooled into one
    bin), at a false alarm rate alpha = 1e-3. Power: any sampler whose binned joint lies a total
    variation distance >= 0.05 from the target's has noncentrality lambda = N sum (q - p)^2 / p
    >= N (2 TV)^2 (Cauchy-Schwarz: (sum |q - p|)^2 <= sum (q - p)^2 / p), so with N = 8000
    samples lambda >= 80, and the test's power against it, P(noncentral chi-square(df, 80) >
    critical value), is computed below and must be >= 0.99 (0.996 with these models: 39 degrees
    of freedom). A broken roll-back (the target's cache never cropped) must fail the same test.
    """
    from scipy import stats as st

    V, n, gamma, T, N, alpha = 8, 3, 2, 1.0, 8000, 1e-3
    target = lm(0, vocab=V, init_std=0.45)
    draft = lm(7, vocab=V, layers=1)  # nearly uniform: accepted often enough, rejected often enough
    prompt = [0, 3, 5, 1]
    p = _sequence_distribution(target, prompt, n, T)
    counts, stats = _sample_joint(target, draft, prompt, n, gamma, T, N, seed=0)
    stat, df, bins = _chi_square_test(counts, p, N)
    critical = st.chi2.ppf(1 - alpha, df)
    power = st.ncx2.sf(critical, df, N * (2 * 0.05) ** 2)
    assert power >= 0.99, (power, df)  # the stated power holds for these bins
    assert stat < critical, (stat, critical, df)
    # the whole loop was exercised: whole blocks accepted, and rejections (roll-backs)
    assert 0.1 < stats.acceptance_rate < 0.9 and max(stats.accepted) == gamma, stats.acceptance_rate
    # the draft's own joint is far from the target's: sampling it would be caught
    q = _sequence_distribution(draft, prompt, n, T)
    assert 0.5 * sum(abs(q[k] - p[k]) for k in p) > 0.05

    # mutation: no roll-back of the target's cache (2 layers; the draft's has 1): the keys of
    # rejected drafts stay and later tokens are drawn in the wrong context
    crop = KVCache.crop
    monkeypatch.setattr(KVCache, "crop", lambda self, length: None if self.n_layers == 2
                        else crop(self, length))
    bad, _ = _sample_joint(target, draft, prompt, n, gamma, T, N // 4, seed=1)
    bad_stat, bad_df, _ = _chi_square_test(bad, p, N // 4)
    assert bad_stat > st.chi2.ppf(1 - alpha, bad_df), (bad_stat, bad_df)
