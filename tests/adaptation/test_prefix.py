"""Prefix tuning against peft's prefix tuning (the oracle) on a weight-identical transformers
Llama, where the formulations match (RoPE, positions shifted by the prefix), and where they do not."""

import copy

import peft
import torch

from nlpcurriculum.adaptation.prefix import PrefixAttention, inject_prefix, prefix_parameters
from nlpcurriculum.models.hf_interop import to_hf_llama
from nlpcurriculum.models.miniformer import build_model, llama_like
from nlpcurriculum.nn.attention import MultiHeadAttention

PEFT_ATOL = 1e-5  # fp32, two layers: our attention vs transformers' eager/sdpa Llama


def _setup(n_kv_heads=4, n=5):
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=97, n_layers=2, max_seq_len=64,
                                   n_kv_heads=n_kv_heads)).eval()
    theirs = peft.get_peft_model(to_hf_llama(model).eval(),
                                 peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    cfg = model.config
    table = theirs.prompt_encoder["default"].embedding.weight.detach()  # (n, L * 2 * nkv * hs)
    layout = table.view(n, cfg.n_layers, 2, cfg.n_kv_heads, cfg.head_dim)
    return model, theirs, layout


def _ours(model, layout, n, shift=True):
    ours = copy.deepcopy(model)
    inject_prefix(ours, n, shift_positions=shift)
    with torch.no_grad():
        for layer, (pk, pv) in enumerate(prefix_parameters(ours)):
            pk.copy_(layout[:, layer, 0].transpose(0, 1))  # (nkv, n, hs)
            pv.copy_(layout[:, layer, 1].transpose(0, 1))
    return ours.eval()


def test_matches_peft_prefix_tuning():
    model, theirs, layout = _setup()
    ours = _ours(model, layout, 5)
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        a, b = ours(idx).logits, theirs(input_ids=idx).logits
        assert (a - b).abs().max() <= PEFT_ATOL
        assert (a - model(idx).logits).abs().max() > 1e-3  # the prefix matters
        # the by-hand path (weights kept) is the same function
        w = ours(idx, return_attn=True)
        assert (w.logits - a).abs().max() <= PEFT_ATOL
        assert w.attentions[0].shape == (2, 4, 12, 5 + 12)
        assert torch.allclose(w.attentions[0].sum(-1), torch.ones(2, 4, 12))


def test_unshifted_positions_do_not_match_peft():
    """Where the formulations differ: peft puts the real tokens at positions n .. n+T-1."""
    model, theirs, layout = _setup()
    ours = _ours(model, layout, 5, shift=False)
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        assert (ours(idx).logits - theirs(input_ids=idx).logits).abs().max() > 1e-3


def test_grouped_query_prefix_matches_peft():
    model, theirs, layout = _setup(n_kv_heads=2, n=3)
    ours = _ours(model, layout, 3)
    idx = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        assert (ours(idx).logits - theirs(input_ids=idx).logits).abs().max() <= PEFT_ATOL


def test_worked_example():
    attn = MultiHeadAttention(1, 1, bias=False)
    with torch.no_grad():
        attn.qkv.weight.copy_(torch.tensor([[0.0], [0.0], [1.0]]))  # q = k = 0, v = x
        attn.proj.weight.fill_(1.0)
    layer = PrefixAttention(attn, 1)
    with torch.no_grad():
        layer.prefix_k.zero_()
        layer.prefix_v.fill_(3.0)
        y, _ = layer(torch.ones(1, 1, 1))
    assert torch.allclose(y, torch.tensor([[[2.0]]]))


def test_only_prefix_trains_and_causality_holds():
    model, _, _ = _setup()
    inject_prefix(model, 4)
    for name, p in model.named_parameters():
        p.requires_grad_("prefix_" in name)
    idx = torch.randint(0, 97, (1, 10))
    out = model(idx).logits
    out.square().mean().backward()
    assert all((p.grad is not None) == ("prefix_" in n) for n, p in model.named_parameters())
    with torch.no_grad():  # changing a later token leaves earlier positions unchanged
        idx2 = idx.clone()
        idx2[0, 7] = (idx2[0, 7] + 1) % 97
        assert torch.equal(model(idx).logits[:, :7], model(idx2).logits[:, :7])
