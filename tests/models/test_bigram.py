"""The bigram baseline: starts uniform, learns a deterministic successor table, skips ignored targets."""

import math

import pytest
import torch

from nlpcurriculum.models.bigram import BigramLM


def test_starts_at_the_uniform_loss():
    model = BigramLM(10)
    x = torch.randint(0, 10, (4, 6), generator=torch.Generator().manual_seed(0))
    assert float(model(x, targets=x).loss.detach()) == pytest.approx(math.log(10), abs=1e-6)


def test_learns_a_deterministic_successor():
    torch.manual_seed(0)
    model = BigramLM(5)
    x = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
    y = (x + 1) % 5  # every token has exactly one successor
    opt = torch.optim.Adam(model.parameters(), lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        loss = model(x, targets=y).loss
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.01
    assert torch.equal(model(x).logits.argmax(-1), y)


def test_ignored_targets_do_not_count():
    model = BigramLM(4)
    with torch.no_grad():
        model.table.weight[0, 1] = 5.0  # after token 0, strongly predict 1
    x = torch.tensor([[0, 2]])
    scored_only = model(x, targets=torch.tensor([[1, -100]])).loss.detach()
    assert float(scored_only) < 0.05  # the ignored position (uniform, loss log 4) is left out
