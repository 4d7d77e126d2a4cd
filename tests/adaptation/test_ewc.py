"""EWC's diagonal Fisher and penalty against hand computations on tiny models."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlpcurriculum.adaptation.ewc import EWC, diagonal_fisher


def _softmax_model(seed: int = 0, d: int = 3, k: int = 3) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, k)


def _hand_fisher(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, kind: str):
    """d log softmax(Wx + b)_c / dW = (e_c - p) x^T, d/db = e_c - p; squared, weighted, averaged."""
    W = torch.zeros_like(model.weight)
    b = torch.zeros_like(model.bias)
    with torch.no_grad():
        for xi, yi in zip(x, y):
            p = F.softmax(model(xi), dim=-1)
            classes = [(int(yi), 1.0)] if kind == "empirical" else [(c, float(p[c])) for c in range(p.shape[0])]
            for c, w in classes:
                e = torch.zeros_like(p)
                e[c] = 1.0
                g = e - p
                W += w * torch.outer(g, xi) ** 2
                b += w * g ** 2
    return W / len(x), b / len(x)


@pytest.mark.parametrize("kind", ["true", "empirical"])
def test_fisher_of_a_softmax_regression_equals_the_hand_formula(kind):
    model = _softmax_model()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, generator=g), torch.randint(0, 3, (7,), generator=g)
    fisher = diagonal_fisher(lambda xi: F.log_softmax(model(xi), -1), dict(model.named_parameters()), x, y, kind)
    W, b = _hand_fisher(model, x, y, kind)
    torch.testing.assert_close(fisher["weight"], W, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fisher["bias"], b, atol=1e-6, rtol=1e-5)


def test_true_and_empirical_fisher_differ_and_a_batch_gradient_squared_is_not_the_fisher():
    model = _softmax_model()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 3, generator=g), torch.randint(0, 3, (16,), generator=g)
    params = dict(model.named_parameters())
    true = diagonal_fisher(lambda xi: F.log_softmax(model(xi), -1), params, x, y, "true")
    emp = diagonal_fisher(lambda xi: F.log_softmax(model(xi), -1), params, x, y, "empirical")
    assert (true["weight"] - emp["weight"]).abs().max() > 1e-3
    # the mutation a per-example Fisher guards against: the square of the mean batch gradient
    lp = F.log_softmax(model(x), -1)[torch.arange(16), y].mean()
    batch = torch.autograd.grad(lp, model.weight)[0] ** 2
    assert (batch - emp["weight"]).abs().max() > 1e-3


def test_docstring_example_fisher_one_and_penalty_half():
    w = nn.Parameter(torch.zeros(1))
    x = torch.tensor([[2.0]])

    def log_probs(xi):  # logistic: logits (0, w x)
        z = (xi * w).reshape(-1, 1)
        return F.log_softmax(torch.cat([torch.zeros_like(z), z], dim=1), dim=1)

    fisher = diagonal_fisher(log_probs, {"w": w}, x, torch.tensor([1]), "true")
    torch.testing.assert_close(fisher["w"], torch.tensor([1.0]))
    ewc = EWC(lam=4.0)
    ewc.consolidate({"w": w}, fisher)
    with torch.no_grad():
        w.fill_(0.5)
    torch.testing.assert_close(ewc.penalty({"w": w}), torch.tensor(0.5))


def test_penalty_sums_one_term_per_task_and_online_keeps_one():
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    ewc = EWC(lam=2.0)
    ewc.consolidate({"p": p}, {"p": torch.tensor([1.0, 3.0])})  # anchor (1, 2)
    with torch.no_grad():
        p.copy_(torch.tensor([0.0, 0.0]))
    ewc.consolidate({"p": p}, {"p": torch.tensor([2.0, 0.5])})  # anchor (0, 0)
    with torch.no_grad():
        p.copy_(torch.tensor([1.0, 1.0]))
    # lam/2 * [1*(0)^2 + 3*(1-2)^2 + 2*(1)^2 + 0.5*(1)^2] = 1 * (3 + 2.5)
    torch.testing.assert_close(ewc.penalty({"p": p}), torch.tensor(5.5))
    grad = torch.autograd.grad(ewc.penalty({"p": p}), p)[0]
    # lam * [F1 (p - a1) + F2 (p - a2)] = 2 * [(0, -3) + (2, 0.5)]
    torch.testing.assert_close(grad, torch.tensor([4.0, -5.0]))

    online = EWC(lam=2.0, online=True, gamma=0.5)
    with torch.no_grad():
        p.copy_(torch.tensor([1.0, 2.0]))
    online.consolidate({"p": p}, {"p": torch.tensor([1.0, 3.0])})
    with torch.no_grad():
        p.copy_(torch.tensor([0.0, 0.0]))
    online.consolidate({"p": p}, {"p": torch.tensor([2.0, 0.5])})
    assert len(online.terms) == 1
    torch.testing.assert_close(online.terms[0][0]["p"], torch.tensor([2.5, 2.0]))  # 0.5 * F1 + F2
    with torch.no_grad():
        p.copy_(torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(online.penalty({"p": p}), torch.tensor(4.5))  # 1 * (2.5 + 2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="lambda"):
        EWC(-1.0)
    with pytest.raises(ValueError, match="gamma"):
        EWC(1.0, online=True, gamma=0.0)
    model = _softmax_model()
    with pytest.raises(ValueError, match="fisher kind"):
        diagonal_fisher(lambda xi: model(xi), dict(model.named_parameters()), torch.zeros(1, 3),
                        torch.zeros(1, dtype=torch.long), "fake")
