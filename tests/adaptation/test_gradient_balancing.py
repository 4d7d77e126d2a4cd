"""PCGrad against torchjd, and GradNorm / uncertainty weighting on hand-checkable cases."""

import math

import pytest
import torch

from nlpcurriculum.adaptation.gradient_balancing import (
    GradNorm,
    UncertaintyWeighting,
    cosine_matrix,
    pcgrad,
)


def test_pcgrad_worked_example_of_the_docstring():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    assert torch.allclose(pcgrad(g), torch.tensor([0.5, 1.5]))
    assert torch.allclose(pcgrad(g, order="fixed"), torch.tensor([0.5, 1.5]))


@pytest.mark.parametrize("K", [2, 3, 5])
def test_pcgrad_equals_torchjd_for_the_same_task_orders(K):
    """torchjd 0.18's PCGradWeighting draws ``torch.randperm(K)`` per task from the global RNG, as
    ours does without a generator: reseeding the global RNG identically before each call makes
    both visit the tasks in the same order. float64, tolerance 1e-12."""
    from torchjd.aggregation import PCGrad

    for seed in range(10):
        G = torch.randn(K, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        G[1] = -0.7 * G[0] + 0.3 * G[1]          # make sure some pairs conflict
        torch.manual_seed(seed)
        ours = pcgrad(G)
        torch.manual_seed(seed)
        theirs = PCGrad()(G)
        assert (ours - theirs).abs().max().item() <= 1e-12


def test_pcgrad_random_order_matters_for_three_tasks_and_the_parity_is_not_vacuous():
    """With three conflicting tasks two different orders give different updates, so the parity
    test above really depends on matching the orders."""
    G = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-0.5, -1.0, 1.0]], dtype=torch.float64)
    outs = {tuple(pcgrad(G, generator=torch.Generator().manual_seed(s)).tolist()) for s in range(20)}
    assert len(outs) > 1


def test_pcgrad_without_conflicts_is_the_plain_sum():
    G = torch.tensor([[1.0, 0.5], [0.2, 1.0], [0.3, 0.3]])
    assert torch.allclose(pcgrad(G), G.sum(0))


def test_pcgrad_projected_gradients_no_longer_conflict_for_two_tasks():
    g = torch.tensor([[2.0, 1.0], [-1.0, 0.5]])
    out = pcgrad(g, order="fixed")
    # each projected gradient is orthogonal to the other's original: the sum has a non-negative
    # inner product with both originals
    assert out @ g[0] >= -1e-6 and out @ g[1] >= -1e-6
    assert g.sum(0) @ g[1] < 0  # while the plain sum conflicts with task 1


def test_cosine_matrix():
    c = cosine_matrix(torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.0, 3.0]]))
    assert torch.allclose(c, torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_gradnorm_alpha_zero_equalises_the_weighted_gradient_norms():
    gn = GradNorm(3, alpha=0.0, lr=0.01)
    norms = torch.tensor([1.0, 2.0, 4.0])
    losses = torch.tensor([1.0, 1.0, 1.0])
    for _ in range(2000):
        w = gn.update(losses, norms)
    assert w.sum().item() == pytest.approx(3.0, abs=1e-5)
    G = w * norms
    assert (G.max() / G.min()).item() < 1.05  # equal up to the step size's chatter
    assert w[0] > w[1] > w[2]                  # the small-gradient task is weighted up


def test_gradnorm_favours_the_task_that_trains_slower():
    gn = GradNorm(2, alpha=1.5, lr=0.01)
    norms = torch.tensor([1.0, 1.0])
    gn.update(torch.tensor([2.0, 2.0]), norms)             # L(0)
    for _ in range(200):
        w = gn.update(torch.tensor([0.5, 1.8]), norms)       # task 0 trained fast, task 1 slow
    assert w[1] > w[0]
    assert w.sum().item() == pytest.approx(2.0, abs=1e-5)


def test_uncertainty_weighting_minimum_is_at_log_loss():
    uw = UncertaintyWeighting(2)
    losses = torch.tensor([0.5, 2.0])
    opt = torch.optim.SGD(uw.parameters(), lr=0.1)
    for _ in range(2000):
        opt.zero_grad()
        uw(losses).backward()
        opt.step()
    assert uw.log_vars.detach().tolist() == pytest.approx([math.log(0.5), math.log(2.0)], abs=1e-3)
    assert uw.weights().tolist() == pytest.approx([2.0, 0.5], rel=1e-3)  # 1 / L


def test_uncertainty_weighting_total_loss_formula():
    uw = UncertaintyWeighting(2)
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    assert uw(torch.tensor([1.0, 4.0])).item() == pytest.approx(1.0 + 0.0 + 2.0 + math.log(2.0))
    with pytest.raises(ValueError):
        uw(torch.tensor([1.0]))
