"""Drafters: prompt lookup, the distilled n-gram table, chains; greedy identity and exact sampling
with deterministic (one-hot) drafts."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.decoding.drafters import (
    ChainDrafter,
    ContextDrafter,
    ModelDrafter,
    NgramTableDrafter,
    as_drafter,
    count_votes,
    teacher_forced_argmax_stream,
)
from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.decoding.speculative import SpecStats, speculative_generate
from nlpcurriculum.experiments.speculative_decoding import exactness_check
from nlpcurriculum.models import build_model, llama_like


def lm(seed: int, vocab: int = 50, layers: int = 2, init_std: float = 0.3, max_seq_len: int = 48):
    torch.manual_seed(seed)
    cfg = llama_like("tiny", vocab_size=vocab, max_seq_len=max_seq_len, n_layers=layers, init_std=init_std)
    return build_model(cfg).eval()


def distilled(target, stream, order=3, min_confidence=0.0):
    nxt = teacher_forced_argmax_stream(target, stream, 16, batch_size=4)
    votes = count_votes(stream[: len(nxt)], nxt, order)
    return NgramTableDrafter.from_votes(votes, order, min_confidence, target.config.vocab_size)


# --- context (prompt lookup) -------------------------------------------------------------------


def test_context_drafter_copies_after_the_most_recent_longest_match():
    d = ContextDrafter(max_ngram=2, min_ngram=1)
    #         0  1  2  3  4  5  6  7  8
    tokens = [5, 6, 7, 1, 5, 6, 8, 2, 5, 6]
    # suffix (5, 6): earlier at 4 (most recent) and 0; copy from 6 on
    assert d.match(tokens) == (6, 2)
    assert d.propose(tokens, 3) == ([8, 2, 5], None)
    # the copy reads its own proposals: the loop (5, 6, 8, 2) goes on past the sequence's end
    assert d.propose(tokens, 7)[0] == [8, 2, 5, 6, 8, 2, 5]


def test_context_drafter_backs_off_to_shorter_suffixes_and_may_find_nothing():
    d = ContextDrafter(max_ngram=3, min_ngram=1)
    assert d.propose([4, 9, 1, 2, 9], 2)[0] == [1, 2]  # only the 1-token suffix (9) matches
    assert d.propose([1, 2, 3, 4], 3) == ([], None)
    assert ContextDrafter(2, 2).propose([4, 9, 1, 2, 9], 2)[0] == []  # no 2-token match
    with pytest.raises(ValueError, match="min_ngram"):
        ContextDrafter(max_ngram=1, min_ngram=2)


# --- the distilled table -----------------------------------------------------------------------


def test_count_votes_and_majority_with_vote_share():
    stream = [1, 2, 1, 2, 1, 3]
    nxt = [7, 8, 7, 9, 7, 8]
    votes = count_votes(stream, nxt, order=2)
    assert votes[(1,)] == {7: 3}
    assert votes[(2,)] == {8: 1, 9: 1}
    assert votes[(1, 2)] == {8: 1, 9: 1} and votes[(2, 1)] == {7: 2}
    table = NgramTableDrafter.from_votes(votes, order=2)
    assert table.table[(1,)] == (7, 1.0)
    assert table.table[(2,)] == (8, 0.5)  # a tie: the id counted first
    # first=3: positions 0-2 do not vote
    assert count_votes(stream, nxt, 1, first=3)[(1,)] == {7: 1}
    with pytest.raises(ValueError, match="length"):
        count_votes([1, 2], [3], 1)


def test_table_backs_off_chains_and_stops_when_unsure():
    table = NgramTableDrafter({(1,): (2, 1.0), (2,): (3, 0.5), (1, 2): (4, 0.9), (4,): (1, 0.4)},
                              order=2)
    # (1, 2) is known: 4; then (2, 4) is not, back off to (4,): 1; then (4, 1) -> (1,): 2
    assert table.propose([0, 1, 2], 3) == ([4, 1, 2], None)
    assert table.propose([7], 3) == ([], None)  # unknown token: nothing to propose
    unsure = NgramTableDrafter(table.table, 2, min_confidence=0.5)
    assert unsure.propose([0, 1, 2], 3)[0] == [4]  # 0.9, then 0.9 * 0.4 < 0.5: stop


def test_teacher_forced_argmax_stream_reproduces_greedy_decoding():
    target = lm(0)
    prompt = [3, 1, 4, 1]
    out = greedy_cached(target, prompt, 12)  # 16 tokens in all: one window
    nxt = teacher_forced_argmax_stream(target, prompt + out, 16)
    assert nxt.shape == (16,)
    assert nxt[len(prompt) - 1: -1].tolist() == out  # the arg-max after each position is greedy's next
    assert teacher_forced_argmax_stream(target, prompt + out + [5], 16).shape == (16,)  # tail dropped


def test_a_table_distilled_from_the_targets_greedy_output_drafts_it():
    target = lm(0)
    prompt = [3, 1, 4, 1]
    out = greedy_cached(target, prompt, 12)
    table = distilled(target, np.array(prompt + out))
    # every drafted token the table proposes along the greedy path is the target's own choice
    # unless the key is ambiguous; along a distinct path, accepts outnumber rejects
    stats = SpecStats(4)
    assert speculative_generate(target, table, prompt, 12, 4, stats=stats) == out
    assert stats.acceptance_rate > 0.5


# --- chains and the interface ------------------------------------------------------------------


def test_chain_uses_the_context_first_and_the_table_for_the_rest():
    table = NgramTableDrafter({(9,): (3, 1.0), (3,): (9, 1.0), (8,): (7, 1.0)}, order=1)
    chain = ChainDrafter(ContextDrafter(2, 2), table)
    assert chain.propose([5, 8, 5, 8], 3)[0] == [5, 8, 5]  # the copy fills the block
    assert chain.propose([1, 9], 3)[0] == [3, 9, 3]  # no copy: the table
    assert chain.propose([5, 6, 2, 5, 6], 3)[0] == [2, 5, 6]
    # a copy never runs out (it continues the loop it found): the table only fills in for no match
    assert chain.propose([5, 8, 2, 5, 8], 4)[0] == [2, 5, 8, 2]
    assert ChainDrafter(ContextDrafter(3, 3), table).propose([1, 8], 2)[0] == [7]  # table: (8,) -> 7, (7,) unknown
    with pytest.raises(ValueError, match="deterministic"):
        ChainDrafter(ContextDrafter(), ModelDrafter(lm(1)))
    with pytest.raises(ValueError, match="vocabularies"):
        ChainDrafter(NgramTableDrafter({}, 1, vocab_size=5), NgramTableDrafter({}, 1, vocab_size=6))


def test_as_drafter_wraps_models_and_checks_vocabulary():
    model = lm(1)
    assert isinstance(as_drafter(model), ModelDrafter)
    ctx = ContextDrafter()
    assert as_drafter(ctx) is ctx
    with pytest.raises(TypeError, match="Drafter"):
        as_drafter("bigram")
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_generate(lm(0), NgramTableDrafter({}, 1, vocab_size=40), [1], 4)


# --- greedy identity and exact sampling with deterministic drafts ------------------------------


@pytest.mark.parametrize("gamma", [1, 3, 8])
@pytest.mark.parametrize("kind", ["context", "table", "chain"])
def test_greedy_speculative_with_lookup_drafts_equals_target_greedy(kind, gamma):
    target = lm(0)
    rng = np.random.default_rng(0)
    table = distilled(target, rng.integers(0, 50, 400), min_confidence=0.05)
    drafter = {"context": ContextDrafter(3, 1), "table": table,
               "chain": ChainDrafter(ContextDrafter(3, 1), table)}[kind]
    prompt = [3, 1, 4, 1, 5, 9, 2, 6, 3, 1, 4]
    stats = SpecStats(gamma)
    out = speculative_generate(target, drafter, prompt, 30, gamma, stats=stats)
    assert out == greedy_cached(target, prompt, 30)
    assert stats.tokens == 30 and max(stats.proposed) <= gamma
    assert sum(stats.proposed) > 0  # the drafter did propose


def _sequence_distribution(model, prompt, n, temperature):
    V = model.config.vocab_size
    out = {}
    with torch.no_grad():
        for seq in itertools.product(range(V), repeat=n):
            logp = F.log_softmax(model(torch.tensor([list(prompt) + list(seq)])).logits[0].double()
                                 / temperature, -1)  # (T, V)
            out[seq] = math.exp(sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(seq)))
    return out


@pytest.mark.parametrize("kind", ["context", "table"])
def test_sampling_with_a_one_hot_draft_follows_the_target(kind):
    V, n, T, N = 3, 3, 1.0, 600
    target = lm(0, vocab=V, init_std=0.5)
    prompt = [0, 1, 2, 1]
    if kind == "context":
        drafter = ContextDrafter(2, 1)
    else:  # a fixed table that always proposes something
        drafter = NgramTableDrafter({(0,): (1, 1.0), (1,): (2, 1.0), (2,): (0, 1.0)}, order=1)
    p = _sequence_distribution(target, prompt, n, T)
    gen = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(p, 0)
    stats = SpecStats(2)
    for _ in range(N):
        s = SpecStats(2)
        counts[tuple(speculative_generate(target, drafter, prompt, n, 2, T, gen, stats=s))] += 1
        stats.merge(s)
    tv = 0.5 * sum(abs(counts[k] / N - p[k]) for k in p)
    bound = 0.5 * sum(math.sqrt(v * (1 - v) / N) for v in p.values()) + math.sqrt(math.log(1000) / (2 * N))
    assert tv < bound, (tv, bound)
    assert 0 < stats.acceptance_rate < 1
    # one-hot q: a drafted x is accepted with probability beta = p(x)
    assert abs(stats.acceptance_rate - np.mean(stats.beta)) < 4 * math.sqrt(0.25 / len(stats.beta))


def test_exactness_check_with_a_deterministic_draft():
    target = lm(0, init_std=0.5)
    table = NgramTableDrafter({(3,): (7, 1.0)}, order=1)
    r = exactness_check(target, table, [1, 2, 3], 1.0, 5000, 8, seed=0)
    assert r["tv_spec_vs_target"] < r["tv_bound"] < r["tv_draft_vs_target"]
    with torch.no_grad():
        p7 = float(torch.softmax(target(torch.tensor([[1, 2, 3]])).logits[0, -1], -1)[7])
    assert r["expected_acceptance"] == pytest.approx(p7, rel=1e-4)  # sum min(p, onehot(7)) = p(7)
    assert abs(r["acceptance_first_position"] - p7) < 0.05
    with pytest.raises(ValueError, match="nothing"):
        exactness_check(target, table, [1, 2, 4], 1.0, 100, 8, seed=0)
