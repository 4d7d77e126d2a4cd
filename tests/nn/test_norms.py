"""LayerNorm and RMSNorm by hand vs torch's fused kernels, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.nn.norms import IdentityNorm, LayerNorm, RMSNorm, build_norm

ATOL = 1e-5  # fp32: mean/var reductions over 32 features, values of order 1-10


def _randomize(norm):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn_like(p))
    return norm


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch_forward_and_backward(bias):
    norm = _randomize(LayerNorm(32, eps=1e-5, bias=bias))
    x = (torch.randn(3, 5, 32) * 4 + 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y = norm(x)
    y_ref = F.layer_norm(x_ref, (32,), norm.weight, norm.bias, eps=1e-5)
    assert torch.allclose(y, y_ref, atol=ATOL, rtol=0)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4, rtol=0)


def test_rmsnorm_matches_torch_forward_and_backward():
    norm = _randomize(RMSNorm(32, eps=1e-6))
    x = (torch.randn(3, 5, 32) * 4 + 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y = norm(x)
    y_ref = F.rms_norm(x_ref, (32,), norm.weight, eps=1e-6)
    assert torch.allclose(y, y_ref, atol=ATOL, rtol=0)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4, rtol=0)


def test_norms_hand_worked_example():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    ln = LayerNorm(4, eps=0.0)
    assert torch.allclose(ln(x), torch.tensor([-1.069, -0.535, 0.0, 1.604]), atol=1e-3)
    rms = RMSNorm(4, eps=0.0)
    assert torch.allclose(rms(x), torch.tensor([0.283, 0.566, 0.849, 1.697]), atol=1e-3)


def test_rmsnorm_output_has_unit_root_mean_square_and_layernorm_zero_mean():
    x = torch.randn(10, 64) * 7 + 3
    assert torch.allclose(RMSNorm(64)(x).pow(2).mean(-1), torch.ones(10), atol=1e-4)
    assert torch.allclose(LayerNorm(64)(x).mean(-1), torch.zeros(10), atol=1e-5)


def test_build_norm_by_name():
    assert isinstance(build_norm("layernorm", 8), LayerNorm)
    assert build_norm("rmsnorm", 8, eps=1e-3).eps == 1e-3
    assert build_norm("layernorm", 8, bias=False).bias is None
    x = torch.randn(2, 8)
    assert isinstance(build_norm("none", 8), IdentityNorm) and build_norm("none", 8)(x) is x
    with pytest.raises(ValueError, match="unknown norm"):
        build_norm("batchnorm", 8)


def test_rmsnorm_hand_backward_passes_gradcheck_and_matches_torch_weight_grad():
    from nlpcurriculum.nn.norms import rms_norm

    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm(a, b, 1e-6), (x, w))

    x32 = (torch.randn(4, 7, 16) * 3).requires_grad_()
    w32 = torch.randn(16, requires_grad=True)
    x_ref, w_ref = x32.detach().clone().requires_grad_(), w32.detach().clone().requires_grad_()
    g = torch.randn(4, 7, 16)
    (rms_norm(x32, w32, 1e-6) * g).sum().backward()
    (F.rms_norm(x_ref, (16,), w_ref, eps=1e-6) * g).sum().backward()
    assert torch.allclose(w32.grad, w_ref.grad, atol=1e-4, rtol=1e-5)
    assert torch.allclose(x32.grad, x_ref.grad, atol=1e-4, rtol=1e-5)
