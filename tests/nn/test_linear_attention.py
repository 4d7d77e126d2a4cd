"""Linear-time attention: Performer against performer-pytorch and exact softmax attention,
Linformer and FNet against their definitions."""

import math

import torch

from nlpcurriculum.nn.linear_attention import (
    fnet_mixing,
    linformer_attention,
    orthogonal_features,
    performer_attention,
    softmax_attention,
)


def _qkv(T=64, d=16, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, T, d, generator=g) * scale for _ in range(3)]


def test_performer_equals_performer_pytorch_given_the_same_projection():
    from performer_pytorch.performer_pytorch import linear_attention, softmax_kernel

    q, k, v = _qkv()
    proj = orthogonal_features(32, 16, torch.Generator().manual_seed(1))
    theirs = linear_attention(softmax_kernel(q, projection_matrix=proj, is_query=True, eps=0.0),
                              softmax_kernel(k, projection_matrix=proj, is_query=False, eps=0.0), v)
    assert (performer_attention(q, k, v, proj) - theirs).abs().max().item() < 1e-5


def test_performer_error_against_softmax_falls_as_features_grow():
    q, k, v = _qkv(T=128, d=16)
    exact = softmax_attention(q, k, v)
    errors = []
    for m in (8, 64, 1024):
        draws = [(performer_attention(q, k, v, orthogonal_features(m, 16, torch.Generator().manual_seed(s)))
                  - exact).norm() / exact.norm() for s in range(5)]
        errors.append(float(torch.stack(draws).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 4  # 128x the features: the error shrinks several-fold


def test_orthogonal_features_are_orthogonal_within_a_block_with_gaussian_norms():
    w = orthogonal_features(40, 16, torch.Generator().manual_seed(0))
    assert w.shape == (40, 16)
    unit = w[:16] / w[:16].norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, torch.eye(16), atol=1e-5)
    assert 2.0 < w.norm(dim=1).mean() < 6.0  # chi(16) has mean ~3.9


def test_linformer_with_identity_projections_is_softmax_attention():
    q, k, v = _qkv(T=32)
    eye = torch.eye(32)
    assert torch.allclose(linformer_attention(q, k, v, eye, eye), softmax_attention(q, k, v), atol=1e-6)


def test_fnet_mixing_is_the_real_part_of_the_two_dimensional_dft():
    x = torch.randn(1, 6, 4, dtype=torch.float64)
    T, d = 6, 4
    seq = torch.exp(-2j * math.pi * torch.outer(torch.arange(T), torch.arange(T)) / T)
    hid = torch.exp(-2j * math.pi * torch.outer(torch.arange(d), torch.arange(d)) / d)
    want = (seq.to(torch.complex128) @ x[0].to(torch.complex128) @ hid.to(torch.complex128)).real
    assert torch.allclose(fnet_mixing(x)[0], want, atol=1e-10)
