"""Activations and feed-forward blocks by hand vs torch."""

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.nn.activations import (
    MLP, SwiGLU, build_activation, build_mlp, gelu, relu, silu, silu_derivative, swiglu,
    swiglu_hidden,
)

ATOL = 1e-6  # fp32 elementwise


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    x = torch.linspace(-8, 8, 2001)
    assert torch.allclose(gelu(x, approximate), F.gelu(x, approximate=approximate), atol=ATOL, rtol=0)


def test_gelu_variants_hand_worked_example_and_differ():
    one = torch.tensor([1.0])
    assert float(gelu(one)) == pytest.approx(0.8413, abs=1e-4)
    assert float(gelu(one, "tanh")) == pytest.approx(0.8412, abs=1e-4)
    x = torch.linspace(-4, 4, 801)
    gap = (gelu(x) - gelu(x, "tanh")).abs().max()
    assert 0 < gap < 1e-3  # close, but not the same function
    with pytest.raises(ValueError):
        gelu(x, "fast")


def test_silu_and_relu_match_torch():
    x = torch.linspace(-8, 8, 2001)
    assert torch.allclose(silu(x), F.silu(x), atol=ATOL, rtol=0)
    assert torch.equal(relu(x), F.relu(x))
    assert float(silu(torch.tensor(1.0))) == pytest.approx(0.7311, abs=1e-4)


def test_silu_derivative_matches_torch_autograd_and_silu_backward():
    # torch is the oracle: autograd through F.silu and its one-pass backward kernel, fp32
    x = torch.linspace(-12, 12, 4001, requires_grad=True)
    (oracle,) = torch.autograd.grad(F.silu(x), x, torch.ones_like(x))
    ours = silu_derivative(x.detach())
    assert torch.allclose(ours, oracle, atol=ATOL, rtol=0)
    dy = torch.randn(4001, generator=torch.Generator().manual_seed(0))
    kernel = torch.ops.aten.silu_backward(dy, x.detach())
    assert torch.allclose(dy * ours, kernel, atol=4 * ATOL, rtol=0)
    # hand-worked values: slope 0.5 at 0, 0.9277 at 1; a wrong formula (sigmoid alone,
    # or s (1 - s)) is off by > 0.1 at x = 1
    assert float(silu_derivative(torch.tensor(0.0))) == pytest.approx(0.5, abs=1e-7)
    assert float(silu_derivative(torch.tensor(1.0))) == pytest.approx(0.9277, abs=1e-4)


def test_swiglu_uses_no_torch_silu_kernel(monkeypatch):
    """The by-hand SwiGLU must not call F.silu or aten.silu_backward: poison both and run it."""
    def poisoned(*args, **kwargs):
        raise AssertionError("torch's SiLU kernel was called")

    monkeypatch.setattr(F, "silu", poisoned)
    monkeypatch.setattr(torch, "silu", poisoned, raising=False)
    gate_up = torch.randn(2, 3, 8, requires_grad=True)
    out = swiglu(gate_up)
    out.backward(torch.ones_like(out))
    assert gate_up.grad is not None and torch.isfinite(gate_up.grad).all()


def test_swiglu_values_and_gradients_match_torch_kernels():
    """Oracle: torch's F.silu forward and autograd through it (which runs aten.silu_backward)."""
    torch.manual_seed(0)
    gate_up = torch.randn(4, 7, 2 * 33) * 4
    a = gate_up.clone().requires_grad_(True)
    b = gate_up.clone().requires_grad_(True)
    grad = torch.randn(4, 7, 33)
    out_a = swiglu(a)
    gate, up = b.chunk(2, dim=-1)
    out_b = F.silu(gate) * up
    assert torch.allclose(out_a, out_b, atol=4 * ATOL, rtol=1e-6)
    (ga,) = torch.autograd.grad(out_a, a, grad)
    (gb,) = torch.autograd.grad(out_b, b, grad)
    assert torch.allclose(ga, gb, atol=4 * ATOL, rtol=1e-6)


def test_swiglu_is_the_gated_formula_with_fused_gate_and_up():
    torch.manual_seed(0)
    ff = SwiGLU(16, 24)
    x = torch.randn(2, 3, 16)
    w_gate, w_up = ff.gate_up.weight[:24], ff.gate_up.weight[24:]
    expected = ff.down(F.silu(x @ w_gate.T) * (x @ w_up.T))
    assert torch.allclose(ff(x), expected, atol=ATOL, rtol=0)


def test_swiglu_backward_matches_autograd_of_the_by_hand_formula():
    torch.manual_seed(0)
    gate_up = torch.randn(2, 5, 2 * 24, requires_grad=True)
    grad = torch.randn(2, 5, 24)
    (ours,) = torch.autograd.grad(swiglu(gate_up), gate_up, grad)
    gate, up = gate_up.chunk(2, dim=-1)
    (by_hand,) = torch.autograd.grad(silu(gate) * up, gate_up, grad)  # autograd through x * sigmoid(x)
    assert ours.shape == gate_up.shape and ours.is_contiguous()
    assert torch.allclose(ours, by_hand, atol=ATOL, rtol=0)


def test_swiglu_passes_gradcheck_and_rejects_an_odd_width():
    gate_up = torch.randn(3, 2 * 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swiglu, (gate_up,))
    with pytest.raises(ValueError, match="even last dim"):
        swiglu(torch.randn(3, 5))


def test_swiglu_hidden_matches_plain_mlp_parameter_count():
    assert swiglu_hidden(64) == 192
    d = 96
    plain = sum(p.numel() for p in build_mlp("gelu", d, 4 * d, bias=False).parameters())
    gated = sum(p.numel() for p in build_mlp("swiglu", d, swiglu_hidden(d, multiple_of=1), bias=False).parameters())
    assert abs(gated - plain) / plain < 0.01


@pytest.mark.parametrize("kind", ["relu", "gelu", "gelu_tanh", "silu", "swiglu"])
def test_build_mlp_shapes(kind):
    ff = build_mlp(kind, 8, 32)
    assert isinstance(ff, SwiGLU if kind == "swiglu" else MLP)
    assert ff(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    assert ff.down.in_features == 32  # the hidden activation is the down projection's input


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown mlp"):
        build_mlp("geglu", 8, 32)
    with pytest.raises(ValueError, match="unknown activation"):
        build_activation("tanh")
