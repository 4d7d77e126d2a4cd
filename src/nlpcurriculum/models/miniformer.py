"""The mini-former: a decoder-only transformer language model built from :mod:`nlpcurriculum.nn`.

    idx (B, T) -> token embedding (+ absolute positions) -> n_layers x Block -> final norm
               -> lm_head -> logits (B, T, V)

This is the GPT recipe (Radford et al. 2018/2019; the architecture of Vaswani et al. 2017,
arXiv:1706.03762, decoder only, pre-norm). Every architectural choice the curriculum ablates is a
config string, not a code path: ``position`` ("none", "sinusoidal", "learned", "rope", "alibi"),
``norm`` ("layernorm", "rmsnorm", "none"), ``mlp`` ("relu", "gelu", "gelu_tanh", "silu",
"swiglu"), grouped-query attention through ``n_kv_heads``, tied or untied output embedding.
Two presets reproduce real architectures closely enough that the tests load our weights into
``transformers.GPT2LMHeadModel`` and ``transformers.LlamaForCausalLM`` and get the same logits:

- :func:`gpt2_like`: learned positions, LayerNorm, GELU (tanh), biases, tied embeddings.
- :func:`llama_like`: RoPE, RMSNorm, SwiGLU, no biases, untied (Touvron et al. 2023,
  arXiv:2302.13971).

Initialization follows GPT-2: weights ~ N(0, 0.02), and the two projections that write into the
residual stream (attention output, MLP down) scaled by ``1/sqrt(2 * n_layers)`` so the stream's
variance does not grow with depth.

Dimension legend: B batch, T tokens, C = d_model, V vocabulary, nh heads, T_k attended keys.

Each block is assembled from parts (:func:`build_block`: an attention module, a feed-forward
module, two norms), so a variant is a different part. Mixture-of-experts feed-forwards
(:class:`~nlpcurriculum.nn.moe.MoE`) are such a part: with ``moe`` set (a
:class:`~nlpcurriculum.nn.moe.MoEConfig`) they replace the MLP of the blocks it names; their
weighted auxiliary losses come back as ``ModelOutput.aux_loss`` (the trainer's ``lm_loss`` adds
it in training mode).

Left out: encoder and encoder-decoder models, the masked-LM head, generation loops (see the
decoding package), state-space layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.nn.activations import MLP_KINDS, build_mlp, swiglu_hidden
from nlpcurriculum.nn.attention import MultiHeadAttention, causal_mask
from nlpcurriculum.nn.block import Block
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.linear import Linear
from nlpcurriculum.nn.fast.fused_loss import linear_cross_entropy
from nlpcurriculum.models.checkpoint import CheckpointError, read_checkpoint
from nlpcurriculum.nn.moe import MoE, MoEConfig
from nlpcurriculum.nn.norms import NORMS, build_norm
from nlpcurriculum.nn.positional import POSITION_SCHEMES, LearnedPositions, build_position

__all__ = [
    "PRESETS",
    "MiniFormer",
    "MiniFormerConfig",
    "ModelOutput",
    "build_block",
    "build_model",
    "gpt2_like",
    "llama_like",
    "load_model",
    "medium",
    "preset",
    "record_activations",
    "small",
    "tiny",
]


@dataclass
class MiniFormerConfig:
    """Architecture of a :class:`MiniFormer` (maps 1:1 onto the ``model`` section of params.yaml).

    Build it from a plain mapping (a checkpoint's ``model_config``, a JSON file) with
    :meth:`from_dict`, which also reads the flat ``moe_*`` keys of older checkpoints.

    Attributes:
        vocab_size: V, number of token ids.
        d_model: C, width of the residual stream.
        n_layers: number of blocks.
        n_heads: query heads; must divide d_model.
        n_kv_heads: key/value heads (grouped-query when < n_heads); ``None`` -> n_heads.
        d_ff: MLP hidden size; ``None`` -> 4 * d_model, or the parameter-matched
            :func:`~nlpcurriculum.nn.activations.swiglu_hidden` for SwiGLU.
        max_seq_len: longest context the learned/sinusoidal tables cover (RoPE/ALiBi/none may
            run longer).
        position: position scheme name (see :mod:`nlpcurriculum.nn.positional`).
        norm: ``"layernorm"``, ``"rmsnorm"`` or ``"none"``.
        mlp: ``"relu"``, ``"gelu"``, ``"gelu_tanh"``, ``"silu"`` or ``"swiglu"``.
        tie_weights: share the token embedding with the output head.
        dropout: dropout on embeddings, residual branches and attention weights.
        bias: biases in linear layers and LayerNorm.
        norm_eps: epsilon of the norms.
        rope_base: RoPE / sinusoid base.
        causal: decoder (True) or bidirectional (False) attention by default.
        init_std: std of the normal weight init.
        fused_attention: use ``F.scaled_dot_product_attention`` when weights are not requested.
        moe: mixture-of-experts feed-forwards (:class:`~nlpcurriculum.nn.moe.MoEConfig`: experts,
            top_k, capacity, loss weights, which blocks); ``None`` (default) keeps every block's
            MLP dense.
    """

    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    d_ff: int | None = None
    max_seq_len: int = 128
    position: str = "learned"
    norm: str = "layernorm"
    mlp: str = "gelu"
    tie_weights: bool = True
    dropout: float = 0.0
    bias: bool = True
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    causal: bool = True
    init_std: float = 0.02
    fused_attention: bool = True
    moe: MoEConfig | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.d_ff is None:
            self.d_ff = swiglu_hidden(self.d_model) if self.mlp == "swiglu" else 4 * self.d_model
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}"
            )
        if self.d_ff < 1:
            raise ValueError(f"d_ff must be positive, got {self.d_ff}")
        if self.position not in POSITION_SCHEMES:
            raise ValueError(f"position must be one of {POSITION_SCHEMES}, got {self.position!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"rope needs an even head_dim, got {self.head_dim}")
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm_eps <= 0 or self.init_std <= 0 or self.rope_base <= 1:
            raise ValueError("norm_eps and init_std must be > 0 and rope_base > 1")
        if self.moe is not None:
            if not isinstance(self.moe, MoEConfig):
                raise TypeError(f"moe must be a MoEConfig or None, got {type(self.moe).__name__} "
                                "(build a config from a mapping with MiniFormerConfig.from_dict)")
            if any(i >= self.n_layers for i in self.moe.layers or []):
                raise ValueError(f"moe.layers must index blocks 0..{self.n_layers - 1}, "
                                 f"got {self.moe.layers}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MiniFormerConfig":
        """The config from a plain mapping, e.g. ``dataclasses.asdict(cfg)`` saved in a checkpoint.

        ``moe`` may be a mapping of :class:`~nlpcurriculum.nn.moe.MoEConfig` fields. Checkpoints
        written before ``moe`` was one nested config hold flat ``moe_*`` keys instead
        (``moe_experts`` 0 meaning dense); they are read into ``moe`` as well.
        """
        data = dict(data)
        legacy = {k: data.pop(k) for k in list(data) if k.startswith("moe_")}
        if legacy:
            if "moe" in data:
                raise ValueError(f"a model config has both 'moe' and the old flat keys {sorted(legacy)}")
            known = {f"moe_{f.name}" for f in fields(MoEConfig)}
            unknown = sorted(set(legacy) - known)
            if unknown:
                raise ValueError(f"unknown model config keys {unknown}")
            if legacy.get("moe_experts", 0):
                data["moe"] = {k.removeprefix("moe_"): v for k, v in legacy.items()}
        if isinstance(data.get("moe"), dict):
            data["moe"] = MoEConfig(**data["moe"])
        return cls(**data)

    @property
    def head_dim(self) -> int:
        """hs = d_model / n_heads."""
        return self.d_model // self.n_heads


@dataclass
class ModelOutput:
    """What :meth:`MiniFormer.forward` returns.

    Attributes:
        logits: ``(B, T, V)`` next-token scores (``None`` when asked for the loss only).
        loss: mean cross-entropy against ``targets`` (``None`` without targets).
        attentions: per layer ``(B, nh, T, T_k)`` attention weights when ``return_attn``.
        aux_loss: the MoE layers' weighted auxiliary losses, summed (``None`` without MoE).
    """

    logits: Tensor | None
    loss: Tensor | None = None
    attentions: list[Tensor] | None = field(default=None)
    aux_loss: Tensor | None = None


class MiniFormer(nn.Module):
    """Decoder-only transformer language model.

    Args:
        cfg: the architecture.
    """

    def __init__(self, cfg: MiniFormerConfig) -> None:
        super().__init__()
        self.config = cfg
        C = cfg.d_model
        self.tok_emb = nn.Embedding(cfg.vocab_size, C)
        self.position = build_position(
            cfg.position,
            d_model=C,
            n_heads=cfg.n_heads,
            max_seq_len=cfg.max_seq_len,
            base=cfg.rope_base,
        )
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(build_block(cfg, i) for i in range(cfg.n_layers))
        self.norm_f = build_norm(cfg.norm, C, cfg.norm_eps, bias=cfg.bias)
        self.lm_head = Linear(C, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # residual-branch outputs: shrink so 2 * n_layers additions keep the stream's variance flat
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))
            for mlp in block.mlp.experts if isinstance(block.mlp, MoE) else [block.mlp]:
                nn.init.normal_(mlp.down.weight, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))
        if cfg.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one (V, C) matrix reads and writes tokens

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def num_params(self, non_embedding: bool = False) -> int:
        """Count parameters (shared tensors once).

        Args:
            non_embedding: leave out the token embedding and a learned position table (Kaplan et
                al. 2020's N). An untied ``lm_head`` is counted either way: it is a real matmul.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if isinstance(self.position, LearnedPositions):
                n -= self.position.weight.numel()
        return n

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        return_attn: bool = False,
        kv_cache: KVCache | None = None,
        padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        ignore_index: int = -100,
        return_logits: bool = True,
    ) -> ModelOutput:
        """Run the model.

        Args:
            idx: token ids, ``(B, T)`` int64.
            targets: next-token ids, ``(B, T)``; positions equal to ``ignore_index`` are skipped.
            return_attn: also return every layer's attention weights (uses the by-hand path).
            kv_cache: a :class:`~nlpcurriculum.nn.kv_cache.KVCache` with ``n_layers`` slots;
                ``idx`` then holds only the new tokens, placed after those already cached.
            padding_mask: ``(B, T_k)`` bool, True for real tokens.
            attn_mask: bool ``(T, T_k)`` or ``(B, T, T_k)`` replacing the causal mask (e.g. a
                prefix-LM mask).
            ignore_index: target id excluded from the loss.
            return_logits: with ``targets``, ``False`` computes the loss without ever holding
                the ``(B, T, V)`` logits
                (:func:`~nlpcurriculum.nn.fast.fused_loss.linear_cross_entropy`, faster;
                ``logits`` is then ``None``) when the head is a plain bias-free linear. The
                trainer's :func:`lm_loss` does this.

        Returns:
            A :class:`ModelOutput`.
        """
        if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"idx must be (B, T) token ids, got {idx.dtype} {tuple(idx.shape)}")
        B, T = idx.shape
        start = kv_cache.seq_len(0) if kv_cache is not None else 0
        if kv_cache is not None and kv_cache.n_layers != len(self.blocks):
            raise ValueError(f"kv_cache has {kv_cache.n_layers} layers, the model {len(self.blocks)}")
        positions = torch.arange(start, start + T, device=idx.device)  # (T,)
        self.position.ensure_length(start + T)  # Python ints: no device sync in the forward pass

        if attn_mask is None and kv_cache is not None and start > 0 and T > 1 and self.config.causal:
            # several new tokens after cached ones (speculative verification, chunked prefill):
            # the bottom-right causal mask, built once here rather than by every layer
            attn_mask = causal_mask(positions, torch.arange(start + T, device=idx.device))  # (T, T_k)
        x = self.tok_emb(idx)  # (B, T, C)
        x = self.drop(self.position.embed(x, positions))  # absolute schemes add here; others no-op
        attentions: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            x, w = block(
                x,
                position=self.position,
                positions=positions,
                attn_mask=attn_mask,
                padding_mask=padding_mask,
                kv_cache=kv_cache,
                layer_idx=i,
                need_weights=return_attn,
            )
            if return_attn:
                attentions.append(w)
        h = self.norm_f(x)  # (B, T, C)
        if targets is not None and targets.shape != (B, T):
            raise ValueError(f"targets must be {(B, T)}, got {tuple(targets.shape)}")
        # the fused loss reads the head's weight itself: only for a plain, bias-free head (an
        # adapter that wraps or subclasses the head keeps its own forward)
        plain_head = type(self.lm_head) in (Linear, nn.Linear) and self.lm_head.bias is None
        if targets is not None and not return_logits and plain_head:
            logits = None
            loss = linear_cross_entropy(h.reshape(B * T, -1), self.lm_head.weight,
                                        targets.reshape(B * T), ignore_index)
        else:
            logits = self.lm_head(h)  # (B, T, V)
            loss = None
            if targets is not None:
                loss = F.cross_entropy(
                    logits.view(B * T, -1), targets.reshape(B * T), ignore_index=ignore_index
                )  # (B*T, V) vs (B*T,)
        return ModelOutput(logits, loss, attentions if return_attn else None, self._moe_aux_loss())

    def _moe_aux_loss(self) -> Tensor | None:
        """Weighted sum of the MoE layers' auxiliary losses of the last forward pass."""
        moe, infos = self.config.moe, [b.mlp.last_routing for b in self.blocks if isinstance(b.mlp, MoE)]
        if not infos:
            return None
        return sum(moe.aux_weight * r.balance_loss + moe.z_weight * r.z_loss for r in infos)


def build_block(cfg: MiniFormerConfig, i: int) -> Block:
    """Block ``i`` of the model ``cfg`` describes, from its parts: attention, feed-forward, norms.

    The feed-forward is an :class:`~nlpcurriculum.nn.moe.MoE` where ``cfg.moe`` names block
    ``i``, else the dense MLP of kind ``cfg.mlp``. The block itself knows nothing of either.
    """
    C = cfg.d_model
    attn = MultiHeadAttention(C, cfg.n_heads, cfg.n_kv_heads, bias=cfg.bias, dropout=cfg.dropout,
                              causal=cfg.causal, fused=cfg.fused_attention)
    if cfg.moe is not None and cfg.moe.applies_to(i):
        mlp: nn.Module = MoE.from_config(cfg.moe, C, cfg.d_ff, kind=cfg.mlp, bias=cfg.bias)
    else:
        mlp = build_mlp(cfg.mlp, C, cfg.d_ff, bias=cfg.bias)
    return Block(attn=attn, mlp=mlp,
                 norm1=build_norm(cfg.norm, C, cfg.norm_eps, bias=cfg.bias),
                 norm2=build_norm(cfg.norm, C, cfg.norm_eps, bias=cfg.bias),
                 dropout=cfg.dropout)


def build_model(cfg: MiniFormerConfig) -> MiniFormer:
    """Build a freshly initialised :class:`MiniFormer` (seed torch first for reproducibility)."""
    return MiniFormer(cfg)


def load_model(path: str | Path) -> MiniFormer:
    """Rebuild a :class:`MiniFormer` from a training checkpoint (its config and weights).

    Args:
        path: a file written by :func:`nlpcurriculum.training.checkpoint.save_checkpoint` with a
            ``model_config`` (the :class:`~nlpcurriculum.training.trainer.Trainer` always adds it).
            Configs of older checkpoints with flat ``moe_*`` keys are read too
            (:meth:`MiniFormerConfig.from_dict`).

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: missing / corrupt file, one without a model config, or one whose model
            config this code cannot build.
    """
    payload = read_checkpoint(path)
    if not payload.get("model_config"):
        raise CheckpointError(f"{path}: checkpoint has no model_config to rebuild the model from")
    try:
        cfg = MiniFormerConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its model_config does not build a MiniFormerConfig: {e}") from e
    model = MiniFormer(cfg)
    model.load_state_dict(payload["model"])
    return model.eval()


@contextmanager
def record_activations(model: MiniFormer) -> Iterator[dict[str, Tensor]]:
    """Capture per-layer activations of the forward passes run inside the ``with`` block.

    Forward hooks, so the model's code stays free of bookkeeping. Keys (for layer ``i``):
    ``"embed"`` (the block-0 input), ``"layer{i}.norm1"`` (attention input),
    ``"layer{i}.attn_out"`` (attention branch output), ``"layer{i}.mlp_hidden"`` (the
    post-activation hidden features, the input of the MLP's ``down`` projection),
    ``"layer{i}.residual"`` (the stream after the block). Values are detached; a later forward
    pass overwrites an earlier one.

    Example:
        >>> with record_activations(model) as acts:
        ...     model(idx)
        >>> acts["layer0.mlp_hidden"].shape  # (B, T, d_ff)

    Args:
        model: a :class:`MiniFormer`.

    Yields:
        The dict that fills up as the model runs.
    """
    acts: dict[str, Tensor] = {}
    handles = []

    def save(name: str, tensor: Tensor) -> None:
        acts[name] = tensor.detach()

    for i, block in enumerate(model.blocks):
        if i == 0:
            handles.append(block.register_forward_pre_hook(lambda m, args: save("embed", args[0])))
        handles += [
            block.norm1.register_forward_hook(lambda m, a, out, i=i: save(f"layer{i}.norm1", out)),
            block.attn.register_forward_hook(lambda m, a, out, i=i: save(f"layer{i}.attn_out", out[0])),
            block.register_forward_hook(lambda m, a, out, i=i: save(f"layer{i}.residual", out[0])),
        ]
        if not isinstance(block.mlp, MoE):  # an MoE's hidden features are per expert: not kept
            handles.append(block.mlp.down.register_forward_pre_hook(
                lambda m, args, i=i: save(f"layer{i}.mlp_hidden", args[0])
            ))
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


PRESETS: dict[str, dict] = {
    # sized for a laptop CPU; parameter counts at vocab_size=256 with the default (GPT-like) parts
    "tiny": dict(d_model=64, n_layers=4, n_heads=4, max_seq_len=128),  # ~0.22M
    "small": dict(d_model=128, n_layers=6, n_heads=4, max_seq_len=256),  # ~1.25M
    "medium": dict(d_model=256, n_layers=12, n_heads=8, max_seq_len=256),  # ~9.6M
}


def preset(name: str, **overrides) -> MiniFormerConfig:
    """A size preset (``"tiny"``, ``"small"``, ``"medium"``) with any field overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {tuple(PRESETS)}")
    return MiniFormerConfig(**{**PRESETS[name], **overrides})


def tiny(**overrides) -> MiniFormerConfig:
    """~0.2M parameters: 4 layers, d_model 64, 4 heads."""
    return preset("tiny", **overrides)


def small(**overrides) -> MiniFormerConfig:
    """~1.3M parameters: 6 layers, d_model 128, 4 heads."""
    return preset("small", **overrides)


def medium(**overrides) -> MiniFormerConfig:
    """~10M parameters: 12 layers, d_model 256, 8 heads."""
    return preset("medium", **overrides)


def llama_like(size: str = "tiny", **overrides) -> MiniFormerConfig:
    """Llama's parts at a preset size: RoPE, RMSNorm, SwiGLU, no biases, untied head.

    Args:
        size: ``"tiny"``, ``"small"`` or ``"medium"``.
        **overrides: any :class:`MiniFormerConfig` field (e.g. ``tie_weights=True``,
            ``n_kv_heads=2`` for grouped-query).
    """
    parts = dict(
        position="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False, norm_eps=1e-6
    )
    return preset(size, **{**parts, **overrides})


def gpt2_like(size: str = "tiny", **overrides) -> MiniFormerConfig:
    """GPT-2's parts at a preset size: learned positions, LayerNorm, GELU-tanh, biases, tied head.

    Args:
        size: ``"tiny"``, ``"small"`` or ``"medium"``.
        **overrides: any :class:`MiniFormerConfig` field.
    """
    parts = dict(
        position="learned", norm="layernorm", mlp="gelu_tanh", bias=True, tie_weights=True, norm_eps=1e-5
    )
    return preset(size, **{**parts, **overrides})

