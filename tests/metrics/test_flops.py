"""FLOP counting: torch's counter against the dense-matmul rule."""

import torch

from nlpcurriculum.metrics.flops import count_flops, dense_train_flops


def test_linear_forward_and_backward_by_hand():
    layer = torch.nn.Linear(4, 3, bias=False)
    x = torch.randn(5, 4, requires_grad=True)  # the input gradient is a matmul too
    assert count_flops(lambda: layer(x)) == 2 * 5 * 4 * 3  # forward: 120
    assert count_flops(lambda: layer(x).sum().backward()) == 6 * 5 * 12  # + input and weight grads
    assert dense_train_flops(5, 12) == 360


def test_two_layer_mlp_matches_the_rule():
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(16, 8, bias=False))
    x = torch.randn(10, 8, requires_grad=True)
    weights = sum(p.numel() for p in mlp.parameters())
    assert count_flops(lambda: mlp(x).sum().backward()) == dense_train_flops(10, weights)
    assert count_flops(lambda: None) == 0  # nothing ran
