"""Attention-head statistics on hand-made maps whose answers are known."""

import math

import pytest
import torch

from nlpcurriculum.interpret.heads import (
    attention_entropy,
    head_js_matrix,
    js_divergence,
    mean_attention_distance,
    mean_pairwise_js,
    previous_token_weight,
)


def _uniform_causal(T: int) -> torch.Tensor:
    return torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]  # (T, T)


def _previous_token(T: int) -> torch.Tensor:
    w = torch.zeros(T, T)
    w[0, 0] = 1.0
    w[torch.arange(1, T), torch.arange(T - 1)] = 1.0  # row t puts all weight on t-1
    return w


def test_js_divergence_worked_examples():
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(js_divergence(p, q)) == pytest.approx(math.log(2), abs=1e-6)
    assert float(js_divergence(p, p)) == pytest.approx(0.0, abs=1e-7)
    r = torch.tensor([0.3, 0.7])
    assert float(js_divergence(r, q)) == pytest.approx(float(js_divergence(q, r)), abs=1e-7)


def test_head_js_matrix_is_symmetric_with_zero_diagonal_and_separates_different_heads():
    T = 6
    w = torch.stack([_uniform_causal(T), _previous_token(T), _previous_token(T)])[None]  # (1, 3, T, T)
    m = head_js_matrix(w)
    assert torch.allclose(m, m.T, atol=1e-7)
    assert torch.allclose(torch.diagonal(m), torch.zeros(3), atol=1e-7)
    assert float(m[1, 2]) == pytest.approx(0.0, abs=1e-7)  # identical heads
    assert float(m[0, 1]) > 0.1
    assert mean_pairwise_js(w) == pytest.approx(float(m.sum()) / 6, abs=1e-7)


def test_entropy_distance_and_previous_token_weight_of_known_maps():
    T = 5
    uniform, prev = _uniform_causal(T), _previous_token(T)
    w = torch.stack([uniform, prev])[None]  # (1, 2, T, T)
    expected_entropy = sum(math.log(t + 1) for t in range(1, T)) / (T - 1)
    ent = attention_entropy(w)
    assert float(ent[0]) == pytest.approx(expected_entropy, abs=1e-6)
    assert float(ent[1]) == pytest.approx(0.0, abs=1e-6)
    dist = mean_attention_distance(w)
    assert float(dist[0]) == pytest.approx(sum(t / 2 for t in range(1, T)) / (T - 1), abs=1e-6)
    assert float(dist[1]) == pytest.approx(1.0, abs=1e-6)
    prev_w = previous_token_weight(w)
    assert float(prev_w[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(prev_w[0]) == pytest.approx(sum(1 / (t + 1) for t in range(1, T)) / (T - 1), abs=1e-6)


def test_rejects_weights_of_the_wrong_shape():
    with pytest.raises(ValueError, match="expected attention weights"):
        head_js_matrix(torch.ones(3, 3))
