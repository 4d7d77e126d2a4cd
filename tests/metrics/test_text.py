"""Text metrics: hand-computed BLEU (both smoothings) with nltk parity, distinct-n, self-BLEU,
repetition."""

import math

import pytest

from nlpcurriculum.metrics.text import (
    bleu,
    distinct_n,
    longest_repeated_span,
    modified_precision,
    repetition_rate,
    self_bleu,
)

HYP = "the cat sat on the mat".split()
REF = "the cat is on the mat".split()


def test_bleu_by_hand():
    # unigrams 5/6 (sat misses), bigrams 3/5 (the-cat, on-the, the-mat), same length: BP = 1
    assert modified_precision(HYP, [REF], 1) == (5, 6)
    assert modified_precision(HYP, [REF], 2) == (3, 5)
    assert bleu(HYP, [REF], max_n=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    # trigrams 1/4 (on-the-mat), 4-grams 0/3 -> smoothed to 0.1/3
    assert bleu(HYP, [REF]) == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 0.1 / 3) ** 0.25)
    assert bleu(HYP, [REF], epsilon=0) == 0.0
    # clipping: "the" x7 against a reference with two "the"
    assert modified_precision(["the"] * 7, [REF], 1) == (2, 7)
    # brevity penalty: c = 2, closest r = 6 -> exp(1 - 3)
    assert bleu(["the", "cat"], [REF], max_n=2) == pytest.approx(math.exp(-2))
    # the closest reference length is used (c = 2: r = 3, not 6)
    assert bleu(["the", "cat"], [REF, ["the", "cat", "x"]], max_n=2) == pytest.approx(math.exp(1 - 3 / 2))
    assert bleu(HYP, [HYP]) == pytest.approx(1.0)
    assert bleu(["zebra"], [REF]) == 0.0 and bleu([], [REF]) == 0.0


def test_bleu_matches_nltk():
    from nltk.translate import bleu_score as nltk_bleu

    smooth = nltk_bleu.SmoothingFunction().method1
    for hyp, refs in [(HYP, [REF]), ("a b c d e f g".split(), ["a b x d e f".split(), "b c d".split()])]:
        assert bleu(hyp, refs) == pytest.approx(nltk_bleu.sentence_bleu(refs, hyp, smoothing_function=smooth))


def test_bleu_add_one_smoothing_by_hand():
    ref = "the cat sat on the mat".split()
    assert bleu(ref, [ref], smoothing="add_one") == pytest.approx(1.0)
    assert bleu([], [ref], smoothing="add_one") == 0.0
    assert bleu(["zebra"], [ref], smoothing="add_one") == 0.0  # no unigram match: 0, not smoothed
    # one substitution: p1 = 5/6, smoothed p2 = (3+1)/(5+1), p3 = (2+1)/(4+1), p4 = (1+1)/(3+1)
    cand = "the cat sat on a mat".split()
    expected = math.exp(sum(math.log(p) for p in (5 / 6, 4 / 6, 3 / 5, 2 / 4)) / 4)
    assert bleu(cand, [ref], smoothing="add_one") == pytest.approx(expected)
    # the module docstring's example: BLEU-2 with add-one = sqrt(5/6 * 4/6)
    assert bleu(HYP, [REF], max_n=2, smoothing="add_one") == pytest.approx(math.sqrt(5 / 6 * 4 / 6))
    # a hypothesis shorter than n: (0 + 1) / (0 + 1) for the orders it has no n-grams of;
    # brevity penalty exp(1 - 6 / 2)
    assert bleu(["the", "cat"], [ref], smoothing="add_one") == pytest.approx(math.exp(1 - 6 / 2))
    # epsilon is ignored by add-one; an unknown smoothing is an error
    assert bleu(cand, [ref], epsilon=0.5, smoothing="add_one") == bleu(cand, [ref], smoothing="add_one")
    with pytest.raises(ValueError, match="smoothing"):
        bleu(cand, [ref], smoothing="add-one")


def test_bleu_add_one_matches_nltk_method2():
    """nltk's method 2 is the same add-one (Lin & Och 2004) wherever the hypothesis has n-grams
    of every order (it smooths a missing order as 1/2, we as 1/1)."""
    from nltk.translate import bleu_score as nltk_bleu

    smooth = nltk_bleu.SmoothingFunction().method2
    cases = [(HYP, [REF]), ("the cat sat on a mat".split(), [REF]),
             ("a b c d e f g".split(), ["a b x d e f".split(), "b c d".split()]),
             ("a a a b b".split(), ["a b a b a b a".split()])]
    for hyp, refs in cases:
        ours = bleu(hyp, refs, smoothing="add_one")
        assert ours == pytest.approx(nltk_bleu.sentence_bleu(refs, hyp, smoothing_function=smooth), rel=1e-12)


def test_distinct_and_self_bleu():
    same = [[1, 2, 3, 4]] * 3
    varied = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert distinct_n(same, 1) == pytest.approx(4 / 12) and distinct_n(varied, 2) == 1.0
    assert distinct_n([[1]], 2) == 0.0
    assert self_bleu(same) == pytest.approx(1.0) and self_bleu(varied) == 0.0
    with pytest.raises(ValueError, match="2 samples"):
        self_bleu([[1, 2]])


def test_repetition_measures():
    loop = list("abcabcabc")
    assert longest_repeated_span(loop) == 6
    assert longest_repeated_span(list("abcdef")) == 0
    assert repetition_rate(loop, 3) == pytest.approx(1 - 3 / 7)
    assert repetition_rate(list("abcdef"), 2) == 0.0
    with pytest.raises(ValueError, match="n must be"):
        repetition_rate(loop, 0)
