"""Mixture-of-experts feed-forward: a router, top-k dispatch, capacity limits, balancing losses.

A mixture-of-experts (MoE) layer replaces the one feed-forward block of a transformer layer by
``E`` of them ("experts", each a complete :class:`~nlpcurriculum.nn.activations.MLP` or
:class:`~nlpcurriculum.nn.activations.SwiGLU`) and a *router* that sends every token to only
``k`` of them (Shazeer et al. 2017, arXiv:1701.06538). Parameters grow with ``E``; the compute
per token grows only with ``k``. That is the "sparse" in sparse models:

    logits = x W_r                          (N, E)   one score per expert
    p      = softmax(logits)                (N, E)   router probabilities
    top-k  : experts e_1..e_k, gates g_j    (N, k)
    y      = sum_j g_j * expert_{e_j}(x)    (N, C)   only k experts run per token

- ``k = 1`` (Switch Transformer, Fedus et al. 2021, arXiv:2101.03961): the gate is the chosen
  expert's probability ``p_e`` itself (not 1), so the router gets a gradient through it.
- ``k = 2`` (GShard, Lepikhin et al. 2020, arXiv:2006.16668; Mixtral, Jiang et al. 2024,
  arXiv:2401.04088): the two top probabilities renormalized to sum to 1 (``normalize_gates``).

**Capacity.** Hardware wants fixed shapes, so each expert processes at most
``capacity = ceil(capacity_factor * N * k / E)`` token slots per batch (``N`` tokens, ``N * k``
assignments, ``E`` experts: a factor of 1 is exactly the balanced share). Assignments beyond an
expert's capacity are *dropped*: they contribute zero, and since the layer sits on a residual
branch, a token whose every assignment is dropped passes through the layer unchanged
(Switch, section 2.2). Priority order when an expert overflows: all first choices before any
second choice (GShard); within one choice rank, ``"position"`` (the order of tokens in the
flattened batch, Switch's default) or ``"score"`` (higher router probability first: "batch
priority routing", Riquelme et al. 2021, arXiv:2106.05974). ``capacity_factor=None``: no limit.

**Auxiliary losses** (returned, weighted by the model):

- load balancing (Switch, eq. 4): ``E * sum_i f_i * P_i`` with ``f_i`` the fraction of the
  ``N * k`` assignments routed to expert ``i`` (before dropping; for ``k = 1`` the fraction of
  tokens, as in the paper) and ``P_i`` the mean router probability of expert ``i``. ``f`` is a
  count (no gradient); the gradient pushes ``P`` down where ``f`` is high. It is 1 for a
  perfectly uniform router and up to ``E`` for a collapsed one.
- router z-loss (ST-MoE, Zoph et al. 2022, arXiv:2202.08906, eq. 5):
  ``mean_n (logsumexp_i logits_ni)^2``, which keeps router logits small (numerically stable).

Worked example (``E = 2``, ``k = 1``, 4 tokens, probabilities of expert 0 = 0.9, 0.8, 0.4, 0.3):
tokens go to experts 0, 0, 1, 1, so ``f = (0.5, 0.5)``, ``P = (0.6, 0.4)``, balance loss
``2 * (0.5*0.6 + 0.5*0.4) = 1.0``; with ``capacity_factor = 0.5`` capacity is
``ceil(0.5 * 4 / 2) = 1``: with ``"position"`` priority each expert keeps its first token
(0 and 2; tokens 1 and 3 are dropped), with ``"score"`` its most confident one (token 0 with
0.9 > 0.8, token 3 with 0.7 > 0.6; tokens 1 and 2 are dropped).

Dispatch is vectorized: the kept assignments are sorted by expert, every expert runs once on
its contiguous slice, and the gated outputs are added back with ``index_add_``.

Dimension legend: B batch, T tokens, C = d_model, H expert hidden size, N = B*T tokens,
E experts, k experts per token, A = N*k assignments.

Left out: expert parallelism across devices (all-to-all), expert-choice routing (Zhou et al.
2022), shared experts (DeepSeekMoE), fine-grained experts, soft MoE, auxiliary-loss-free
balancing by router bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.nn.activations import build_mlp

__all__ = [
    "PRIORITIES",
    "MoE",
    "MoEConfig",
    "RoutingInfo",
    "expert_capacity",
    "load_balance_loss",
    "router_z_loss",
]

PRIORITIES = ("position", "score")


@dataclass
class MoEConfig:
    """Where a model uses mixture-of-experts feed-forwards, and how they route.

    A model config holds ``moe: MoEConfig | None`` (e.g.
    :class:`~nlpcurriculum.models.miniformer.MiniFormerConfig`); ``None`` keeps every
    feed-forward dense. In params.yaml it is the nested mapping ``model: {moe: {experts: 4,
    top_k: 2, ...}}``. Each MoE layer is a :class:`MoE` built from these settings; the experts'
    hidden size and kind are the model's ``d_ff`` and ``mlp``.

    Attributes:
        experts: E, experts per MoE layer (>= 1; one expert is the dense MLP plus a router).
        top_k: k, experts each token is routed to, ``1 <= k <= E``.
        capacity_factor: expert capacity factor (see the module docstring); ``None`` for no limit
            (no token dropped).
        aux_weight: weight of the load-balancing loss in the model's ``aux_loss``.
        z_weight: weight of the router z-loss in the model's ``aux_loss``.
        jitter: router input jitter during training, in ``[0, 1)`` (0: none).
        layers: which blocks get an MoE (``None``: all of them); the model checks the indices.
        priority: drop order within a choice rank when an expert overflows, ``"position"`` or
            ``"score"``.
    """

    experts: int
    top_k: int = 1
    capacity_factor: float | None = None
    aux_weight: float = 0.01
    z_weight: float = 0.0
    jitter: float = 0.0
    layers: list[int] | None = None
    priority: str = "position"

    def __post_init__(self) -> None:
        if not isinstance(self.experts, int) or self.experts < 1:
            raise ValueError(f"moe.experts must be an int >= 1, got {self.experts!r}")
        if not 1 <= self.top_k <= self.experts:
            raise ValueError(f"moe.top_k must be in [1, moe.experts={self.experts}], got {self.top_k}")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError(f"moe.capacity_factor must be > 0 or null, got {self.capacity_factor}")
        if min(self.aux_weight, self.z_weight) < 0 or not 0 <= self.jitter < 1:
            raise ValueError("moe.aux_weight and moe.z_weight must be >= 0, moe.jitter in [0, 1)")
        if any(i < 0 for i in self.layers or []):
            raise ValueError(f"moe.layers must be block indices >= 0, got {self.layers}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"moe.priority must be one of {PRIORITIES}, got {self.priority!r}")

    def applies_to(self, layer: int) -> bool:
        """Whether block ``layer`` gets an MoE."""
        return self.layers is None or layer in self.layers


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float | None) -> int:
    """Slots per expert: ``ceil(capacity_factor * n_tokens * top_k / n_experts)``.

    ``None`` means no limit (every assignment fits: ``n_tokens``, the most one expert can get,
    since a token picks an expert at most once).
    """
    if capacity_factor is None:
        return n_tokens
    return math.ceil(capacity_factor * n_tokens * top_k / n_experts)


def load_balance_loss(probs: Tensor, expert_idx: Tensor, n_experts: int) -> Tensor:
    """Switch Transformer's auxiliary loss ``E * sum_i f_i * P_i``.

    Args:
        probs: ``(N, E)`` router probabilities.
        expert_idx: ``(N, k)`` chosen experts (before capacity dropping).
        n_experts: E.

    Returns:
        Scalar; 1 for uniform routing, ``E`` when every token and all probability mass go to
        one expert. Differentiable through ``probs`` only.
    """
    counts = torch.bincount(expert_idx.reshape(-1), minlength=n_experts)  # (E,)
    f = counts.to(probs.dtype) / expert_idx.numel()  # fraction of assignments per expert
    P = probs.mean(dim=0)  # (E,) mean router probability
    return n_experts * torch.sum(f * P)


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE's router z-loss: ``mean_n logsumexp(logits_n)^2`` for ``(N, E)`` logits."""
    return torch.logsumexp(logits, dim=-1).square().mean()


@dataclass
class RoutingInfo:
    """What one MoE forward pass decided, for the loss and for the experiments.

    Attributes:
        balance_loss: Switch load-balancing loss (scalar, differentiable).
        z_loss: router z-loss (scalar, differentiable).
        expert_idx: ``(N, k)`` chosen experts per token, in rank order (detached).
        gates: ``(N, k)`` gate weights (detached).
        kept: ``(N, k)`` bool, False where the assignment was dropped for capacity.
        probs: ``(N, E)`` router probabilities (detached).
        counts: ``(E,)`` assignments routed to each expert (before dropping).
        capacity: slots per expert this batch.
    """

    balance_loss: Tensor
    z_loss: Tensor
    expert_idx: Tensor
    gates: Tensor
    kept: Tensor
    probs: Tensor
    counts: Tensor
    capacity: int

    @property
    def dropped_fraction(self) -> float:
        """Fraction of the ``N * k`` assignments dropped for capacity."""
        return float(1.0 - self.kept.float().mean())

    @property
    def tokens_fully_dropped(self) -> float:
        """Fraction of tokens none of whose assignments was kept (they skip the layer)."""
        return float((~self.kept.any(dim=-1)).float().mean())

    @property
    def processed(self) -> Tensor:
        """``(E,)`` token slots each expert actually computed (after dropping)."""
        E = self.counts.numel()
        return torch.bincount(self.expert_idx[self.kept], minlength=E)


class MoE(nn.Module):
    """A mixture-of-experts feed-forward block, ``(B, T, C) -> (B, T, C)``.

    A drop-in for the MLP of a :class:`~nlpcurriculum.nn.block.Block`; the routing decisions
    and auxiliary losses of the last call are in :attr:`last_routing`.

    Args:
        dim: C.
        hidden: H, each expert's hidden size.
        n_experts: E >= 1.
        top_k: k, experts per token, ``1 <= k <= E``.
        kind: the experts' feed-forward kind (see :func:`~nlpcurriculum.nn.activations.build_mlp`).
        bias: biases in the experts (the router never has one).
        capacity_factor: see the module docstring; ``None`` for no limit.
        jitter: multiplicative noise on the router input during training, ``x * U(1-eps, 1+eps)``
            (Switch, section 2.4); 0 to disable.
        normalize_gates: renormalize the top-k probabilities to sum to 1; default: when ``k > 1``.
        priority: ``"position"`` or ``"score"``, the drop order within a choice rank.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        n_experts: int,
        top_k: int = 1,
        *,
        kind: str = "gelu",
        bias: bool = True,
        capacity_factor: float | None = None,
        jitter: float = 0.0,
        normalize_gates: bool | None = None,
        priority: str = "position",
    ) -> None:
        super().__init__()
        if n_experts < 1:
            raise ValueError(f"n_experts must be >= 1, got {n_experts}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be > 0 or None, got {capacity_factor}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        self.n_experts, self.top_k = n_experts, top_k
        self.capacity_factor, self.jitter, self.priority = capacity_factor, jitter, priority
        self.normalize_gates = top_k > 1 if normalize_gates is None else normalize_gates
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList(build_mlp(kind, dim, hidden, bias=bias) for _ in range(n_experts))
        self.last_routing: RoutingInfo | None = None

    @classmethod
    def from_config(cls, cfg: MoEConfig, dim: int, hidden: int, *, kind: str = "gelu",
                    bias: bool = True) -> "MoE":
        """The layer ``cfg`` describes, its experts of ``kind`` with hidden size ``hidden``."""
        return cls(dim, hidden, cfg.experts, cfg.top_k, kind=kind, bias=bias,
                   capacity_factor=cfg.capacity_factor, jitter=cfg.jitter, priority=cfg.priority)

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Router scores for ``(N, C)`` tokens.

        Returns:
            ``(logits (N, E), probs (N, E), expert_idx (N, k), gates (N, k))``.
        """
        r_in = x
        if self.training and self.jitter > 0:
            noise = torch.empty_like(x).uniform_(1.0 - self.jitter, 1.0 + self.jitter)
            r_in = x * noise
        logits = self.router(r_in).float()  # (N, E); float32 softmax, as Switch recommends
        probs = logits.softmax(dim=-1)
        top_p, expert_idx = probs.topk(self.top_k, dim=-1)  # (N, k) each, best first
        gates = top_p / top_p.sum(dim=-1, keepdim=True) if self.normalize_gates else top_p
        return logits, probs, expert_idx, gates.to(x.dtype)

    def keep_mask(self, expert_idx: Tensor, gates: Tensor, capacity: int) -> Tensor:
        """``(N, k)`` bool: which assignments fit in their expert's ``capacity`` slots.

        Assignments are ranked choice rank first (every token's first choice before any
        second), then by token position or by gate (``priority``); each expert keeps its first
        ``capacity`` assignments in that order.
        """
        N, k = expert_idx.shape
        flat_expert = expert_idx.t().reshape(-1)  # (A,) rank-major: all 1st choices, then 2nd...
        order = torch.arange(N * k, device=expert_idx.device)
        if self.priority == "score":
            # descending gate, then (stable) choice rank: rank-major, best-scored first within
            by_score = torch.argsort(-gates.t().reshape(-1), stable=True)
            order = by_score[torch.argsort(order[by_score] // N, stable=True)]
        one_hot = F.one_hot(flat_expert[order], self.n_experts)  # (A, E) in priority order
        slot = ((one_hot.cumsum(dim=0) - 1) * one_hot).sum(dim=-1)  # (A,) place in its expert's queue
        kept_sorted = slot < capacity
        kept = torch.empty_like(kept_sorted)
        kept[order] = kept_sorted  # back to rank-major order
        return kept.view(k, N).t()  # (N, k)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C) -> (B, T, C)``; routing stored in :attr:`last_routing`."""
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # (N, C)
        N = tokens.shape[0]
        logits, probs, expert_idx, gates = self.route(tokens)
        capacity = expert_capacity(N, self.n_experts, self.top_k, self.capacity_factor)
        kept = self.keep_mask(expert_idx, gates.detach(), capacity)  # (N, k)

        # the kept assignments as flat lists, grouped by expert
        token_of = torch.arange(N, device=x.device).unsqueeze(1).expand(N, self.top_k)  # (N, k)
        a_token, a_expert, a_gate = token_of[kept], expert_idx[kept], gates[kept]  # (A_kept,)
        by_expert = torch.argsort(a_expert, stable=True)
        a_token, a_gate = a_token[by_expert], a_gate[by_expert]
        sizes = torch.bincount(a_expert, minlength=self.n_experts).tolist()  # slots per expert

        out = torch.zeros_like(tokens)  # dropped assignments add nothing
        start = 0
        for e, size in enumerate(sizes):
            if size:
                idx = a_token[start:start + size]  # (n_e,) tokens of expert e
                y = self.experts[e](tokens[idx])  # (n_e, C)
                out.index_add_(0, idx, y * a_gate[start:start + size, None])
            start += size

        self.last_routing = RoutingInfo(
            balance_loss=load_balance_loss(probs, expert_idx, self.n_experts),
            z_loss=router_z_loss(logits),
            expert_idx=expert_idx.detach(),
            gates=gates.detach(),
            kept=kept,
            probs=probs.detach(),
            counts=torch.bincount(expert_idx.reshape(-1), minlength=self.n_experts),
            capacity=capacity,
        )
        return out.view(shape)
