"""The pre-norm residual block: residual identity, assembled parts, causality."""

import torch

from nlpcurriculum.nn.activations import build_mlp
from nlpcurriculum.nn.attention import MultiHeadAttention
from nlpcurriculum.nn.block import Block
from nlpcurriculum.nn.norms import LayerNorm, RMSNorm


def _block(C=16, nh=4, norm=LayerNorm):
    torch.manual_seed(0)
    return Block(MultiHeadAttention(C, nh), build_mlp("gelu", C, 4 * C), norm(C), norm(C))


def test_block_is_the_identity_when_its_branches_write_nothing():
    block = _block()
    with torch.no_grad():
        for lin in (block.attn.proj, block.mlp.down):
            lin.weight.zero_()
            lin.bias.zero_()
    x = torch.randn(2, 5, 16)
    y, _ = block(x)
    assert torch.equal(y, x)  # the residual path carries x through untouched


def test_block_is_pre_norm_residual_sum():
    block = _block(norm=RMSNorm)
    x = torch.randn(2, 5, 16)
    h = x + block.attn(block.norm1(x))[0]
    expected = h + block.mlp(block.norm2(h))
    y, w = block(x, need_weights=True)
    assert torch.allclose(y, expected, atol=1e-6)
    assert w.shape == (2, 4, 5, 5)


def test_single_block_is_causal():
    block = _block()
    x = torch.randn(1, 6, 16)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 16)
    assert torch.equal(block(x)[0][:, :4], block(x2)[0][:, :4])
