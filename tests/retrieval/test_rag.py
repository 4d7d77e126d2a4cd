"""RAG prompt assembly (the docstring's worked example, every strategy within the window) and the
learned term-translation reranker."""

import numpy as np
import pytest

from nlpcurriculum.retrieval.rag import (ANSWER, CONTEXT, QUESTION, SEP, STRATEGIES, LexicalReranker,
                                         assemble, context_budget)


def _ctx(prompt):
    return prompt[1:prompt.index(QUESTION)]


def test_docstring_example():
    P = [["a", "b", "c"], ["d", "e", "f"]]
    full = assemble(P, ["q"], 11)
    assert full == [CONTEXT, "a", "b", "c", SEP, "d", "e", "f", QUESTION, "q", ANSWER]
    assert context_budget(["q"], 9) == 5
    want = {"head": "a b c | d", "tail": "c | d e f", "per_passage": "a b | d e", "passages": "a b c"}
    for strategy, ctx in want.items():
        assert " ".join(_ctx(assemble(P, ["q"], 9, strategy))) == ctx, strategy


def test_every_strategy_fits_the_window():
    rng = np.random.default_rng(0)
    for _ in range(200):
        P = [[f"w{j}" for j in range(int(rng.integers(1, 9)))] for _ in range(int(rng.integers(0, 12)))]
        q = ["x"] * int(rng.integers(1, 6))
        window = int(rng.integers(len(q) + 3, 40))
        for s in STRATEGIES:
            prompt = assemble(P, q, window, s)
            assert len(prompt) <= window and prompt[-len(q) - 1:] == [*q, ANSWER]
    assert assemble([], ["q"], 8) == [CONTEXT, QUESTION, "q", ANSWER]     # closed-book
    with pytest.raises(ValueError):
        assemble([["a"]], ["q"], 8, "middle")
    with pytest.raises(ValueError):
        assemble([["a"]], ["q"] * 6, 8)


def test_reranker_learns_a_synonym():
    # training: "hue" questions always have a "color" gold passage
    questions = [["hue", "of", n] for n in "abcdefgh"] + [["size", "of", n] for n in "abcdefgh"]
    gold = [["color", "of", n, "is", "red"] for n in "abcdefgh"] + [["size", "of", n, "is", "big"] for n in "abcdefgh"]
    passages = gold + [["city", "of", n, "is", "oslo"] for n in "abcdefgh"]
    rr = LexicalReranker(questions, gold, passages)
    assert rr.weights["hue"]["color"] == pytest.approx(np.log(3.0))        # P = 1, background 8/24
    cands = [["city", "of", "z", "is", "oslo"], ["size", "of", "z", "is", "big"], ["color", "of", "z", "is", "red"]]
    order = rr.rerank(["hue", "of", "z"], [0, 1, 2], cands)
    assert order.tolist()[0] == 2
    assert rr.score(["unknown"], cands[0]) == 0.0
