"""Experiments of "Mixture of Experts (MoE)": routing, utilization, sparse vs dense at counted FLOPs.

Byte-level mini-formers on the corpus (vocabulary 256) whose feed-forwards are
:class:`~nlpcurriculum.nn.moe.MoE` layers (``MiniFormerConfig.moe``), against dense ones of
several widths, all trained with the same steps, batches and learning rate.

1. *A 2-expert router layer; route tokens dynamically* (:func:`routing_item`): MoE models with
   ``E`` experts top-2 (the main one, Mixtral-style), 2 experts top-1 and ``E`` experts top-1
   (Switch-style), and the main one without its balancing loss. Routing is *dynamic* when the expert a token goes to depends on
   the token: measured as the mutual information between the byte's kind (lowercase,
   uppercase, digit, whitespace, punctuation, non-ASCII) and its top-1 expert, per layer, in
   bits. Its control is the same architecture at initialisation (an *untrained* router): random
   embeddings and router weights already send different bytes to different experts, so the
   finding is the gain of the trained router over the untrained one, paired by seed. Also: each
   model's val loss against the dense model with the same active parameters (over the seeds
   ``[seed, *extra_seeds]``, paired), and an evaluation-time capacity-factor sweep on the main
   model (dropped assignments, loss).
2. *Expert utilization histograms over the dataset* (:func:`utilization_item`): the share of
   the val split's tokens each expert receives, per layer, with and without the balancing loss
   (normalized entropy of the utilization: 1 = perfectly balanced, 0 = collapsed onto one
   expert), and per byte kind (stacked bars: which experts each kind goes to).
3. *Sparse/dense swaps, FLOP savings* (:func:`swaps_item`): the main MoE against dense models of
   several MLP widths, among them the one with the MoE's *active* parameters per token
   (``d_ff = k * H``) and the one with its *total* parameters (``d_ff = E * H``). FLOPs per
   token are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one forward+backward
   of a training batch (attention through the by-hand path, so its ``T x T`` matmuls are seen;
   CPU SDPA kernels are not counted) and cross-checked against a hand count
   ``6 * (tokens * shared matmul weights + sum_e tokens_e * expert weights) + 12 L B T^2 C``.
   Wall time per training step (forward, backward, AdamW) is measured over interleaved rounds
   (:func:`~nlpcurriculum.metrics.timing.interleaved_rounds`: every model once per round, on one
   batch; median), so machine load hits every model alike. "The dense model of
   equal quality" is interpolated along the dense sweep (log FLOPs and log time, linear in val
   loss) at the MoE's val loss; the MoE and the whole sweep are retrained on every seed of
   ``[seed, *extra_seeds]``, and the finding is the mean FLOPs ratio over them.

Wall times (``*.ms_per_step``, ``wall_ratio*``, ``dispatch_overhead_wall_over_flops``) differ
from run to run and machine to machine: they are the items' ``timings`` (and the dispatch finding
is timed); everything in ``metrics`` is deterministic. At these sizes, on a CPU, the MoE's dispatch (sorting,
gathering, a Python loop over experts, ``index_add_``) costs time that no FLOP count sees: it
can be slower per step than a dense model with more FLOPs; the stage reports what it measures.

Papers: Shazeer et al. 2017 (arXiv:1701.06538), GShard (arXiv:2006.16668), Switch Transformer
(arXiv:2101.03961), ST-MoE (arXiv:2202.08906), Mixtral (arXiv:2401.04088).

Left out: expert parallelism, expert-choice routing, MoE at scale (where the savings are real),
GPU timings, upcycling dense checkpoints into experts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from torch import Tensor

from nlpcurriculum.experiments.harness import (
    BYTE_VOCAB,
    CorpusSplits,
    byte_tokens,
    curve,
    mean_loss,
    torch_threads,
    train_run,
)
from nlpcurriculum.metrics.flops import count_flops, dense_train_flops
from nlpcurriculum.metrics.stats import mutual_information_bits, normalized_entropy
from nlpcurriculum.metrics.timing import interleaved_rounds
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.nn.moe import MoE, MoEConfig
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.progress import progress
from nlpcurriculum.training.trainer import TrainerConfig, TrainResult, seed_everything

__all__ = [
    "BYTE_KINDS",
    "ITEM",
    "ITEMS",
    "Inputs",
    "MoEExperimentConfig",
    "byte_kinds",
    "equal_quality",
    "hand_flops",
    "routing_item",
    "run",
    "step_flops",
    "swaps_item",
    "utilization_item",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "routing": "mixture-of-experts/1",
    "utilization": "mixture-of-experts/2",
    "swaps": "mixture-of-experts/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())

#: Byte kinds, in the order of :func:`byte_kinds`' codes.
BYTE_KINDS = ("lower", "upper", "digit", "space", "punct", "non-ascii")


def byte_kinds(ids: Tensor) -> Tensor:
    """Kind code (index into :data:`BYTE_KINDS`) of every byte id.

    ``a-z`` lower, ``A-Z`` upper, ``0-9`` digit, space/tab/newline/CR space, bytes >= 128
    (parts of multi-byte UTF-8 characters) non-ascii, every other byte punct.
    """
    kind = torch.full_like(ids, BYTE_KINDS.index("punct"))
    kind[(ids >= ord("a")) & (ids <= ord("z"))] = 0
    kind[(ids >= ord("A")) & (ids <= ord("Z"))] = 1
    kind[(ids >= ord("0")) & (ids <= ord("9"))] = 2
    kind[(ids == 32) | (ids == 9) | (ids == 10) | (ids == 13)] = 3
    kind[ids >= 128] = 5
    return kind


@dataclass
class MoEChecks:
    """Bounds of the findings that no knob above sets (params ``moe.checks``).

    Attributes:
        min_dispatch_overhead: item 3: the MoE's step-time ratio to dense-active over its FLOP
            ratio (median over interleaved rounds, two robust SE above it).
        min_mi_gain_over_untrained: item 1: bits of I(byte kind; top-1 expert), best layer, that
            the trained router must add to the same architecture at initialisation (paired by
            seed).
    """

    min_dispatch_overhead: float = 1.1
    min_mi_gain_over_untrained: float = 0.05


@dataclass(kw_only=True)
class MoEExperimentConfig:
    """The ``moe`` section of params/mixture_of_experts.yaml.

    Attributes:
        model: the main MoE model (``moe.experts`` E >= 2, ``moe.top_k`` k, ``d_ff`` = each
            expert's hidden size H, capacity factor, balancing weight). Dense models are the same
            architecture with ``moe = None`` and another ``d_ff``.
        train: trainer knobs, the same for every model.
        seq_len: training window in bytes.
        variants: item 1: more MoE models as ``[experts, top_k]`` pairs (same H).
        dense_d_ff: item 3: dense MLP widths of the equal-quality sweep; ``k * H`` (equal active
            parameters) and ``E * H`` (equal total parameters) are always added.
        capacity_factors: item 1: evaluation-time capacity factors tried on the main model.
        seed: initialisation seed (the same for every model).
        extra_seeds: more initialisation seeds of the main MoE, the MoE without balancing loss,
            the dense sweep and the untrained router: the comparisons (MoE gain, balancing gain,
            routing MI over its control, equal-quality FLOPs) are over ``[seed, *extra_seeds]``.
        num_threads: torch intra-op threads.
        val_batches: batches of ``train.batch_size`` val windows for the losses and the routing
            statistics (sequential windows from the start of the val split).
        timing_repeats: item 3: interleaved timing rounds (one training step per model each).
        min_kind_mi_bits: item 1: mutual information (bits) between byte kind and top-1
            expert, best layer of the main model (mean over the seeds).
        min_moe_gain: item 1: dense-active val loss minus the main MoE's (nats), mean over the
            seeds, by two standard errors.
        min_balance_entropy: item 2: normalized utilization entropy, worst layer, with the loss.
        min_aux_entropy_gain: item 2: that entropy with the balancing loss minus without it
            (mean over the seeds, by two standard errors).
        max_flop_rel_diff: item 3: |counted - hand count| / counted.
        max_active_flops_ratio: item 3: MoE FLOPs / dense-active FLOPs (router + dropped slots).
        min_equal_quality_flops_ratio: item 3: FLOPs of the dense model of equal quality / MoE's.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 64
    variants: list[list[int]] = field(default_factory=lambda: [[2, 1], [4, 1]])
    dense_d_ff: list[int] = field(default_factory=lambda: [128, 1024])
    capacity_factors: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.25, 2.0])
    seed: int = 0
    extra_seeds: list[int] = field(default_factory=lambda: [1, 2])
    num_threads: int = 1
    val_batches: int = 16
    timing_repeats: int = 10
    min_kind_mi_bits: float = 0.05
    min_moe_gain: float = 0.01
    min_balance_entropy: float = 0.9
    min_aux_entropy_gain: float = 0.02
    max_flop_rel_diff: float = 1e-6
    max_active_flops_ratio: float = 1.05
    min_equal_quality_flops_ratio: float = 1.0
    checks: MoEChecks = field(default_factory=MoEChecks)

    def __post_init__(self) -> None:
        m = self.model
        if m.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens), got {m.vocab_size}")
        if m.moe is None or m.moe.experts < 2:
            raise ValueError(f"model.moe.experts must be >= 2 (the main MoE model), got {m.moe}")
        if not 2 <= self.seq_len <= m.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len={m.max_seq_len}]")
        for pair in self.variants:
            if len(pair) != 2 or not 1 <= pair[1] <= pair[0]:
                raise ValueError(f"variants entries must be [experts, top_k] with 1 <= top_k <= "
                                 f"experts, got {pair}")
        if any(d < 1 for d in self.dense_d_ff):
            raise ValueError(f"dense_d_ff must be positive widths, got {self.dense_d_ff}")
        if any(c <= 0 for c in self.capacity_factors):
            raise ValueError(f"capacity_factors must be > 0, got {self.capacity_factors}")
        for name in ("val_batches", "timing_repeats", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed in self.extra_seeds or len(set(self.extra_seeds)) != len(self.extra_seeds):
            raise ValueError(f"extra_seeds={self.extra_seeds} must be distinct and differ from "
                             f"seed={self.seed}")

    @property
    def seeds(self) -> list[int]:
        """The seeds of the paired comparisons: ``[seed, *extra_seeds]``."""
        return [self.seed, *self.extra_seeds]

    @property
    def active_d_ff(self) -> int:
        """Dense width with the main MoE's active MLP parameters per token: ``k * H``."""
        return self.model.moe.top_k * self.model.d_ff

    @property
    def total_d_ff(self) -> int:
        """Dense width with the main MoE's total MLP parameters: ``E * H``."""
        return self.model.moe.experts * self.model.d_ff

    def dense_widths(self) -> list[int]:
        """The dense sweep: ``dense_d_ff`` plus the active and total widths, ascending."""
        return sorted({*self.dense_d_ff, self.active_d_ff, self.total_d_ff})


# ---------------------------------------------------------------------------------------------
# measurements


@dataclass
class _Run:
    """One trained model and what was measured on it."""

    name: str
    cfg: MiniFormerConfig
    model: MiniFormer
    result: TrainResult
    val_loss: float
    seed: int = 0
    flops_per_token: float = 0.0
    hand_flops_per_token: float = 0.0
    step_seconds: list[float] = field(default_factory=list)

    @property
    def ms_per_step(self) -> float:
        """Median of the timed rounds, in ms (a clock reading: a timing, not a metric)."""
        return 1000 * statistics.median(self.step_seconds) if self.step_seconds else math.nan

    @property
    def params(self) -> int:
        return self.model.num_params()

    @property
    def active_mlp_params(self) -> int:
        """Feed-forward weights one token passes through (k experts of an MoE layer)."""
        n = 0
        for block in self.model.blocks:
            if isinstance(block.mlp, MoE):
                n += block.mlp.top_k * sum(p.numel() for p in block.mlp.experts[0].parameters())
            else:
                n += sum(p.numel() for p in block.mlp.parameters())
        return n


def _moe_layers(model: MiniFormer) -> list[tuple[int, MoE]]:
    return [(i, b.mlp) for i, b in enumerate(model.blocks) if isinstance(b.mlp, MoE)]


@torch.no_grad()
def collect_routing(model: MiniFormer, batches: Sequence[Tensor]) -> dict[int, dict[str, Tensor]]:
    """Route the ``(B, T)`` input batches through ``model`` and gather per MoE layer.

    Returns:
        ``{layer: {"expert": (N, k) chosen experts, "kept": (N, k), "kind": (N,) byte kinds}}``
        over all batches' tokens, in order.
    """
    model.eval()
    out: dict[int, dict[str, list[Tensor]]] = {}
    for x in batches:
        model(x)
        for i, moe in _moe_layers(model):
            r = moe.last_routing
            d = out.setdefault(i, {"expert": [], "kept": [], "kind": []})
            d["expert"].append(r.expert_idx)
            d["kept"].append(r.kept)
            d["kind"].append(byte_kinds(x.reshape(-1)))
    return {i: {k: torch.cat(v) for k, v in d.items()} for i, d in out.items()}


@contextmanager
def _by_hand_attention(model: MiniFormer) -> Iterator[None]:
    """Run attention through the by-hand path (matmuls the FLOP counter sees), then restore."""
    before = [b.attn.fused for b in model.blocks]
    for b in model.blocks:
        b.attn.fused = False
    try:
        yield
    finally:
        for b, f in zip(model.blocks, before):
            b.attn.fused = f


def step_flops(model: MiniFormer, x: Tensor, y: Tensor) -> int:
    """FLOPs of one forward + backward on ``(x, y)``, counted by ``FlopCounterMode``."""
    model.train()
    with _by_hand_attention(model):
        flops = count_flops(lambda: model(x, targets=y).loss.backward())
    model.zero_grad(set_to_none=True)
    return flops


def hand_flops(model: MiniFormer, x: Tensor) -> int:
    """FLOPs of the forward + backward just run on ``x``, counted by hand.

    Every matmul ``(n, a) @ (a, b)`` costs ``2nab`` forward and twice that backward (input and
    weight gradients): ``6 * n * weights``. Shared matmuls (attention projections, router,
    ``lm_head``) see every token; an MoE expert only the ``n_e`` tokens it processed (read
    from the layer's last routing). Attention scores and the weighted sum of values are two
    ``(T, hs) @ (hs, T)``-sized matmuls per head: ``2 * 2 * B * T^2 * C`` forward per layer.
    Embedding lookups, norms, activations, softmax and the optimizer are not matmuls (left out,
    as the counter leaves them out).
    """
    cfg = model.config
    B, T = x.shape
    n = B * T
    shared = sum(b.attn.qkv.weight.numel() + b.attn.proj.weight.numel() for b in model.blocks)
    shared += model.lm_head.weight.numel()
    total = dense_train_flops(n, shared)
    for block in model.blocks:
        mlp = block.mlp
        if isinstance(mlp, MoE):
            total += dense_train_flops(n, mlp.router.weight.numel())
            per_expert = _matmul_weights(mlp.experts[0])
            total += dense_train_flops(int(mlp.last_routing.processed.sum()), per_expert)
        else:
            total += dense_train_flops(n, _matmul_weights(mlp))
    total += 3 * cfg.n_layers * 4 * B * T * T * cfg.d_model
    return total


def _matmul_weights(mlp: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in mlp.modules() if isinstance(m, torch.nn.Linear))


def time_steps(runs: Sequence[_Run], x: Tensor, y: Tensor, lr: float, rounds: int
               ) -> list[list[float]]:
    """Seconds of one training step (forward, backward, AdamW) per run, over interleaved rounds.

    Each model is rebuilt with its trained weights (the trained model is left alone); one
    untimed warm-up round, then every round times each model once in turn
    (:func:`~nlpcurriculum.metrics.timing.interleaved_rounds`), so a busy neighbour slows every
    model alike. Returns ``[[seconds of round 0, round 1, ...] per run]``.
    """
    arms = {}
    for i, r in enumerate(runs):
        model = MiniFormer(r.cfg)
        model.load_state_dict(r.model.state_dict())
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)

        def step(m: MiniFormer = model, o: torch.optim.Optimizer = opt) -> None:
            m(x, targets=y).loss.backward()
            o.step()
            o.zero_grad(set_to_none=True)

        arms[f"{i}:{r.name}"] = step
    times = interleaved_rounds(arms, rounds)
    return [times[name] for name in arms]


def equal_quality(widths: Sequence[float], losses: Sequence[float], target: float
                  ) -> tuple[float, bool]:
    """Where the dense sweep reaches val loss ``target``: a fractional index into the sweep.

    Linear interpolation in loss between the first adjacent pair of sweep points that brackets
    ``target`` (the sweep is ordered by width). Returns ``(position, inside)``: ``position`` in
    ``[0, len - 1]``; outside the sweep's range it is clamped to the nearest end and ``inside``
    is False (a bound, not an estimate).

    Worked example: losses ``[2.0, 1.8, 1.7]`` and target 1.75 -> position 1.5 (halfway between
    the second and the third model).
    """
    for i in range(len(losses) - 1):
        hi, lo = losses[i], losses[i + 1]
        if min(hi, lo) <= target <= max(hi, lo) and hi != lo:
            return i + (hi - target) / (hi - lo), True
    best = min(range(len(losses)), key=lambda j: losses[j])
    if target < losses[best]:
        return float(best), False  # better than every dense model
    worst = max(range(len(losses)), key=lambda j: losses[j])
    return float(worst), target == losses[worst]


def _log_interp(values: Sequence[float], position: float) -> float:
    """Geometric interpolation of ``values`` at a fractional index."""
    i = min(int(math.floor(position)), len(values) - 2) if len(values) > 1 else 0
    t = position - i
    if len(values) == 1:
        return float(values[0])
    return float(math.exp((1 - t) * math.log(values[i]) + t * math.log(values[i + 1])))


def best_layer_mi(routing: dict[int, dict[str, Tensor]]) -> float:
    """I(byte kind; top-1 expert) in bits, at the MoE layer where it is largest."""
    return max(mutual_information_bits(d["kind"], d["expert"][:, 0]) for d in routing.values())


def min_layer_entropy(routing: dict[int, dict[str, Tensor]], experts: int) -> float:
    """Normalized entropy of the experts' shares of the assignments, at the least even layer."""
    return min(normalized_entropy(torch.bincount(d["expert"].reshape(-1), minlength=experts))
               for d in routing.values())


def untrained_routing(model_cfg: MiniFormerConfig, seed: int, batches: Sequence[Tensor]
                      ) -> dict[int, dict[str, Tensor]]:
    """Routing of the same architecture at initialisation (seeded as a trained run): the control.

    An untrained router is not a uniform one: its random weights on random embeddings already
    send different bytes to different experts, so some mutual information with the byte's kind
    comes for free. What training adds is measured against this.
    """
    seed_everything(seed)
    return collect_routing(build_model(model_cfg), batches)


def seed_stats(cfg: MoEExperimentConfig, main: _Run, no_aux: _Run, dense_active: _Run,
               main_routing: dict[int, dict[str, Tensor]],
               no_aux_routing: dict[int, dict[str, Tensor]], val_x: Sequence[Tensor]
               ) -> dict[str, float]:
    """One seed's numbers of the paired comparisons (items 1 and 2)."""
    E = cfg.model.moe.experts
    return {
        "main.val_loss": main.val_loss,
        "no_aux.val_loss": no_aux.val_loss,
        "dense_active.val_loss": dense_active.val_loss,
        "main.best_layer_mi_bits": best_layer_mi(main_routing),
        "untrained.best_layer_mi_bits": best_layer_mi(
            untrained_routing(cfg.model, main.seed, val_x)),
        "main.min_entropy": min_layer_entropy(main_routing, E),
        "no_aux.min_entropy": min_layer_entropy(no_aux_routing, E),
    }


# ---------------------------------------------------------------------------------------------
# item 1: routing


def routing_item(cfg: MoEExperimentConfig, moes: dict[str, _Run], dense: dict[int, _Run],
                 routing: dict[str, dict[int, dict[str, Tensor]]],
                 capacity_sweep: list[tuple[float | None, float, float]],
                 per_seed: dict[int, dict[str, float]]) -> ItemResult:
    """Item 1: trained MoE models, routing by byte kind, capacity factor, against dense.

    ``per_seed``: :func:`seed_stats` of every seed of the paired comparisons.
    """
    main = moes["main"]
    dense_active = dense[cfg.active_d_ff]
    metrics: dict[str, float] = {"dense_active.val_loss": dense_active.val_loss}
    lines = [f"{'model':<22} {'E':>2} {'k':>2} {'params':>8} {'val loss':>8} {'vs dense':>8} "
             f"{'dropped':>8} " + " ".join(f"{'MI L' + str(i):>8}" for i in range(cfg.model.n_layers))]
    for width, run in dense.items():
        lines.append(f"{'dense d_ff=' + str(width):<22} {'-':>2} {'-':>2} {run.params:>8} "
                     f"{run.val_loss:>8.4f}")
    for name, run in moes.items():
        # against the dense model with the same active MLP width (k * H), when it was trained
        peer = dense.get(run.cfg.moe.top_k * run.cfg.d_ff)
        gain = peer.val_loss - run.val_loss if peer is not None else math.nan
        if peer is not None:
            metrics[f"{name}.gain_over_dense_active"] = gain
        metrics[f"{name}.val_loss"] = run.val_loss
        metrics[f"{name}.params"] = float(run.params)
        mis, dropped = [], []
        for layer, d in routing[name].items():
            mi = mutual_information_bits(d["kind"], d["expert"][:, 0])
            metrics[f"{name}.layer{layer}.kind_expert_mi_bits"] = mi
            mis.append(mi)
            dropped.append(float(1 - d["kept"].float().mean()))
        metrics[f"{name}.dropped_fraction"] = float(np.mean(dropped))
        lines.append(f"{name:<22} {run.cfg.moe.experts:>2} {run.cfg.moe.top_k:>2} {run.params:>8} "
                     f"{run.val_loss:>8.4f} {gain:>+8.4f} {np.mean(dropped):>8.3f} "
                     + " ".join(f"{m:>8.3f}" for m in mis))
    best_mi = max(metrics[f"main.layer{i}.kind_expert_mi_bits"] for i, _ in _moe_layers(main.model))
    metrics["main.best_layer_kind_expert_mi_bits"] = best_mi
    gain = dense_active.val_loss - main.val_loss
    metrics["moe_gain_over_dense_active"] = gain

    lines += ["", "capacity factor at evaluation (main model; training used "
              f"{cfg.model.moe.capacity_factor}):",
              f"{'capacity factor':>15} {'dropped':>8} {'val loss':>8}"]
    for cf, dropped, loss in capacity_sweep:
        key = "none" if cf is None else f"{cf:g}"
        metrics[f"capacity.{key}.dropped_fraction"] = dropped
        metrics[f"capacity.{key}.val_loss"] = loss
        lines.append(f"{key:>15} {dropped:>8.3f} {loss:>8.4f}")
    lines += ["", "vs dense: val loss of the dense model with the same active MLP width (k * H) "
              "minus the MoE's (positive: the MoE is better); dropped: assignments dropped for "
              "capacity on the val split.",
              "MI: mutual information (bits) between the input byte's kind "
              f"({', '.join(BYTE_KINDS)}) and its top-1 expert, val split."]

    seeds = sorted(per_seed)
    col = {key: [per_seed[s][key] for s in seeds] for key in per_seed[seeds[0]]}
    lines += ["", f"per seed (paired comparisons; seeds {seeds}):",
              f"{'seed':>4} {'MoE loss':>9} {'dense-act.':>10} {'gain':>8} {'MI trained':>10} "
              f"{'MI untrained':>12}"]
    for s in seeds:
        d = per_seed[s]
        metrics[f"seed{s}.main.val_loss"] = d["main.val_loss"]
        metrics[f"seed{s}.dense_active.val_loss"] = d["dense_active.val_loss"]
        metrics[f"seed{s}.main.best_layer_mi_bits"] = d["main.best_layer_mi_bits"]
        metrics[f"seed{s}.untrained.best_layer_mi_bits"] = d["untrained.best_layer_mi_bits"]
        lines.append(f"{s:>4} {d['main.val_loss']:>9.4f} {d['dense_active.val_loss']:>10.4f} "
                     f"{d['dense_active.val_loss'] - d['main.val_loss']:>+8.4f} "
                     f"{d['main.best_layer_mi_bits']:>10.4f} {d['untrained.best_layer_mi_bits']:>12.4f}")
    E, k = cfg.model.moe.experts, cfg.model.moe.top_k
    findings = [
        Finding.compare(
            "routing is dynamic: which expert a byte goes to depends on what kind of byte it is "
            f"(mutual information between byte kind and top-1 expert, best layer, bits; mean over "
            f"{len(seeds)} seeds; a router that ignores its input would fail)",
            "main.best_layer_kind_expert_mi_bits.mean", col["main.best_layer_mi_bits"],
            margin=cfg.min_kind_mi_bits),
        Finding.compare(
            "... and training makes it so: the trained router's mutual information exceeds the "
            "same architecture's at initialisation (untrained router, same seed; bits, paired "
            "over seeds; a router that learned nothing would fail)",
            "kind_mi_gain_over_untrained_router", col["main.best_layer_mi_bits"],
            col["untrained.best_layer_mi_bits"], margin=cfg.checks.min_mi_gain_over_untrained),
        Finding.compare(
            f"the main {E}-expert top-{k} MoE reaches a lower val loss than the dense model with "
            f"the same active parameters per token (dense-active minus MoE, nats, paired over "
            f"{len(seeds)} init seeds; an MoE whose extra experts add nothing would fail)",
            "moe_gain_over_dense_active.mean", col["dense_active.val_loss"], col["main.val_loss"],
            margin=cfg.min_moe_gain),
    ]
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for name, run in {**moes, f"dense d_ff={dense_active.cfg.d_ff}": dense_active}.items():
        steps, values = zip(*curve(run.result.history))
        ax0.plot(steps, values, marker="." if len(steps) < 30 else None,
                 label=f"{name} ({run.val_loss:.3f})")
    ax0.set(xlabel="optimizer step", ylabel="validation loss (nats / byte)",
            title="MoE variants vs the dense model of equal active parameters")
    ax0.grid(alpha=0.3)
    ax0.legend(fontsize=7)
    cfs = [c for c, _, _ in capacity_sweep]
    xs = np.arange(len(cfs))
    ax1.bar(xs, [d for _, d, _ in capacity_sweep], color="C3", alpha=0.6, label="dropped fraction")
    ax1.set_xticks(xs, ["none" if c is None else f"{c:g}" for c in cfs])
    ax1.set(xlabel="capacity factor (evaluation)", ylabel="dropped assignments",
            title="capacity: dropped tokens and val loss (main MoE)")
    ax2 = ax1.twinx()
    ax2.plot(xs, [l for _, _, l in capacity_sweep], "ko-", label="val loss")
    ax2.set_ylabel("validation loss")
    ax1.legend(loc="upper center", fontsize=8)
    return ItemResult(item=ITEM["routing"], metrics=metrics, findings=findings,
                      series={f"{n}.val_loss": curve(r.result.history) for n, r in moes.items()},
                      figures={"routing.png": fig},
                      texts={"routing.txt": "\n".join(lines) + "\n"})


# ---------------------------------------------------------------------------------------------
# item 2: utilization


def utilization_item(cfg: MoEExperimentConfig, routing: dict[str, dict[int, dict[str, Tensor]]],
                     per_seed: dict[int, dict[str, float]]) -> ItemResult:
    """Item 2: expert shares per layer (with / without the balancing loss) and per byte kind.

    ``per_seed``: :func:`seed_stats` of every seed (the balancing gain is paired over them).
    """
    E = cfg.model.moe.experts
    metrics: dict[str, float] = {}
    shares: dict[str, dict[int, np.ndarray]] = {}
    for name in ("main", "no_aux"):
        shares[name] = {}
        for layer, d in routing[name].items():
            counts = torch.bincount(d["expert"].reshape(-1), minlength=E)
            shares[name][layer] = (counts / counts.sum()).numpy()
            metrics[f"{name}.layer{layer}.entropy"] = normalized_entropy(counts)
            metrics[f"{name}.layer{layer}.max_share"] = float(shares[name][layer].max())
            for e in range(E):
                metrics[f"{name}.layer{layer}.expert{e}.share"] = float(shares[name][layer][e])
        metrics[f"{name}.min_entropy"] = min(metrics[f"{name}.layer{i}.entropy"] for i in routing[name])
    gain = metrics["main.min_entropy"] - metrics["no_aux.min_entropy"]
    metrics["aux_entropy_gain"] = gain
    seeds = sorted(per_seed)
    for s in seeds:
        for name in ("main", "no_aux"):
            metrics[f"seed{s}.{name}.min_entropy"] = per_seed[s][f"{name}.min_entropy"]

    layers = sorted(routing["main"])
    by_kind: dict[int, np.ndarray] = {}  # layer -> (kinds, E) share of each kind's tokens
    kind_counts = None
    for layer in layers:
        d = routing["main"][layer]
        kinds = d["kind"].unsqueeze(1).expand_as(d["expert"]).reshape(-1)
        joint = torch.bincount(kinds * E + d["expert"].reshape(-1),
                               minlength=len(BYTE_KINDS) * E).view(len(BYTE_KINDS), E).double()
        kind_counts = torch.bincount(d["kind"], minlength=len(BYTE_KINDS))
        by_kind[layer] = (joint / joint.sum(1, keepdim=True).clamp_min(1)).numpy()
        for k, kind in enumerate(BYTE_KINDS):
            if kind_counts[k]:
                metrics[f"main.layer{layer}.{kind}.top_expert_share"] = float(by_kind[layer][k].max())

    findings = [
        Finding.at_least(
            f"with the balancing loss (weight {cfg.model.moe.aux_weight:g}) the experts share the "
            "val tokens nearly evenly (normalized entropy of expert utilization, worst layer)",
            "main.min_entropy", metrics["main.min_entropy"], cfg.min_balance_entropy),
        Finding.compare(
            "the balancing loss makes utilization more even than training without it "
            f"(normalized entropy with minus without, worst layer, paired over {len(seeds)} init "
            "seeds; a balancing loss that never reaches the router's gradient would fail)",
            "aux_entropy_gain.mean", [per_seed[s]["main.min_entropy"] for s in seeds],
            [per_seed[s]["no_aux.min_entropy"] for s in seeds], margin=cfg.min_aux_entropy_gain),
    ]
    lines = [f"expert shares of the val split's routing assignments (E={E}, top-{cfg.model.moe.top_k})"]
    for name in shares:
        for layer in layers:
            lines.append(f"{name:<7} layer {layer}: " + " ".join(f"{s:.3f}" for s in shares[name][layer])
                         + f"   entropy {metrics[f'{name}.layer{layer}.entropy']:.3f}")
    lines += ["", "worst-layer normalized entropy per init seed (with / without the balancing loss): "
              + "; ".join(f"seed {s} {per_seed[s]['main.min_entropy']:.3f} / "
                          f"{per_seed[s]['no_aux.min_entropy']:.3f}" for s in seeds)]
    lines += ["", "share of each byte kind's assignments per expert (main model)"]
    for layer in layers:
        for k, kind in enumerate(BYTE_KINDS):
            n = int(kind_counts[k]) if kind_counts is not None else 0
            lines.append(f"layer {layer} {kind:<9} (n={n:>6}): "
                         + " ".join(f"{s:.3f}" for s in by_kind[layer][k]))
    return ItemResult(item=ITEM["utilization"], metrics=metrics, findings=findings,
                      figures={"utilization.png": _utilization_figure(shares, E),
                               "by_kind.png": _by_kind_figure(by_kind, kind_counts, E)},
                      texts={"utilization.txt": "\n".join(lines) + "\n"})


def _utilization_figure(shares: dict[str, dict[int, np.ndarray]], E: int) -> Figure:
    layers = sorted(shares["main"])
    fig = Figure(figsize=(3.6 * len(layers), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(layers), sharey=True))
    xs = np.arange(E)
    for ax, layer in zip(axes, layers):
        for j, (name, label) in enumerate((("main", "with balancing loss"), ("no_aux", "without"))):
            ax.bar(xs + (j - 0.5) * 0.4, shares[name][layer], width=0.4, label=label, color=f"C{j}")
        ax.axhline(1 / E, color="grey", linestyle="--", linewidth=1, label="uniform 1/E")
        ax.set(xticks=xs, xlabel="expert", title=f"layer {layer}")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("share of val-split assignments")
    axes[0].legend(fontsize=8)
    fig.suptitle("Expert utilization over the val split")
    return fig


def _by_kind_figure(by_kind: dict[int, np.ndarray], kind_counts: Tensor | None, E: int) -> Figure:
    layers = sorted(by_kind)
    fig = Figure(figsize=(4.6 * len(layers), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(layers), sharey=True))
    labels = [f"{k}\n({int(kind_counts[i])})" if kind_counts is not None else k
              for i, k in enumerate(BYTE_KINDS)]
    xs = np.arange(len(BYTE_KINDS))
    for ax, layer in zip(axes, layers):
        bottom = np.zeros(len(BYTE_KINDS))
        for e in range(E):
            ax.bar(xs, by_kind[layer][:, e], bottom=bottom, color=f"C{e}", label=f"expert {e}")
            bottom += by_kind[layer][:, e]
        ax.set_xticks(xs, labels, fontsize=7)
        ax.set(title=f"layer {layer}")
    axes[0].set_ylabel("share of the kind's assignments")
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Which experts each kind of byte goes to (main MoE, val split; token counts in brackets)")
    return fig


# ---------------------------------------------------------------------------------------------
# item 3: sparse vs dense swaps


def swaps_item(cfg: MoEExperimentConfig, main: _Run, dense: list[_Run],
               replicates: Mapping[int, tuple[float, list[float]]] | None = None) -> ItemResult:
    """Item 3: FLOPs per token (counted and by hand), wall time, val loss: MoE vs dense sweep.

    ``replicates`` maps each other seed to ``(MoE val loss, dense sweep val losses)``: the MoE and
    the whole dense sweep retrained on that seed. The equal-quality FLOPs ratio is measured on
    every seed (the FLOP counts are the first seed's: they depend on the shapes, not the weights)
    and its finding is taken over the seeds.
    """
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}  # clock readings: metrics/timings/, apart from the metrics
    active = next(r for r in dense if r.cfg.d_ff == cfg.active_d_ff)
    total = next(r for r in dense if r.cfg.d_ff == cfg.total_d_ff)
    rows = [("moe", main)] + [(f"dense_{r.cfg.d_ff}", r) for r in dense]
    lines = [f"{'model':<12} {'params':>8} {'active MLP':>10} {'FLOPs/token':>12} {'hand':>12} "
             f"{'ms/step':>8} {'val loss':>8}"]
    rel_diffs = []
    for name, r in rows:
        metrics[f"{name}.params"] = float(r.params)
        metrics[f"{name}.active_mlp_params"] = float(r.active_mlp_params)
        metrics[f"{name}.flops_per_token"] = r.flops_per_token
        metrics[f"{name}.hand_flops_per_token"] = r.hand_flops_per_token
        timings[f"{name}.ms_per_step"] = r.ms_per_step
        metrics[f"{name}.val_loss"] = r.val_loss
        rel_diffs.append(abs(r.flops_per_token - r.hand_flops_per_token) / r.flops_per_token)
        lines.append(f"{name:<12} {r.params:>8} {r.active_mlp_params:>10} {r.flops_per_token:>12.4g} "
                     f"{r.hand_flops_per_token:>12.4g} {r.ms_per_step:>8.2f} {r.val_loss:>8.4f}")
    metrics["flop_count_max_rel_diff"] = max(rel_diffs)
    metrics["flops_ratio_moe_over_dense_active"] = main.flops_per_token / active.flops_per_token
    metrics["flops_ratio_dense_total_over_moe"] = total.flops_per_token / main.flops_per_token
    metrics["params_ratio_moe_over_dense_active"] = main.params / active.params
    timings["wall_ratio_moe_over_dense_active"] = main.ms_per_step / active.ms_per_step
    timings["wall_ratio_moe_over_dense_total"] = main.ms_per_step / total.ms_per_step
    metrics["loss_gap_moe_minus_dense_total"] = main.val_loss - total.val_loss

    widths = [r.cfg.d_ff for r in dense]
    position, inside = equal_quality(widths, [r.val_loss for r in dense], main.val_loss)
    eq_flops = _log_interp([r.flops_per_token for r in dense], position)
    eq_ms = _log_interp([r.ms_per_step for r in dense], position)
    eq_width = _log_interp(widths, position)
    metrics["equal_quality.in_sweep"] = float(inside)
    metrics["equal_quality.dense_d_ff"] = eq_width
    metrics["equal_quality.flops_per_token"] = eq_flops
    timings["equal_quality.ms_per_step"] = eq_ms
    timings["equal_quality.wall_ratio_dense_over_moe"] = eq_ms / main.ms_per_step
    dense_flops = [r.flops_per_token for r in dense]
    eq_ratios = [eq_flops / main.flops_per_token]
    metrics[f"seed{main.seed}.equal_quality.flops_ratio_dense_over_moe"] = eq_ratios[0]
    for seed, (moe_loss, dense_losses) in sorted((replicates or {}).items()):
        seed_position, seed_inside = equal_quality(widths, dense_losses, moe_loss)
        eq_ratios.append(_log_interp(dense_flops, seed_position) / main.flops_per_token)
        metrics[f"seed{seed}.moe.val_loss"] = moe_loss
        for w, loss in zip(widths, dense_losses):
            metrics[f"seed{seed}.dense_{w}.val_loss"] = loss
        metrics[f"seed{seed}.equal_quality.in_sweep"] = float(seed_inside)
        metrics[f"seed{seed}.equal_quality.flops_ratio_dense_over_moe"] = eq_ratios[-1]
    metrics["equal_quality.flops_ratio_dense_over_moe"] = float(np.mean(eq_ratios))  # over the seeds
    # dispatch overhead per round: (MoE time / dense-active time) / (MoE FLOPs / dense-active FLOPs)
    flops_ratio = metrics["flops_ratio_moe_over_dense_active"]
    dispatch = Finding.timing_ratio(
        "on a CPU at this size the MoE's dispatch costs wall time no FLOP count sees: its step "
        "time relative to dense-active exceeds its FLOP ratio (wall ratio / FLOP ratio, median "
        f"over {len(main.step_seconds)} interleaved rounds; a dispatch as cheap as its FLOPs, or "
        "a timer that measured FLOPs, would fail)",
        "dispatch_overhead_wall_over_flops", [t / flops_ratio for t in main.step_seconds],
        active.step_seconds, cfg.checks.min_dispatch_overhead)
    overhead = dispatch.value
    timings["dispatch_overhead_wall_over_flops"] = overhead
    bound = "" if inside else (" (outside the dense sweep: a bound at its nearest end, not an "
                               "interpolation)")
    lines += [
        "",
        f"dense of equal quality (val loss {main.val_loss:.4f}): d_ff ~ {eq_width:.0f}{bound}, "
        f"{eq_flops:.4g} FLOPs/token, {eq_ms:.2f} ms/step",
        f"MoE: {main.flops_per_token:.4g} FLOPs/token, {main.ms_per_step:.2f} ms/step -> dense needs "
        f"{eq_flops / main.flops_per_token:.2f}x the FLOPs and {eq_ms / main.ms_per_step:.2f}x the "
        "wall time",
        "equal-quality FLOPs ratio per seed (MoE and dense sweep retrained on each): "
        + ", ".join(f"{r:.2f}" for r in eq_ratios),
        f"MoE vs dense-active: {metrics['flops_ratio_moe_over_dense_active']:.3f}x FLOPs, "
        f"{timings['wall_ratio_moe_over_dense_active']:.2f}x wall time, "
        f"{metrics['params_ratio_moe_over_dense_active']:.2f}x parameters",
        "FLOPs: FlopCounterMode on one forward+backward of a training batch (matmuls; attention "
        "by hand), hand: 6 * (n * shared + sum_e n_e * expert) weights + 12 L B T^2 C.",
        f"ms/step: median over {cfg.timing_repeats} interleaved rounds of one training step "
        f"(forward, backward, AdamW) per model, on this machine, {cfg.num_threads} thread(s); "
        f"they vary from run to run. Dispatch overhead (wall ratio / FLOP ratio): {overhead:.2f}.",
        "reproduce: dvc repro moe   (or: python stages/moe.py, with data/processed/splits)",
    ]
    findings = [
        Finding.at_most(
            "the hand FLOP count (6 x weights x tokens routed + attention) equals FlopCounterMode's "
            "count of one forward+backward, for the MoE and every dense model (max relative diff)",
            "flop_count_max_rel_diff", metrics["flop_count_max_rel_diff"], cfg.max_flop_rel_diff,
            kind=INVARIANT),
        Finding.at_most(
            f"the {cfg.model.moe.experts}-expert MoE costs about the FLOPs of the dense model with "
            f"its active parameters (ratio; the router adds a little) while holding "
            f"{metrics['params_ratio_moe_over_dense_active']:.2f}x the parameters",
            "flops_ratio_moe_over_dense_active", metrics["flops_ratio_moe_over_dense_active"],
            cfg.max_active_flops_ratio, kind=INVARIANT),
        Finding.compare(
            "the dense model of equal val loss needs more FLOPs per token than the MoE "
            f"(interpolated along the dense width sweep; ratio dense / MoE, mean over {len(eq_ratios)} "
            "seeds, each with its own MoE and dense sweep; an MoE no better than its dense-active "
            "peer would fail)",
            "equal_quality.flops_ratio_dense_over_moe", eq_ratios,
            margin=cfg.min_equal_quality_flops_ratio),
        dispatch,
    ]
    return ItemResult(item=ITEM["swaps"], metrics=metrics, timings=timings, findings=findings,
                      figures={"flops_wall.png": _swaps_figure(main, dense, eq_flops, eq_ms, inside)},
                      texts={"swaps.txt": "\n".join(lines) + "\n"})


def _swaps_figure(main: _Run, dense: list[_Run], eq_flops: float, eq_ms: float, inside: bool
                  ) -> Figure:
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, attr, label, eq in ((axes[0], "flops_per_token", "FLOPs per token (forward+backward)", eq_flops),
                                (axes[1], "ms_per_step", "wall time per training step (ms)", eq_ms)):
        xs = [getattr(r, attr) for r in dense]
        ax.plot(xs, [r.val_loss for r in dense], "o-", color="C0", label="dense, MLP width sweep")
        for r in dense:
            ax.annotate(f"d_ff={r.cfg.d_ff}", (getattr(r, attr), r.val_loss), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
        ax.plot([getattr(main, attr)], [main.val_loss], "*", color="C3", markersize=14,
                label=f"MoE E={main.cfg.moe.experts} top-{main.cfg.moe.top_k}")
        ax.plot([eq], [main.val_loss], "s", mfc="none", color="C2", markersize=10,
                label="dense of equal quality" + ("" if inside else " (bound)"))
        ax.axhline(main.val_loss, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # crowded minor labels on a short log axis
        ax.set(xlabel=label)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("validation loss (nats / byte)")
    axes[0].legend(fontsize=8)
    fig.suptitle("MoE vs dense: FLOPs (counted) and wall time (measured, CPU) at equal quality")
    return fig


# ---------------------------------------------------------------------------------------------


#: What :func:`run` reads: the corpus's train and val splits.
Inputs = CorpusSplits


def run(cfg: MoEExperimentConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the MoE and dense models, measure routing, FLOPs and wall time.

    Args:
        cfg: the stage config.
        inputs: the corpus splits.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, val_texts = inputs.train_texts, inputs.val_texts
    with torch_threads(cfg.num_threads):
        train = TokenBatcher(byte_tokens(train_texts), cfg.seq_len, seed=cfg.seed)
        val = TokenBatcher(byte_tokens(val_texts), cfg.seq_len, mode="sequential")
        bs = cfg.train.batch_size
        val_x = [x for x, _ in val.eval_batches(bs, cfg.val_batches)]

        def fit(name: str, model_cfg: MiniFormerConfig, seed: int = cfg.seed) -> _Run:
            model, result = train_run(model_cfg, cfg.train, train, val, seed=seed)
            bar.update(1)  # the sweep's progress bar, opened below
            return _Run(name, model_cfg, model, result, mean_loss(model, val, bs, cfg.val_batches),
                        seed)

        m = cfg.model
        moe_cfgs = {"main": m, "no_aux": replace(m, moe=replace(m.moe, aux_weight=0.0, z_weight=0.0))}
        for experts, k in cfg.variants:
            if (experts, k) != (m.moe.experts, m.moe.top_k):
                moe_cfgs[f"E{experts}_top{k}"] = replace(m, moe=replace(m.moe, experts=experts, top_k=k))
        widths = cfg.dense_widths()
        active_cfg = replace(m, moe=None, d_ff=cfg.active_d_ff)
        total = len(moe_cfgs) + len(widths) + (2 + len(widths)) * len(cfg.extra_seeds)
        with progress(total=total, desc="moe: models", unit="model") as bar:
            moes = {name: fit(name, c) for name, c in moe_cfgs.items()}
            dense = [fit(f"dense_{w}", replace(m, moe=None, d_ff=w)) for w in widths]
            routing = {name: collect_routing(r.model, val_x) for name, r in moes.items()}
            active = next(r for r in dense if r.cfg.d_ff == cfg.active_d_ff)
            per_seed = {cfg.seed: seed_stats(cfg, moes["main"], moes["no_aux"], active,
                                             routing["main"], routing["no_aux"], val_x)}
            replicates: dict[int, tuple[float, list[float]]] = {}
            for seed in cfg.extra_seeds:  # the paired comparisons' other seeds
                runs = [fit(n, c, seed) for n, c in (("main", m), ("no_aux", moe_cfgs["no_aux"]),
                                                     ("dense_active", active_cfg))]
                per_seed[seed] = seed_stats(cfg, *runs, collect_routing(runs[0].model, val_x),
                                            collect_routing(runs[1].model, val_x), val_x)
                sweep = [runs[2] if w == cfg.active_d_ff else fit(f"dense_{w}", replace(m, moe=None, d_ff=w), seed)
                         for w in widths]  # item 3's dense sweep on this seed
                replicates[seed] = (runs[0].val_loss, [r.val_loss for r in sweep])

        main = moes["main"]
        capacity_sweep = []
        for cf in [*cfg.capacity_factors, None]:
            for _, layer in _moe_layers(main.model):
                layer.capacity_factor = cf
            stats = collect_routing(main.model, val_x)
            dropped = float(np.mean([1 - d["kept"].float().mean() for d in stats.values()]))
            capacity_sweep.append((cf, dropped, mean_loss(main.model, val, bs, cfg.val_batches)))
        for _, layer in _moe_layers(main.model):
            layer.capacity_factor = m.moe.capacity_factor

        x, y = next(iter(val.eval_batches(bs, 1)))  # one (B, T) batch for FLOPs and timing
        timed = [main, *dense]
        for r in timed:
            n_tokens = x.numel()
            r.flops_per_token = step_flops(r.model, x, y) / n_tokens
            r.hand_flops_per_token = hand_flops(r.model, x) / n_tokens
        for r, seconds in zip(timed, time_steps(timed, x, y, cfg.train.lr, cfg.timing_repeats)):
            r.step_seconds = seconds
        return [
            routing_item(cfg, moes, {r.cfg.d_ff: r for r in dense}, routing, capacity_sweep,
                         per_seed),
            utilization_item(cfg, routing, per_seed),
            swaps_item(cfg, main, dense, replicates),
        ]
