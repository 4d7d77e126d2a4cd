"""Bottleneck adapters against the formula written out by hand and the zero-init identity (the
``adapters`` package, the natural oracle, does not install beside this project's transformers)."""

import copy

import torch
import torch.nn.functional as F

from nlpcurriculum.adaptation.bottleneck import BottleneckAdapter, inject_bottleneck
from nlpcurriculum.models.miniformer import build_model, llama_like

ATOL = 1e-6  # fp32, the same products in the same order


def _model():
    torch.manual_seed(0)
    return build_model(llama_like("tiny", vocab_size=97, n_layers=2, max_seq_len=64)).eval()


def test_worked_example():
    a = BottleneckAdapter(2, 1, "relu")
    with torch.no_grad():
        a.down.weight.copy_(torch.tensor([[1.0, 1.0]]))
        a.up.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    assert torch.equal(a(torch.tensor([1.0, 2.0])), torch.tensor([4.0, -1.0]))


def test_zero_init_is_identity_and_count():
    plain = _model()
    model = copy.deepcopy(plain)
    assert inject_bottleneck(model, 64, 8) == 4
    idx = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        assert torch.equal(model(idx).logits, plain(idx).logits)
    n = sum(p.numel() for name, p in model.named_parameters() if "adapter." in name)
    assert n == 4 * (2 * 64 * 8 + 8 + 64)


def test_block_matches_the_formula_by_hand():
    plain = _model()
    model = copy.deepcopy(plain)
    inject_bottleneck(model, 64, 8, activation="gelu")
    torch.manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BottleneckAdapter):
                m.up.weight.normal_(std=0.1)
                m.up.bias.normal_(std=0.1)
        x = torch.randn(2, 7, 64)
        blk, ref = model.blocks[1], plain.blocks[1]
        got, _ = blk(x, position=plain.position)

        def adapter(a, h):
            return h + F.gelu(h @ a.down.weight.T + a.down.bias) @ a.up.weight.T + a.up.bias

        y, _ = ref.attn(ref.norm1(x), position=plain.position)
        h = x + adapter(blk.attn.adapter, y)
        want = h + adapter(blk.mlp.adapter, ref.mlp(ref.norm2(h)))
        assert (got - want).abs().max() <= ATOL
        assert (got - ref(x, position=plain.position)[0]).abs().max() > 1e-3


def test_only_adapters_train():
    model = _model()
    inject_bottleneck(model, 64, 4, where=("mlp",))
    for name, p in model.named_parameters():
        p.requires_grad_("adapter." in name)
    model(torch.randint(0, 97, (1, 8))).logits.square().mean().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == ("adapter." in name), name
