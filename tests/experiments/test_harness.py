"""Shared experiment helpers: byte tokens, token-weighted losses, thread limits, curves."""

import math

import pytest
import torch

from nlpcurriculum.experiments.harness import (
    curve,
    final_train_loss,
    mean_loss,
    plot_curves,
    train_run,
    uniform_loss,
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
