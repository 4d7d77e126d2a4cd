"""The curriculum experiments of section "Flash Attention & Sparse Attention" (items 1-3).

* ``flash-attention-and-sparse-attention/1`` (:func:`tiled_item`): tiled attention with an online
  softmax, forward and backward (:mod:`nlpcurriculum.nn.tiled_attention`), its block size chosen
  from this machine's L2 cache. Invariants: outputs and gradients equal torch's fused kernel
  (``F.scaled_dot_product_attention``) in fp32, causal and not. The bytes each variant moves to
  and from main memory are counted (``bytes_moved``). The finding: at ``memory_length`` tokens the
  peak resident memory of a forward + backward through the tiled kernel is at most
  ``max_memory_ratio`` of plain attention's, which stores the ``(T, T)`` weights; an
  implementation that materialised the weights would fail it. The machine's main-memory
  bandwidth is measured with a copy far larger than the caches, and each variant's counted
  traffic is converted into the seconds it alone would take (a floor under its time: the part
  of the cost no amount of arithmetic speed removes).
* ``flash-attention-and-sparse-attention/2`` (:func:`sparse_item`): local, strided and global
  block patterns (:mod:`nlpcurriculum.nn.sparse_attention`). Invariants: each equals dense
  attention under the same token mask (outputs and gradients). The findings: the time of a
  forward + backward follows the number of live tiles (a line through the measurements explains
  at least ``min_live_tiles_r2`` of their variance), and the sparsest pattern is at least
  ``min_sparse_speedup`` times faster than dense attention over interleaved rounds. A kernel
  that multiplied every tile and masked afterwards would take the dense time for every pattern
  and fail both.
* ``flash-attention-and-sparse-attention/3`` (:func:`benchmark_item`): plain (weights stored),
  recompute (plain attention under activation checkpointing: the weights are recomputed in the
  backward pass), tiled (ours) and torch's fused kernel at lengths up to ``max(lengths)``: time
  of forward + backward over interleaved rounds and peak resident memory, per length. Findings:
  plain attention's peak memory grows quadratically (doubling T multiplies it by at least
  ``min_plain_memory_growth``) while the tiled kernel's grows at most ``max_tiled_memory_growth``
  times; the fused kernel beats plain attention's time at the longest length by
  ``min_fused_speedup``; recompute costs time (plain is faster than recompute by
  ``min_recompute_slowdown``) to save memory.

Every time and memory reading is a clock or allocator reading: it goes to ``timings`` and the
findings on it are ``timed`` (the host's CPU and caches are recorded beside them). On this CPU
the tiled kernel is a Python loop over tiles, so its gain is memory, not speed; on a GPU the same
loop runs in one kernel with the tiles in on-chip SRAM, and the bytes it saves are the time.

Left out: quality of sparse patterns on a trained model (a recall task), GPU timings, and
dropout inside the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from nlpcurriculum.metrics.hardware import cache_sizes
from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads
from nlpcurriculum.nn.sparse_attention import block_layout, block_sparse_attention, live_fraction, token_mask
from nlpcurriculum.nn.tiled_attention import bytes_moved, choose_block_size, tiled_attention
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.activation_checkpointing import peak_rss_delta
from nlpcurriculum.training.progress import progress

__all__ = ["FlashAttentionConfig", "ITEMS", "Inputs", "benchmark_item", "copy_bandwidth", "plain_attention",
           "run", "sparse_item", "tiled_item"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("flash-attention-and-sparse-attention/1",
                          "flash-attention-and-sparse-attention/2",
                          "flash-attention-and-sparse-attention/3")

#: L2 size assumed where sysfs does not report the machine's caches (stated in the metrics).
FALLBACK_L2_BYTES = 1024 * 1024


@dataclass
class FlashAttentionChecks:
    """Bounds of the findings and tolerances of the invariants (params ``flash_attention.checks``).

    Attributes:
        max_forward_diff: largest |ours - torch| output difference in fp32 (item 1 and 2
            invariants).
        max_grad_diff: largest |ours - torch| gradient difference in fp32.
        max_memory_ratio: item 1: tiled peak memory / plain peak memory at ``memory_length``.
        min_live_tiles_r2: item 2: variance of the times explained by a line in the live tiles.
        min_sparse_speedup: item 2: dense time / sparsest pattern's time (median of rounds).
        min_plain_memory_growth: item 3: plain peak memory at 2T / at T (quadratic: about 4).
        max_tiled_memory_growth: item 3: tiled peak memory at 2T / at T (linear: about 2).
        min_fused_speedup: item 3: plain time / fused-kernel time at the longest length.
        min_recompute_slowdown: item 3: recompute time / plain time at the longest length.
    """

    max_forward_diff: float = 1e-5
    max_grad_diff: float = 1e-4
    max_memory_ratio: float = 0.10
    min_live_tiles_r2: float = 0.9
    min_sparse_speedup: float = 2.0
    min_plain_memory_growth: float = 3.0
    max_tiled_memory_growth: float = 2.5
    min_fused_speedup: float = 1.2
    min_recompute_slowdown: float = 1.05


@dataclass
class FlashAttentionConfig:
    """Knobs of :func:`run` (the ``flash_attention`` params section).

    Attributes:
        heads: attention heads (batch 1), each ``head_dim`` wide.
        head_dim: size of each head.
        parity_lengths: lengths at which outputs and gradients are compared with torch's kernel.
        lengths: lengths of the benchmark (item 3); consecutive entries should double for the
            memory-growth findings.
        memory_length: length of item 1's memory finding.
        block: tile size of the tiled kernel; 0 chooses it from the L2 cache.
        sparse_length: tokens of item 2's patterns.
        sparse_block: tile size of item 2's layouts.
        windows: local windows (blocks each side) of item 2's local patterns.
        stride: item 2's strided pattern (with a window of 1 and one global block).
        rounds: timed rounds per measurement (interleaved across the arms).
        threads: torch threads while timing (one is robust on a shared machine: two spinning
            OpenMP threads can be many times slower when another process holds a core).
        seed: seed of the random queries, keys and values.
        checks: bounds of the findings.
    """

    heads: int = 2
    head_dim: int = 64
    parity_lengths: list[int] = field(default_factory=lambda: [1024, 4096])
    lengths: list[int] = field(default_factory=lambda: [1024, 2048, 4096, 8192])
    memory_length: int = 8192
    block: int = 0
    sparse_length: int = 4096
    sparse_block: int = 128
    windows: list[int] = field(default_factory=lambda: [1, 4])
    stride: int = 8
    rounds: int = 7
    threads: int = 1
    seed: int = 0
    checks: FlashAttentionChecks = field(default_factory=FlashAttentionChecks)

    def __post_init__(self) -> None:
        if self.heads < 1 or self.head_dim < 1:
            raise ValueError(f"heads and head_dim must be >= 1, got {self.heads}, {self.head_dim}")
        if len(self.lengths) < 2 or sorted(self.lengths) != self.lengths:
            raise ValueError(f"lengths must be at least two, increasing, got {self.lengths}")
        if not self.parity_lengths or not self.windows:
            raise ValueError("parity_lengths and windows must not be empty")
        if self.rounds < 2:
            raise ValueError(f"rounds must be >= 2 (a timing finding needs a spread), got {self.rounds}")
        if self.sparse_length < 4 * self.sparse_block:
            raise ValueError(f"sparse_length {self.sparse_length} must hold at least 4 blocks of "
                             f"{self.sparse_block} for a pattern to be sparse")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but the machine (random tensors, seeded by the config)."""


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Attention as the formula reads: scores and weights stored as ``(..., T, T)`` tensors."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])                   # (..., T, T)
    if causal:
        T = q.shape[-2]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v                                   # (..., T, d)


def _qkv(cfg: FlashAttentionConfig, T: int, seed_offset: int = 0, grad: bool = True) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(cfg.seed + seed_offset)
    return [torch.randn(1, cfg.heads, T, cfg.head_dim, generator=g).requires_grad_(grad) for _ in range(3)]


def _fwd_bwd(attend: Callable[..., torch.Tensor], T: int, cfg: FlashAttentionConfig) -> Callable[[], None]:
    """A closure running one forward + backward of ``attend`` on fixed random inputs of length T."""
    q, k, v = _qkv(cfg, T)

    def step() -> None:
        out = attend(q, k, v)
        out.backward(torch.ones_like(out))
        for x in (q, k, v):
            x.grad = None
    return step


def _variants(block: int) -> dict[str, Callable[..., torch.Tensor]]:
    return {
        "plain": lambda q, k, v: plain_attention(q, k, v, causal=True),
        "recompute": lambda q, k, v: checkpoint(plain_attention, q, k, v, True, use_reentrant=False),
        "tiled": lambda q, k, v: tiled_attention(q, k, v, causal=True, block=block),
        "fused": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }


def _peak(step: Callable[[], None], repeats: int = 2) -> float:
    """Lowest peak-RSS growth (bytes) of ``step`` over ``repeats`` runs (NaN where unmeasurable)."""
    peaks = [peak_rss_delta(step) for _ in range(repeats)]
    return float(min(p for p in peaks)) if all(p is not None for p in peaks) else float("nan")


def copy_bandwidth(rounds: int, nbytes: int = 256 * 2 ** 20) -> float:
    """Main-memory bandwidth (bytes/s) of a tensor copy far larger than the caches, median of rounds.

    A copy reads and writes each byte once, so it moves ``2 * nbytes``: the rate any
    memory-bound kernel can at best reach on this machine with these threads.
    """
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    times = interleaved_rounds({"copy": lambda: dst.copy_(src)}, rounds)["copy"]
    return 2 * nbytes / float(np.median(times))


def chosen_block(cfg: FlashAttentionConfig) -> tuple[int, int]:
    """``(block, L2 bytes used to choose it)``: the configured block, or one sized to the L2 cache."""
    l2 = cache_sizes().get("L2", FALLBACK_L2_BYTES)
    return (cfg.block or choose_block_size(cfg.head_dim, l2)), l2


def tiled_item(cfg: FlashAttentionConfig) -> ItemResult:
    """Item 1: parity with torch's kernel, bytes moved, and peak memory against plain attention."""
    block, l2 = chosen_block(cfg)
    c = cfg.checks
    metrics: dict[str, float] = {"block": float(block), "l2_bytes_used_for_block": float(l2)}
    fwd_diff = grad_diff = 0.0
    for T in progress(cfg.parity_lengths, desc="flash_attention: parity", unit="length"):
        for causal in (False, True):
            q, k, v = _qkv(cfg, T, seed_offset=1)
            out = tiled_attention(q, k, v, causal=causal, block=block)
            ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            d_out = torch.randn_like(out)
            ours = torch.autograd.grad(out, (q, k, v), d_out)
            theirs = torch.autograd.grad(ref, (q, k, v), d_out)
            f = (out - ref).abs().max().item()
            gdiff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
            metrics[f"forward_max_abs_diff.T{T}.{'causal' if causal else 'full'}"] = f
            metrics[f"grad_max_abs_diff.T{T}.{'causal' if causal else 'full'}"] = gdiff
            fwd_diff, grad_diff = max(fwd_diff, f), max(grad_diff, gdiff)
    for T in cfg.lengths:
        metrics[f"bytes_moved.plain.T{T}"] = float(bytes_moved(T, cfg.head_dim) * cfg.heads)
        metrics[f"bytes_moved.tiled.T{T}"] = float(bytes_moved(T, cfg.head_dim, block) * cfg.heads)

    variants = _variants(block)
    with torch_threads(cfg.threads):
        peaks = {name: _peak(_fwd_bwd(variants[name], cfg.memory_length, cfg)) for name in ("plain", "tiled")}
        bandwidth = copy_bandwidth(cfg.rounds)
    ratio = peaks["tiled"] / peaks["plain"]
    timings = {f"peak_rss_bytes.{k}.T{cfg.memory_length}": v for k, v in peaks.items()}
    timings["copy_bandwidth_bytes_per_s"] = bandwidth
    for T in cfg.lengths:  # the time each variant's traffic alone would take at that bandwidth
        for kind in ("plain", "tiled"):
            timings[f"traffic_seconds.{kind}.T{T}"] = metrics[f"bytes_moved.{kind}.T{T}"] / bandwidth
    timings[f"peak_memory_ratio_tiled_over_plain.T{cfg.memory_length}"] = ratio
    T = cfg.memory_length
    findings = [
        Finding.invariant(f"tiled attention's outputs equal torch's fused kernel in fp32 (lengths "
                          f"{cfg.parity_lengths}, causal and not, block {block})",
                          "forward_max_abs_diff", fwd_diff, fwd_diff <= c.max_forward_diff, c.max_forward_diff),
        Finding.invariant("its gradients (recomputed from the saved log-sum-exp) equal torch's",
                          "grad_max_abs_diff", grad_diff, grad_diff <= c.max_grad_diff, c.max_grad_diff),
        Finding.at_most(f"at T = {T} a forward + backward through the tiled kernel peaks at most "
                        f"{c.max_memory_ratio:.0%} of plain attention's resident memory (plain stores "
                        "the (T, T) weights; a kernel that materialised them would not pass)",
                        f"peak_memory_ratio_tiled_over_plain.T{T}", ratio, c.max_memory_ratio).as_timed(),
    ]
    lengths = np.array(cfg.lengths)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.loglog(lengths, [metrics[f"bytes_moved.plain.T{t}"] for t in lengths], "o-", label="plain (S, P in memory)")
    ax.loglog(lengths, [metrics[f"bytes_moved.tiled.T{t}"] for t in lengths], "s-", label=f"tiled (block {block})")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("bytes to and from main memory (forward, counted)")
    ax.set_title(f"bytes moved, {cfg.heads} heads x {cfg.head_dim}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ItemResult(ITEMS[0], metrics=metrics, timings=timings, findings=findings,
                      figures={"bytes_moved.png": fig})


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    """Coefficient of determination of the least-squares line through ``(x, y)``."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    return float(1.0 - (residual ** 2).sum() / total) if total > 0 else float("nan")


def sparse_item(cfg: FlashAttentionConfig) -> ItemResult:
    """Item 2: local / strided / global layouts: parity with dense masked attention, time vs live tiles."""
    T, b, c = cfg.sparse_length, cfg.sparse_block, cfg.checks
    patterns = {"dense": {}}
    patterns.update({f"local_w{w}": {"window": w} for w in cfg.windows})
    patterns[f"strided_s{cfg.stride}"] = {"window": 1, "stride": cfg.stride}
    patterns["local_global"] = {"window": 1, "n_global": 1}
    layouts = {name: block_layout(T, b, causal=True, **p) for name, p in patterns.items()}

    metrics: dict[str, float] = {}
    fwd_diff = grad_diff = 0.0
    for name, layout in layouts.items():
        metrics[f"live_tiles.{name}"] = float(layout.sum())
        metrics[f"live_fraction.{name}"] = live_fraction(layout, causal=True)
        q, k, v = _qkv(cfg, T, seed_offset=2)
        out = block_sparse_attention(q, k, v, layout, b, causal=True)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=token_mask(layout, T, b, causal=True))
        d_out = torch.randn_like(out)
        ours = torch.autograd.grad(out, (q, k, v), d_out)
        theirs = torch.autograd.grad(ref, (q, k, v), d_out)
        fwd_diff = max(fwd_diff, (out - ref).abs().max().item())
        grad_diff = max(grad_diff, max((x - y).abs().max().item() for x, y in zip(ours, theirs)))
    metrics["forward_max_abs_diff"], metrics["grad_max_abs_diff"] = fwd_diff, grad_diff

    arms = {name: _fwd_bwd(lambda q, k, v, _l=layout: block_sparse_attention(q, k, v, _l, b, causal=True), T, cfg)
            for name, layout in layouts.items()}
    with torch_threads(cfg.threads):
        times = interleaved_rounds(arms, cfg.rounds)
    timings = {f"seconds.{name}": float(np.median(t)) for name, t in times.items()}
    live = np.array([metrics[f"live_tiles.{n}"] for n in layouts])
    median = np.array([timings[f"seconds.{n}"] for n in layouts])
    r2 = _r2(live, median)
    timings["time_vs_live_tiles_r2"] = r2
    sparsest = min(layouts, key=lambda n: metrics[f"live_tiles.{n}"])
    findings = [
        Finding.invariant("every block-sparse pattern (local, strided, global) equals dense attention "
                          "under the same token mask, outputs and gradients", "max_abs_diff",
                          max(fwd_diff, grad_diff), fwd_diff <= c.max_forward_diff and grad_diff <= c.max_grad_diff,
                          c.max_grad_diff),
        Finding.at_least(f"the time of a forward + backward follows the live tiles: a line in the live "
                         f"tiles explains at least {c.min_live_tiles_r2:.0%} of the variance of the "
                         f"median times over {len(layouts)} patterns (masking after multiplying every "
                         "tile would leave the times flat)", "time_vs_live_tiles_r2", r2,
                         c.min_live_tiles_r2).as_timed(),
        Finding.timing_ratio(f"the sparsest pattern ({sparsest}, {metrics[f'live_fraction.{sparsest}']:.0%} "
                             f"of the causal tiles) is at least {c.min_sparse_speedup}x faster than dense",
                             f"speedup.dense_over_{sparsest}", times["dense"], times[sparsest],
                             c.min_sparse_speedup),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, len(layouts) + 1)
    for ax, (name, layout) in zip(axes, layouts.items()):
        ax.imshow(layout.numpy(), cmap="Greys", interpolation="nearest")
        ax.set_title(f"{name}\n{metrics[f'live_fraction.{name}']:.0%} live", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    ax.plot(live, median * 1e3, "o")
    ax.set_xlabel("live tiles")
    ax.set_ylabel("ms per forward + backward")
    ax.set_title(f"T={T}, R²={r2:.3f}", fontsize=8)
    ax.grid(alpha=0.3)
    return ItemResult(ITEMS[1], metrics=metrics, timings=timings, findings=findings,
                      figures={"patterns_and_time.png": fig})


def benchmark_item(cfg: FlashAttentionConfig) -> ItemResult:
    """Item 3: plain, recompute, tiled and fused attention: time and peak memory vs length."""
    block, _ = chosen_block(cfg)
    c = cfg.checks
    variants = _variants(block)
    timings: dict[str, float] = {}
    rounds: dict[int, dict[str, list[float]]] = {}
    with torch_threads(cfg.threads):
        for T in progress(cfg.lengths, desc="flash_attention: lengths", unit="length"):
            steps = {name: _fwd_bwd(fn, T, cfg) for name, fn in variants.items()}
            rounds[T] = interleaved_rounds(steps, cfg.rounds)
            for name, step in steps.items():
                timings[f"seconds.{name}.T{T}"] = float(np.median(rounds[T][name]))
                timings[f"peak_rss_bytes.{name}.T{T}"] = _peak(step)
    lo, hi = cfg.lengths[-2], cfg.lengths[-1]
    growth = {name: timings[f"peak_rss_bytes.{name}.T{hi}"] / timings[f"peak_rss_bytes.{name}.T{lo}"]
              for name in variants}
    for name, g in growth.items():
        timings[f"peak_memory_growth.{name}.T{lo}_to_T{hi}"] = g
    metrics = {f"bytes_moved.{kind}.T{T}": float(bytes_moved(T, cfg.head_dim, b) * cfg.heads)
               for T in cfg.lengths for kind, b in (("plain", None), ("tiled", block))}
    metrics["block"] = float(block)
    findings = [
        Finding.at_least(f"plain attention's peak memory grows quadratically: from T={lo} to T={hi} it "
                         f"multiplies by at least {c.min_plain_memory_growth}", f"peak_memory_growth.plain",
                         growth["plain"], c.min_plain_memory_growth).as_timed(),
        Finding.at_most(f"the tiled kernel's grows linearly: at most {c.max_tiled_memory_growth}x from "
                        f"T={lo} to T={hi}", "peak_memory_growth.tiled", growth["tiled"],
                        c.max_tiled_memory_growth).as_timed(),
        Finding.timing_ratio(f"torch's fused kernel is at least {c.min_fused_speedup}x faster than plain "
                             f"attention at T={hi} (forward + backward, interleaved rounds)",
                             f"speedup.fused_over_plain.T{hi}", rounds[hi]["plain"], rounds[hi]["fused"],
                             c.min_fused_speedup),
        Finding.timing_ratio(f"recomputing the weights in the backward pass costs time: plain attention "
                             f"is at least {c.min_recompute_slowdown}x faster than recompute at T={hi}",
                             f"speedup.plain_over_recompute.T{hi}", rounds[hi]["recompute"],
                             rounds[hi]["plain"], c.min_recompute_slowdown),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    for name in variants:
        ax_t.loglog(cfg.lengths, [timings[f"seconds.{name}.T{T}"] for T in cfg.lengths], "o-", label=name)
        ax_m.loglog(cfg.lengths, [timings[f"peak_rss_bytes.{name}.T{T}"] / 2 ** 20 for T in cfg.lengths],
                    "o-", label=name)
    ax_t.set_ylabel("seconds per forward + backward (median)")
    ax_m.set_ylabel("peak RSS growth (MiB)")
    for ax in (ax_t, ax_m):
        ax.set_xlabel("sequence length T (causal)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"attention variants, {cfg.heads} heads x {cfg.head_dim}, {cfg.threads} threads")
    header = f"{'T':>6}" + "".join(f"{name + ' ms':>14}{name + ' MiB':>14}" for name in variants)
    rows = [f"{T:>6}" + "".join(f"{timings[f'seconds.{n}.T{T}'] * 1e3:>14.1f}"
                                f"{timings[f'peak_rss_bytes.{n}.T{T}'] / 2 ** 20:>14.1f}" for n in variants)
            for T in cfg.lengths]
    table = ("forward + backward, causal: median ms over interleaved rounds, peak RSS growth\n"
             + header + "\n" + "\n".join(rows) + "\n")
    return ItemResult(ITEMS[2], metrics=metrics, timings=timings, findings=findings,
                      figures={"time_and_memory.png": fig}, texts={"benchmark.txt": table})


def run(cfg: FlashAttentionConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    return [tiled_item(cfg), sparse_item(cfg), benchmark_item(cfg)]
