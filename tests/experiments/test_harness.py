"""Shared experiment helpers: byte tokens, token-weighted losses, thread limits, curves, LM budgets."""

import math

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.harness import (
    DOC_SEP,
    LMBudget,
    MixedBatcher,
    byte_stream,
    curve,
    final_train_loss,
    mean_loss,
    plot_curves,
    train_run,
    uniform_loss,
    word_completion,
)
from nlpcurriculum.models.bigram import BigramLM
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import TrainerConfig


class _Fixed:
    """Two eval batches that score 1 and 3 targets."""

    def eval_batches(self, batch_size, n_batches):
        x = torch.zeros(1, 4, dtype=torch.long)
        yield x, torch.tensor([[0, -100, -100, -100]])
        yield x, torch.tensor([[1, 1, 1, -100]])


def test_mean_loss_weights_by_scored_targets():
    model = BigramLM(2)
    with torch.no_grad():
        model.table.weight[0] = torch.tensor([0.0, math.log(3.0)])  # p(1 | 0) = 3/4
    expected = (-math.log(0.25) * 1 + -math.log(0.75) * 3) / 4
    assert mean_loss(model, _Fixed(), 1, 2) == pytest.approx(expected, abs=1e-6)


def test_train_run_lowers_the_loss_and_records_curves():
    tokens = torch.tensor([0, 1, 2, 3] * 50)
    data = TokenBatcher(tokens, 8, seed=0)
    cfg = TrainerConfig(lr=0.1, max_steps=30, batch_size=4, warmup_steps=0, eval_every=10,
                        eval_batches=2, progress=False, weight_decay=0.0)
    model, result = train_run(None, cfg, data, data, seed=0, model=BigramLM(4))
    assert not model.training
    val = curve(result.history)
    assert [s for s, _ in val] == [10, 20, 30]
    assert val[-1][1] < 0.5 * uniform_loss(4)
    assert final_train_loss(result.history, last=5) < uniform_loss(4)
    fig = plot_curves({"bigram": val}, "t", hlines={"uniform": uniform_loss(4)})
    assert len(fig.axes[0].lines) == 2


# --- byte-level LM runs at an equal budget -----------------------------------------------------


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


def test_map_seeds_runs_side_by_side_in_seed_order_and_equals_the_serial_run():
    import operator

    from nlpcurriculum.experiments.harness import map_seeds

    assert map_seeds(operator.add, [3, 1, 2], 2, 10) == [13, 11, 12]
    assert map_seeds(operator.add, [3, 1, 2], 1, 10) == [13, 11, 12]
