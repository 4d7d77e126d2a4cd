"""Tests of the LM-based data experiments (tiny budgets: a few seconds in all)."""

import numpy as np
import pytest
import torch

from nlpcurriculum.data.lm_experiments import (
    DOC_SEP,
    DedupImpactConfig,
    LMBudget,
    MixedBatcher,
    SyntheticCurvesConfig,
    byte_stream,
    dedup_impact_experiment,
    synthetic_curves_experiment,
    word_completion,
)
from nlpcurriculum.training import TokenBatcher

TINY = dict(d_model=16, n_layers=1, n_heads=2, seq_len=32, steps=6, batch_size=4,
            warmup_steps=1, eval_every=3, eval_batches=1)


def _bytes(s: str) -> np.ndarray:
    return np.frombuffer(s.encode(), np.uint8).astype(np.int64)


def test_byte_stream_joins_documents_with_separator():
    stream = byte_stream(["ab", "é"])
    assert stream.tolist() == [97, 98, DOC_SEP, 0xC3, 0xA9, DOC_SEP]


def test_word_completion_needs_every_letter_and_terminator():
    x, y = _bytes("the cat. a dog"), _bytes("he cat. a dogs")
    assert word_completion(y.copy(), x, y) == (2, 2)  # "dogs" runs past the window: skipped
    pred = y.copy()
    pred[5] = ord("x")  # "cat" (targets 3..5, "." at 6) mispredicted at its last letter
    assert word_completion(pred, x, y) == (1, 2)
    pred = y.copy()
    pred[6] = ord(" ")  # terminator "." wrong: the greedy word would not end there
    assert word_completion(pred, x, y) == (1, 2)


def test_mixed_batcher_keeps_shares_in_every_batch():
    a = TokenBatcher(torch.zeros(100, dtype=torch.long), 4)
    b = TokenBatcher(torch.ones(100, dtype=torch.long), 4)
    x, y = MixedBatcher([a, b], [1, 1]).next_batch(6)
    assert x.shape == (6, 4) and y.shape == (6, 4)
    assert int(x[:, 0].sum()) == 3


def test_budget_rejects_bad_values():
    with pytest.raises(ValueError, match="steps"):
        LMBudget(steps=0)
    with pytest.raises(ValueError, match="warmup"):
        LMBudget(steps=5, warmup_steps=6)


def test_synthetic_curves_reports_cross_eval_and_findings():
    real = {"train": [f"The quick brown fox {i} jumps over the lazy dog." * 3 for i in range(20)],
            "val": ["A different sentence about foxes and dogs." * 3] * 2}
    syn = {"train": ["Tom had a cat. The cat was red. " * 3] * 20,
           "val": ["Ann had a dog. The dog was big. " * 3] * 2}
    result = synthetic_curves_experiment(real, syn, SyntheticCurvesConfig(budget=LMBudget(**TINY)))
    for run in ("real", "synthetic", "mix"):
        for ev in ("real", "synthetic"):
            loss = result.metrics[f"{run}_model.{ev}_val_loss"]
            assert 0 < loss < np.log(256) + 0.5
    assert len(result.findings) == 3
    assert len(result.series["real_model_real_val"]) == 3  # steps 0, 3, 6
    assert result.metrics["tokens_per_run"] == 6 * 4 * 32


def test_dedup_impact_seeds_give_spread_and_findings():
    docs = [f"Document number {i} says hello to the world again." * 2 for i in range(30)]
    sets = {"raw": docs, "deduped": docs[:25], "filtered": docs[:20]}
    cfg = DedupImpactConfig(budget=LMBudget(**TINY), seeds=[0, 1])
    result = dedup_impact_experiment(sets, ["Held out text, the world says hello." * 3], cfg)
    assert result.metrics["raw.heldout_ppl"] > 1
    assert result.metrics["raw.heldout_ppl_spread"] > 0  # different seeds, different models
    assert 0 <= result.metrics["filtered.word_acc"] <= 1
    assert [f.metric for f in result.findings][:2] == ["deduped.ppl_ratio_to_raw",
                                                       "deduped.word_acc_minus_raw"]
