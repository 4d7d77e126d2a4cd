"""Copy mini-former weights into Hugging Face ``transformers`` models (the parity oracles).

A :func:`~nlpcurriculum.models.miniformer.llama_like` mini-former is the same function as a
``LlamaForCausalLM`` (Touvron et al. 2023, arXiv:2302.13971) of the same dimensions, and a
:func:`~nlpcurriculum.models.miniformer.gpt2_like` one the same as a ``GPT2LMHeadModel``; only
the parameter layout differs. The maps below are the whole difference:

=====================  ==================================  =======================================
ours                   Llama                               GPT-2
=====================  ==================================  =======================================
tok_emb                model.embed_tokens                  transformer.wte
position (learned)     (RoPE has no weights)               transformer.wpe
attn.qkv (fused rows)  cat(q_proj, k_proj, v_proj)         attn.c_attn (Conv1D: stored transposed)
attn.proj              o_proj                              attn.c_proj (transposed)
mlp.gate_up (fused)    cat(gate_proj, up_proj)             --
mlp.up / mlp.down      -- / down_proj                      mlp.c_fc / mlp.c_proj (transposed)
norm1 / norm2          input_layernorm / post_attention_.. ln_1 / ln_2
norm_f, lm_head        model.norm, lm_head                 transformer.ln_f, lm_head (tied)
=====================  ==================================  =======================================

GPT-2's ``Conv1D`` stores weights as ``(in, out)``, the transpose of ``nn.Linear``'s
``(out, in)``.

``transformers`` is an optional dependency (the ``oracles`` extra); it is imported lazily.

Left out: loading HF checkpoints into a mini-former (the reverse maps), other architectures.
"""

from __future__ import annotations

from typing import Any

import torch

from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig

__all__ = ["hf_gpt2_config", "hf_llama_config", "to_hf_gpt2", "to_hf_llama"]


def _require(cfg: MiniFormerConfig, **expected: Any) -> None:
    wrong = {k: getattr(cfg, k) for k, v in expected.items() if getattr(cfg, k) != v}
    if wrong:
        raise ValueError(f"config is not convertible: needs {expected}, has {wrong}")


def hf_llama_config(cfg: MiniFormerConfig) -> Any:
    """A ``transformers.LlamaConfig`` with the dimensions of a llama-like mini-former config."""
    from transformers import LlamaConfig

    _require(cfg, position="rope", norm="rmsnorm", mlp="swiglu", bias=False, causal=True)
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
        tie_word_embeddings=cfg.tie_weights,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=cfg.dropout,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=None,
    )


def hf_gpt2_config(cfg: MiniFormerConfig) -> Any:
    """A ``transformers.GPT2Config`` with the dimensions of a gpt2-like mini-former config."""
    from transformers import GPT2Config

    _require(
        cfg, position="learned", norm="layernorm", mlp="gelu_tanh", bias=True, tie_weights=True, causal=True
    )
    if cfg.n_kv_heads != cfg.n_heads:
        raise ValueError("GPT-2 has no grouped-query attention: n_kv_heads must equal n_heads")
    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_seq_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_ff,
        activation_function="gelu_new",  # the tanh approximation
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.norm_eps,
        tie_word_embeddings=True,
        bos_token_id=None,  # GPT-2's 50256 would fall outside a small vocabulary
        eos_token_id=None,
    )


@torch.no_grad()
def to_hf_llama(model: MiniFormer) -> Any:
    """Build a ``transformers.LlamaForCausalLM`` holding a copy of ``model``'s weights."""
    from transformers import LlamaForCausalLM

    cfg = model.config
    hf = LlamaForCausalLM(hf_llama_config(cfg)).eval()
    q_dim, kv_dim = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    hf.model.embed_tokens.weight.copy_(model.tok_emb.weight)
    for ours, theirs in zip(model.blocks, hf.model.layers):
        q, k, v = ours.attn.qkv.weight.split([q_dim, kv_dim, kv_dim], dim=0)  # rows [W_q; W_k; W_v]
        theirs.self_attn.q_proj.weight.copy_(q)
        theirs.self_attn.k_proj.weight.copy_(k)
        theirs.self_attn.v_proj.weight.copy_(v)
        theirs.self_attn.o_proj.weight.copy_(ours.attn.proj.weight)
        gate, up = ours.mlp.gate_up.weight.chunk(2, dim=0)  # rows [W_gate; W_up]
        theirs.mlp.gate_proj.weight.copy_(gate)
        theirs.mlp.up_proj.weight.copy_(up)
        theirs.mlp.down_proj.weight.copy_(ours.mlp.down.weight)
        theirs.input_layernorm.weight.copy_(ours.norm1.weight)
        theirs.post_attention_layernorm.weight.copy_(ours.norm2.weight)
    hf.model.norm.weight.copy_(model.norm_f.weight)
    if not cfg.tie_weights:
        hf.lm_head.weight.copy_(model.lm_head.weight)
    return hf


@torch.no_grad()
def to_hf_gpt2(model: MiniFormer) -> Any:
    """Build a ``transformers.GPT2LMHeadModel`` holding a copy of ``model``'s weights."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(hf_gpt2_config(model.config)).eval()
    t = hf.transformer
    t.wte.weight.copy_(model.tok_emb.weight)
    t.wpe.weight.copy_(model.position.weight)
    for ours, theirs in zip(model.blocks, t.h):
        theirs.ln_1.weight.copy_(ours.norm1.weight)
        theirs.ln_1.bias.copy_(ours.norm1.bias)
        theirs.attn.c_attn.weight.copy_(ours.attn.qkv.weight.T)  # Conv1D is (in, out)
        theirs.attn.c_attn.bias.copy_(ours.attn.qkv.bias)
        theirs.attn.c_proj.weight.copy_(ours.attn.proj.weight.T)
        theirs.attn.c_proj.bias.copy_(ours.attn.proj.bias)
        theirs.ln_2.weight.copy_(ours.norm2.weight)
        theirs.ln_2.bias.copy_(ours.norm2.bias)
        theirs.mlp.c_fc.weight.copy_(ours.mlp.up.weight.T)
        theirs.mlp.c_fc.bias.copy_(ours.mlp.up.bias)
        theirs.mlp.c_proj.weight.copy_(ours.mlp.down.weight.T)
        theirs.mlp.c_proj.bias.copy_(ours.mlp.down.bias)
    t.ln_f.weight.copy_(model.norm_f.weight)
    t.ln_f.bias.copy_(model.norm_f.bias)
    return hf
