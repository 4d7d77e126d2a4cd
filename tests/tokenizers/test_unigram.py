"""Unigram LM: lattice algorithms against brute-force enumeration, the batched E-step against
the per-word one, and Viterbi parity with ``tokenizers.models.Unigram`` given our pieces."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest

from nlpcurriculum.tokenizers import UnigramConfig, UnigramModel, UnigramTokenizer, train_unigram
from nlpcurriculum.tokenizers.unigram import LatticeBatch, digamma, metaspace_words

import tokenizers as hf
from tokenizers import models, pre_tokenizers  # noqa: E402


def segmentations(word: str, vocab: dict[str, float]):
    """Every way to spell ``word`` with ``vocab`` (brute force), with its total score."""
    n = len(word)
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        parts = [word[a:b] for a, b in zip(bounds, bounds[1:])]
        if all(p in vocab for p in parts):
            yield tuple(parts), sum(vocab[p] for p in parts)


def toy_model(vocab: dict[str, float]) -> UnigramModel:
    pieces = ["<unk>"] + list(vocab)
    return UnigramModel(pieces, [0.0] + list(vocab.values()), unk_id=0, special_ids=[0])


def spans_to_pieces(word, spans):
    return tuple(word[s:e] for s, e, _ in spans)


TOY = {"a": -1.0, "b": -2.0, "ab": -2.5, "c": -1.5, "bc": -2.2, "abc": -5.0, "ca": -3.0}


def test_hand_worked_example_from_the_docstring():
    m = toy_model({"a": -1.0, "b": -2.0, "ab": -2.5})
    assert spans_to_pieces("ab", m.viterbi("ab")) == ("ab",)
    z, _ = m.log_partition("ab")
    assert z == pytest.approx(math.log(math.exp(-2.5) + math.exp(-3.0)), abs=1e-12)
    assert z == pytest.approx(-2.0259, abs=1e-4)
    counts = {m.pieces[i]: c for i, c in m.expected_counts("ab").items()}
    assert counts["ab"] == pytest.approx(0.6225, abs=1e-4)
    assert counts["a"] == pytest.approx(0.3775, abs=1e-4) and counts["b"] == pytest.approx(0.3775, abs=1e-4)


@pytest.mark.parametrize("word", ["abcab", "cabca", "abcabcab", "bcbca"])
def test_viterbi_nbest_and_marginals_match_brute_force(word):
    m = toy_model(TOY)
    segs = sorted(segmentations(word, TOY), key=lambda t: -t[1])
    assert spans_to_pieces(word, m.viterbi(word)) == segs[0][0]
    nbest = m.nbest(word, 4)
    assert [round(s, 9) for s, _ in nbest] == [round(s, 9) for _, s in segs[:4]]
    assert {spans_to_pieces(word, p) for _, p in nbest} <= {p for p, _ in segs}
    z = math.log(sum(math.exp(s) for _, s in segs))
    assert m.log_partition(word)[0] == pytest.approx(z, abs=1e-12)
    exact: Counter = Counter()
    for parts, s in segs:
        for p in parts:
            exact[p] += math.exp(s - z)
    got = {m.pieces[i]: c for i, c in m.expected_counts(word).items()}
    for p, c in exact.items():
        assert got[p] == pytest.approx(c, abs=1e-12)


@pytest.mark.parametrize("alpha,nbest_size", [(1.0, -1), (0.3, -1), (0.0, -1), (0.5, 3)])
def test_sampling_follows_the_smoothed_posterior(alpha, nbest_size):
    word = "abcab"
    m = toy_model(TOY)
    segs = sorted(segmentations(word, TOY), key=lambda t: -t[1])
    if nbest_size > 0:
        segs = segs[:nbest_size]
    weights = {p: math.exp(alpha * s) for p, s in segs}
    total = sum(weights.values())
    rng = random.Random(0)
    draws = 20_000
    seen = Counter(spans_to_pieces(word, m.sample(word, alpha, nbest_size, rng)) for _ in range(draws))
    assert set(seen) <= set(weights)
    for p, w in weights.items():
        # binomial standard error is at most 0.0036 at 20k draws: 0.015 is > 4 sigma
        assert seen[p] / draws == pytest.approx(w / total, abs=0.015)


def test_sampling_with_large_alpha_or_nbest_one_is_viterbi():
    m = toy_model(TOY)
    rng = random.Random(1)
    for word in ("abcab", "cabca"):
        best = m.viterbi(word)
        assert m.sample(word, 1.0, 1, rng) == best
        assert all(m.sample(word, 200.0, -1, rng) == best for _ in range(50))


def test_unknown_characters_are_fused_like_tokenizers():
    m = toy_model({"a": -1.0, "b": -1.0})
    spans = m.viterbi("axyb")
    assert [(s, e, i) for s, e, i in spans] == [(0, 1, 1), (1, 3, 0), (3, 4, 2)]


def test_batched_forward_backward_and_viterbi_equal_the_per_word_versions(train_text):
    words = Counter(metaspace_words(train_text[:15_000]))
    vocab = [p for p, _ in train_unigram(words, 200, UnigramConfig()).pieces]
    rng = np.random.default_rng(0)
    logp = np.log(rng.dirichlet(np.ones(len(vocab))))
    index = {p: i for i, p in enumerate(vocab)}
    ws = list(words)
    batch = LatticeBatch(ws, index, 16)
    alive = np.ones(len(vocab), dtype=bool)
    alive[rng.random(len(vocab)) < 0.2] = False  # some pieces dead, as during pruning
    alive[[i for i, p in enumerate(vocab) if len(p) == 1][:3]] = False  # even some characters
    unk = float(logp[alive].min()) - 10.0
    lp, ok, counted = batch.edge_scores(logp, alive, unk)
    freqs = np.array([words[w] for w in ws], dtype=float)
    expected, objective = batch.forward_backward(lp, ok, counted, freqs, len(vocab))

    live = [i for i in range(len(vocab)) if alive[i]]
    model = UnigramModel(["<unk>"] + [vocab[i] for i in live], [0.0] + [float(logp[i]) for i in live],
                         unk_id=0, special_ids=[0])
    model.unk_score = unk  # the trainer's unknown score
    ref = np.zeros(len(vocab))
    ref_obj = 0.0
    for w in ws:
        for j, c in model.expected_counts(w).items():
            if j:
                ref[live[j - 1]] += c * words[w]
        ref_obj -= model.log_partition(w)[0] * words[w]
    np.testing.assert_allclose(expected, ref, rtol=1e-9, atol=1e-9)
    assert objective == pytest.approx(ref_obj / freqs.sum(), rel=1e-12)

    best, w_idx, p_idx = batch.viterbi(lp, ok, counted)
    for k, w in enumerate(ws):
        path = [live[i - 1] if i else -1 for _, _, i in model.viterbi(w)]
        batched = p_idx[w_idx == k][::-1].tolist()
        # the per-word path fuses adjacent unknowns; the batch keeps one edge per character
        fused = [p for j, p in enumerate(batched) if not (p == -1 and j and batched[j - 1] == -1)]
        assert fused == path


def test_matches_hf_unigram_on_held_out_text(unigram, held_out, unicode_extra):
    tok = hf.Tokenizer(models.Unigram(unigram.pieces, unk_id=unigram.unk_id))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)]
    )
    text = held_out + unicode_extra
    ours = unigram.encode(text)
    assert ours == tok.encode(text).ids
    assert unigram.unk_id in ours  # unknown characters were part of the check
    # and word by word, straight into the model
    for word in set(unigram.pre_tokenize(held_out[:20_000])):
        assert [t.id for t in tok.model.tokenize(word)] == unigram.encode(word)


def test_training_reaches_the_size_and_keeps_every_character(unigram, train_text):
    assert unigram.vocab_size == 600
    pieces = [p for p, _ in unigram.pieces]
    assert len(set(pieces)) == 600
    chars = {c for w in unigram.pre_tokenize(train_text) for c in w}
    assert chars <= set(pieces)
    scores = [s for _, s in unigram.pieces[1:]]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    sizes = [h["size"] for h in unigram.history]
    assert sizes[0] > sizes[-1] and sizes[-1] <= 1.1 * 599


def test_round_trip_is_whitespace_canonical(unigram, train_text):
    text = train_text[-30_000:]
    assert unigram.decode(unigram.encode(text)) == unigram.canonical(text)
    assert unigram.canonical("  Hello \n\t world  ") == "Hello world"


def test_sample_encode_decodes_to_the_same_text_and_varies(unigram, train_text):
    text = train_text[-2_000:]
    samples = [unigram.sample_encode(text, alpha=0.1, rng=seed) for seed in range(5)]
    assert all(unigram.decode(s) == unigram.canonical(text) for s in samples)
    assert len({tuple(s) for s in samples}) > 1
    assert unigram.sample_encode(text, alpha=0.1, rng=3) == samples[3]  # seeded
    assert min(len(s) for s in samples) > len(unigram.encode(text))  # Viterbi is the shortest-ish
    with pytest.raises(ValueError, match="alpha"):
        unigram.sample_encode(text, alpha=-1.0)


def test_digamma_matches_known_values():
    euler = 0.5772156649015329
    np.testing.assert_allclose(digamma([1.0, 0.5, 10.0, 100.0]),
                               [-euler, -euler - 2 * math.log(2), 2.251752589066721, 4.600161852738087], rtol=1e-9)


def test_config_is_validated():
    with pytest.raises(ValueError, match="shrinking_factor"):
        UnigramConfig(shrinking_factor=1.0)
    with pytest.raises(ValueError, match="unk_token"):
        UnigramConfig(special_tokens=("<s>",))
    with pytest.raises(ValueError, match="too small"):
        UnigramTokenizer().train("abc def ghi", 5)


def test_a_tiny_text_yields_a_smaller_vocabulary_not_an_error():
    text = "the cat sat on the mat " * 20
    tok = UnigramTokenizer().train(text, 200)
    assert len(set(text) - {" "}) + 1 < tok.vocab_size < 200  # every character, plus some words
    assert tok.decode(tok.encode(text)) == tok.canonical(text)
