"""Modified Kneser-Ney: a hand-worked bigram model, normalisation, ranking, filtering."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from nlpcurriculum.data.filters import FilterResult, Reason, apply_filters
from nlpcurriculum.data.ngram_lm import (
    EOS,
    UNK,
    KneserNeyConfig,
    KneserNeyLM,
    PerplexityFilter,
    PerplexityFilterConfig,
    estimate_discounts,
    tokenize,
)
from nlpcurriculum.data.synthetic.base import make_paragraph, make_sentence


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    rng = np.random.default_rng(0)
    return [tokenize(make_sentence(rng)) for _ in range(2000)]


def test_hand_worked_bigram_model():
    """Corpus "a b", "a c", "b"; bigram model; every discount 0.5.

    Padded: <s> a b </s> | <s> a c </s> | <s> b </s>. Unigram continuation counts (distinct left
    neighbours): a {<s>} = 1, b {a, <s>} = 2, c {a} = 1, </s> {b, c} = 2; total 6. Vocabulary
    {a, b, c, </s>, <unk>}: |V| = 5. gamma() = 4 * 0.5 / 6 = 1/3, so
      p1(a) = 0.5/6 + (1/3)(1/5) = 9/60,   p1(b) = 1.5/6 + 1/15 = 19/60,
      p1(c) = 9/60, p1(</s>) = 19/60, p1(<unk>) = 4/60            (sum 60/60).
    Context "a": b 1, c 1 (raw counts at the top order), total 2, gamma(a) = 2 * 0.5 / 2 = 1/2:
      p(b|a) = 0.5/2 + (1/2)(19/60) = 49/120,  p(c|a) = 39/120,  p(a|a) = 9/120.
    Context "<s>": a 2, b 1, total 3, gamma = 1/3: p(a|<s>) = 1.5/3 + (1/3)(9/60) = 0.55.
    Context "b": </s> 2, gamma = 0.5/2: p(</s>|b) = 1.5/2 + (1/4)(19/60) = 199/240.
    """
    cfg = KneserNeyConfig(order=2, discounts=(0.5, 0.5, 0.5))
    lm = KneserNeyLM(cfg).fit([["a", "b"], ["a", "c"], ["b"]])
    assert lm.vocab == ["a", "b", "c", EOS, UNK]
    expected_unigram = {"a": 9 / 60, "b": 19 / 60, "c": 9 / 60, EOS: 19 / 60, UNK: 4 / 60}
    for w, p in expected_unigram.items():
        assert lm.prob(w, ["never-seen-context"]) == pytest.approx(p, abs=1e-12)
    assert lm.prob("b", ["a"]) == pytest.approx(49 / 120, abs=1e-12)
    assert lm.prob("c", ["a"]) == pytest.approx(39 / 120, abs=1e-12)
    assert lm.prob("a", ["a"]) == pytest.approx(9 / 120, abs=1e-12)
    assert lm.prob("a", []) == pytest.approx(0.55, abs=1e-12)  # empty context = sentence start
    assert lm.prob("zebra", ["a"]) == pytest.approx(4 / 120, abs=1e-12)  # OOV scores as <unk>
    lp, n = lm.logprob(["a", "b"])
    expected = math.log(0.55) + math.log(49 / 120) + math.log(199 / 240)
    assert n == 3 and lp == pytest.approx(expected, abs=1e-12)


def test_discount_estimates_hand_example():
    # t1..t4 = 10, 4, 2, 1: Y = 10/18; D1 = 1 - 2Y(4/10) = 5/9; D2 = 2 - 3Y(2/4) = 7/6;
    # D3+ = 3 - 4Y(1/2) = 17/9.
    d = estimate_discounts(Counter({1: 10, 2: 4, 3: 2, 4: 1, 7: 3}), fallback=0.75)
    assert d == pytest.approx((5 / 9, 7 / 6, 17 / 9), abs=1e-12)
    assert estimate_discounts(Counter({1: 5}), fallback=0.75) == (0.75, 0.75, 0.75)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_over_the_vocabulary(corpus, order):
    lm = KneserNeyLM(KneserNeyConfig(order=order, min_count=2)).fit(corpus)
    contexts = [[], ["the"], ["the", "busy"], ["near", "the"], ["zzz", "qqq", "the"],
                ["<s>", "one"]]
    for ctx in contexts:
        total = sum(lm.prob(w, ctx) for w in lm.vocab)
        assert total == pytest.approx(1.0, abs=1e-9), (order, ctx)
    assert lm.prob("<s>", ["the"]) == 0.0


def test_shuffled_and_garbage_text_rank_worse_than_clean(corpus):
    lm = KneserNeyLM(KneserNeyConfig(order=3)).fit(corpus)
    rng = np.random.default_rng(1)
    clean = [tokenize(make_sentence(rng)) for _ in range(200)]
    shuffled = [list(rng.permutation(s)) for s in clean]
    garbage = [["".join(rng.choice(list("qxzvk"), 5)) for _ in s] for s in clean]
    ppl_clean = lm.corpus_perplexity(clean)
    assert ppl_clean < 30
    assert lm.corpus_perplexity(shuffled) > 5 * ppl_clean
    assert lm.corpus_perplexity(garbage) > lm.corpus_perplexity(shuffled)
    per_doc = [lm.perplexity(c) < lm.perplexity(s) for c, s in zip(clean, shuffled)]
    assert np.mean(per_doc) > 0.95


def test_perplexity_filter_drops_garbage_and_keeps_most_clean_text():
    rng = np.random.default_rng(2)
    train = [make_paragraph(rng, 6) for _ in range(400)]
    reference = [make_paragraph(rng, 6) for _ in range(100)]
    filt = PerplexityFilter(PerplexityFilterConfig(percentile=90.0)).fit(train, reference)
    assert filt.threshold == pytest.approx(np.percentile(filt.reference_perplexities, 90.0))
    fresh = [make_paragraph(rng, 6) for _ in range(100)]
    words = " ".join(fresh).split()
    shuffled = [" ".join(rng.permutation(words)[:60]) for _ in range(50)]
    report = apply_filters(fresh + shuffled, [filt])
    assert report.keep[:100].mean() > 0.75  # ~90% expected
    assert not report.keep[100:].any()
    assert report.counts[Reason.PERPLEXITY] >= 50
    assert filt("") == FilterResult(False, Reason.PERPLEXITY)  # no tokens: infinite perplexity


def test_unfitted_model_and_filter_raise_clear_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        KneserNeyLM().prob("a", [])
    with pytest.raises(RuntimeError, match="not fitted"):
        PerplexityFilter()("some text")
    with pytest.raises(ValueError, match="must not contain"):
        KneserNeyLM().fit([["a", "</s>"]])
    with pytest.raises(ValueError):
        KneserNeyConfig(discounts=(1.5, 1.0, 1.0))  # D1 > 1 would break normalisation


def test_a_word_given_probability_zero_gives_infinite_perplexity_not_an_error():
    """Small repetitive text (a user's corpus) can clamp a discount to 0: a context whose only
    follower has count >= 3 then reserves no mass for any other word. Scoring such a word must
    give perplexity inf (the filter drops it), not a math domain error."""
    no_d3 = KneserNeyConfig(order=2, discounts=(0.5, 1.0, 0.0))
    lm = KneserNeyLM(no_d3).fit([["a", "b"]] * 3 + [["c", "d"]])
    assert lm.prob("d", ["a"]) == 0.0
    assert lm.perplexity(["a", "d"]) == math.inf
    assert lm.logprob(["a", "d"])[0] == -math.inf
    assert math.isfinite(lm.perplexity(["a", "b"]))
