"""The strided evaluation: every target scored once, the worked example, the collapse point."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.longcontext.strided_eval import _windows, collapse_point, documents, strided_loss
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model


def test_docstring_worked_example():
    assert _windows(7, 4, 2) == [(0, 4, 0), (2, 6, 2)]


@pytest.mark.parametrize("n, L, S", [(7, 4, 2), (50, 8, 8), (50, 8, 3), (9, 16, 4), (33, 8, 1)])
def test_every_target_is_scored_exactly_once(n, L, S):
    scored = []
    for begin, end, first in _windows(n, L, S):
        assert end - begin <= L
        scored += list(range(begin + first + 1, end + 1))  # targets are inputs shifted by one
    assert scored == list(range(1, n))


def test_documents_split_at_eos_and_drop_short_ones():
    stream = np.array([5, 6, 9, 7, 9, 1, 2, 3, 9])
    docs = documents(stream, eos_id=9, min_length=2)
    assert [d.tolist() for d in docs] == [[5, 6], [1, 2, 3]]


class _Counter(torch.nn.Module):
    """A 'model' whose logits favour token (input + 1): a known loss for the test."""

    def forward(self, x):
        class Out:
            logits = F.one_hot((x + 1) % 10, 10).float() * 2.0
        return Out()


def test_loss_matches_a_direct_computation_for_any_stride():
    doc = np.arange(30) % 10  # every next token is input + 1
    direct = float(F.cross_entropy(torch.tensor([[2.0 if j == 1 else 0.0 for j in range(10)]]),
                                   torch.tensor([1])))
    for S in (1, 3, 8):
        score = strided_loss(_Counter(), [doc], 8, S)
        assert score.n_targets == 29 and score.loss == pytest.approx(direct, abs=1e-6)


def test_strides_score_the_same_targets_at_different_cost():
    """A real model: no overlap and stride L/4 score the same targets; the overlap costs more."""
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2,
                                         max_seq_len=64, position="rope")).eval()
    doc = np.random.default_rng(0).integers(0, 10, 60)
    a, b = strided_loss(model, [doc], 16, 16), strided_loss(model, [doc], 16, 4)
    assert a.n_targets == b.n_targets == 59
    assert b.n_forward_tokens > a.n_forward_tokens
    with pytest.raises(ValueError, match="stride"):
        strided_loss(model, [doc], 16, 17)


def test_collapse_point_worked_example_and_edge_cases():
    assert collapse_point([32, 64, 128], [100, 150, 260], 2.0) == 128
    assert collapse_point([32, 64, 128], [100, 150, 190], 2.0) is None
    assert collapse_point([32, 64], [100, None], 2.0) == 64  # cannot run there: collapsed
    assert collapse_point([32, 64], [100, math.inf], 2.0) == 64
