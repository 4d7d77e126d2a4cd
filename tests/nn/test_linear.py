"""``Linear`` is ``nn.Linear`` plus a ``decode`` slot, used only without autograd."""

import torch
from torch import nn

from nlpcurriculum.nn.linear import Linear


def test_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    ours, ref = Linear(16, 24), nn.Linear(16, 24)
    ref.load_state_dict(ours.state_dict())
    assert isinstance(ours, nn.Linear) and ours.decode is None
    assert set(ours.state_dict()) == {"weight", "bias"}
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_the_decode_slot_computes_the_product_only_when_autograd_is_off():
    layer = Linear(4, 3)
    calls = []

    def decode(x, bias):
        calls.append(x.shape)
        return torch.zeros(*x.shape[:-1], 3)

    layer.decode = decode
    x = torch.randn(2, 4)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))  # grad on
    with torch.no_grad():
        assert torch.equal(layer(x), torch.zeros(2, 3))
    assert calls == [(2, 4)]
    assert set(layer.state_dict()) == {"weight", "bias"}  # the slot is no part of the state
