"""Whole-model parity: our llama-like / gpt2-like mini-formers against transformers' Llama and GPT-2
with the same weights, for logits and for gradients."""

import pytest
import torch

from nlpcurriculum.models.hf_interop import to_hf_gpt2, to_hf_llama
from nlpcurriculum.models.miniformer import build_model, gpt2_like, llama_like, tiny

LOGIT_ATOL = 1e-5  # fp32, 2-layer models, logits of order 1


def _perturb_norms(model):
    # norm gains start at exactly 1; make them matter so a mis-mapped norm would be caught
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("n_kv_heads", [4, 2])
@pytest.mark.parametrize("tie_weights", [False, True])
def test_llama_like_matches_transformers_llama(n_kv_heads, tie_weights):
    torch.manual_seed(0)
    model = _perturb_norms(build_model(llama_like(vocab_size=97, n_layers=2, n_kv_heads=n_kv_heads, tie_weights=tie_weights))).eval()
    hf = to_hf_llama(model)
    idx = torch.randint(0, 97, (2, 21))
    ours, ref = model(idx).logits, hf(idx).logits
    assert torch.allclose(ours, ref, atol=LOGIT_ATOL, rtol=0)


def test_gpt2_like_matches_transformers_gpt2():
    torch.manual_seed(0)
    model = build_model(gpt2_like(vocab_size=97, n_layers=2))
    with torch.no_grad():  # biases start at 0; make them matter too
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(std=0.1)
    model = _perturb_norms(model).eval()
    hf = to_hf_gpt2(model)
    idx = torch.randint(0, 97, (2, 21))
    assert torch.allclose(model(idx).logits, hf(idx).logits, atol=LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("T", [16, 80])  # one block of query rows in training attention; two
def test_llama_like_gradients_match_transformers_llama(T):
    torch.manual_seed(0)
    model = _perturb_norms(build_model(llama_like(vocab_size=97, n_layers=2, max_seq_len=T)))
    hf = to_hf_llama(model)
    idx = torch.randint(0, 97, (2, T))
    model(idx[:, :-1], targets=idx[:, 1:]).loss.backward()
    hf(idx, labels=idx).loss.backward()  # transformers shifts the labels itself
    C, H = model.config.d_model, model.config.d_ff
    for layer, ref in zip(model.blocks, hf.model.layers, strict=True):
        ours = {
            "q": layer.attn.qkv.weight.grad[:C], "k": layer.attn.qkv.weight.grad[C : 2 * C],
            "v": layer.attn.qkv.weight.grad[2 * C :], "o": layer.attn.proj.weight.grad,
            "gate": layer.mlp.gate_up.weight.grad[:H], "up": layer.mlp.gate_up.weight.grad[H:],
            "down": layer.mlp.down.weight.grad,
        }
        theirs = {
            "q": ref.self_attn.q_proj, "k": ref.self_attn.k_proj, "v": ref.self_attn.v_proj,
            "o": ref.self_attn.o_proj, "gate": ref.mlp.gate_proj, "up": ref.mlp.up_proj,
            "down": ref.mlp.down_proj,
        }
        for name, grad in ours.items():
            assert torch.allclose(grad, theirs[name].weight.grad, atol=1e-6, rtol=1e-4), name
    assert torch.allclose(model.tok_emb.weight.grad, hf.model.embed_tokens.weight.grad, atol=1e-6, rtol=1e-4)


def test_conversion_rejects_other_architectures():
    model = build_model(tiny(vocab_size=50))  # learned positions, LayerNorm: not a Llama
    with pytest.raises(ValueError, match="not convertible"):
        to_hf_llama(model)
    with pytest.raises(ValueError, match="not convertible"):
        to_hf_gpt2(build_model(llama_like(vocab_size=50)))
