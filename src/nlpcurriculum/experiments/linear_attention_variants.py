"""The curriculum experiments of section "Linear Attention Variants" (items 1-3).

* ``linear-attention-variants/1`` (:func:`estimator_item`): Performer, Linformer and FNet
  (:mod:`nlpcurriculum.nn.linear_attention`). Invariants: our FAVOR+ equals performer-pytorch's
  given the same projection; Linformer with identity projections is softmax attention; FNet's
  mixing is the 2-D DFT. Findings on the Performer's estimator, against exact softmax attention
  on random queries and keys over ``draws`` independent feature draws: its relative error at
  ``features[-1]`` features is at most ``max_error_ratio`` of the error at ``features[0]``, and
  orthogonal features beat independent ones (FAVOR+'s variance reduction) by ``min_orthogonal_gain``.
* ``linear-attention-variants/2`` (:func:`quality_item`): the same small encoder with each mixer
  (softmax, Performer, Linformer, FNet), trained on bidirectional selective copying (the data
  tokens among blanks, then the copy slots; :mod:`nlpcurriculum.data.selective_copying`)
  at the same budget, seeds paired. Findings: the Performer stays within ``max_performer_loss``
  of softmax attention's accuracy; FNet, whose mixing does not depend on the content, loses at
  least ``min_fnet_loss`` against it. Linformer's accuracy is reported beside them.
* ``linear-attention-variants/3`` (:func:`speed_item`): one mixer's forward at lengths up to 100k+
  tokens: Performer, Linformer and FNet against torch's fused softmax attention, measured at every
  length; plain attention (the ``(T, T)`` weights stored) only where its weights fit in
  ``memory_budget_gib``, and marked as not fitting elsewhere, never extrapolated. Finding
  (timed): at the longest length each linear mixer processes at least ``min_speedup`` times the
  fused kernel's tokens per second.

Left out: causal linear attention (prefix sums) and language-model quality, GPU timings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nlpcurriculum.data.selective_copying import copy_batch
from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads
from nlpcurriculum.nn.linear_attention import (
    fnet_mixing,
    linformer_attention,
    orthogonal_features,
    performer_attention,
    softmax_attention,
)
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.progress import progress

__all__ = ["ITEMS", "Inputs", "LinearAttentionConfig", "MixerEncoder", "estimator_item", "quality_item",
           "run", "speed_item"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("linear-attention-variants/1", "linear-attention-variants/2",
                          "linear-attention-variants/3")
MIXERS = ("softmax", "performer", "linformer", "fnet")


@dataclass
class LinearAttentionChecks:
    """Bounds of the findings and tolerances of the invariants (params ``linear_attention.checks``).

    Attributes:
        max_oracle_diff: our Performer vs performer-pytorch, and Linformer(I, I) vs softmax.
        max_error_ratio: item 1: error at the most features / error at the fewest.
        min_orthogonal_gain: item 1: iid-feature error minus orthogonal-feature error.
        max_performer_loss: item 2: softmax accuracy minus Performer accuracy.
        min_fnet_loss: item 2: softmax accuracy minus FNet accuracy.
        min_speedup: item 3: a linear mixer's tokens/s over the fused kernel's at the longest length.
    """

    max_oracle_diff: float = 1e-5
    max_error_ratio: float = 0.5
    min_orthogonal_gain: float = 0.005
    max_performer_loss: float = 0.15
    min_fnet_loss: float = 0.2
    min_speedup: float = 5.0


@dataclass
class LinearAttentionConfig:
    """Knobs of :func:`run` (the ``linear_attention`` params section).

    Attributes:
        head_dim: width of the random queries and keys of item 1, and of item 3's head.
        estimator_length: tokens of item 1's random queries and keys.
        features: item 1's feature counts (fewest first).
        draws: independent feature draws per count.
        context, n_data, data_vocab: item 2's selective-copying task (bidirectional).
        d_model, n_layers, n_heads: item 2's encoder.
        performer_features: random features of the Performer mixer (items 2 and 3).
        linformer_k: projected length of the Linformer mixer (items 2 and 3).
        steps, batch_size, lr, seeds: item 2's training budget and seeds.
        eval_sequences: item 2's held-out sequences per model.
        lengths: item 3's lengths (the longest carries the finding).
        memory_budget_gib: item 3: plain attention runs only where its weights fit in this.
        rounds: timed rounds, arms interleaved.
        threads: torch threads.
        checks: bounds of the findings.
    """

    head_dim: int = 32
    estimator_length: int = 256
    features: list[int] = field(default_factory=lambda: [16, 256])
    draws: int = 8
    context: int = 32
    n_data: int = 2
    data_vocab: int = 4
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    performer_features: int = 64
    linformer_k: int = 16
    steps: int = 300
    batch_size: int = 32
    lr: float = 0.003
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_sequences: int = 256
    lengths: list[int] = field(default_factory=lambda: [8192, 32768, 131072])
    memory_budget_gib: float = 4.0
    rounds: int = 3
    threads: int = 1
    checks: LinearAttentionChecks = field(default_factory=LinearAttentionChecks)

    def __post_init__(self) -> None:
        if len(self.features) < 2 or sorted(self.features) != self.features:
            raise ValueError(f"features must be at least two counts, increasing, got {self.features}")
        if self.draws < 2 or self.rounds < 2:
            raise ValueError("draws and rounds must be >= 2 (a finding needs a spread)")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds, got {self.seeds}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads {self.n_heads} must divide d_model {self.d_model}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but seeded random tensors and tasks, and the machine."""


class MixerLayer(nn.Module):
    """Multi-head token mixing with one of :data:`MIXERS`: ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, mixer: str, d_model: int, n_heads: int, seq_len: int, features: int, k: int) -> None:
        super().__init__()
        self.mixer, self.n_heads = mixer, n_heads
        if mixer != "fnet":
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
            self.out = nn.Linear(d_model, d_model, bias=False)
        if mixer == "performer":  # fixed random features (no redraws), a buffer so it moves with the model
            self.register_buffer("projection", orthogonal_features(features, d_model // n_heads))
        if mixer == "linformer":
            self.e = nn.Parameter(torch.randn(k, seq_len) / seq_len ** 0.5)
            self.f = nn.Parameter(torch.randn(k, seq_len) / seq_len ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixer == "fnet":
            return fnet_mixing(x)
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)  # (B, h, T, hs) each
        if self.mixer == "softmax":
            y = softmax_attention(q, k, v)
        elif self.mixer == "performer":
            y = performer_attention(q, k, v, self.projection)
        else:
            y = linformer_attention(q, k, v, self.e, self.f)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class MixerEncoder(nn.Module):
    """Embedding + learned positions, pre-norm blocks (mixer, GELU MLP), a head on every position."""

    def __init__(self, mixer: str, vocab: int, d_model: int, n_layers: int, n_heads: int, seq_len: int,
                 features: int, k: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        self.mixers = nn.ModuleList(MixerLayer(mixer, d_model, n_heads, seq_len, features, k) for _ in range(n_layers))
        self.mlps = nn.ModuleList(nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                                nn.Linear(4 * d_model, d_model)) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, vocab))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx) + self.pos[: idx.shape[1]]                     # (B, T, D)
        for norm, mixer, mlp in zip(self.norms, self.mixers, self.mlps):
            h = h + mixer(norm(h))
            h = h + mlp(h)
        return self.head(h)                                               # (B, T, V)


def _relative_error(q, k, v, projection) -> float:
    exact = softmax_attention(q, k, v)
    return float((performer_attention(q, k, v, projection) - exact).norm() / exact.norm())


def _iid_features(m: int, d: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(m, d, generator=g)


def estimator_item(cfg: LinearAttentionConfig) -> ItemResult:
    """Item 1: oracle parity and the Performer's estimator error by feature count."""
    from performer_pytorch.performer_pytorch import linear_attention, softmax_kernel

    c, d = cfg.checks, cfg.head_dim
    g = torch.Generator().manual_seed(0)
    # queries and keys of the size a trained layer's are: |q|, |k| ~ 1 per sqrt(d) scaled dimension
    q, k, v = (torch.randn(1, 2, cfg.estimator_length, d, generator=g) * d ** -0.25 * 2 for _ in range(3))
    proj = orthogonal_features(cfg.features[0], d, g)
    theirs = linear_attention(softmax_kernel(q, projection_matrix=proj, is_query=True, eps=0.0),
                              softmax_kernel(k, projection_matrix=proj, is_query=False, eps=0.0), v)
    oracle = (performer_attention(q, k, v, proj) - theirs).abs().max().item()
    eye = torch.eye(cfg.estimator_length)
    linformer = (linformer_attention(q, k, v, eye, eye) - softmax_attention(q, k, v)).abs().max().item()

    errors = {m: [_relative_error(q, k, v, orthogonal_features(m, d, torch.Generator().manual_seed(100 + i)))
                  for i in range(cfg.draws)] for m in cfg.features}
    iid = [_relative_error(q, k, v, _iid_features(cfg.features[-1], d, torch.Generator().manual_seed(100 + i)))
           for i in range(cfg.draws)]
    few, many = cfg.features[0], cfg.features[-1]
    metrics = {"performer_pytorch_max_abs_diff": oracle, "linformer_identity_max_abs_diff": linformer}
    metrics.update({f"relative_error.orthogonal.m{m}": float(np.mean(e)) for m, e in errors.items()})
    metrics[f"relative_error.iid.m{many}"] = float(np.mean(iid))
    findings = [
        Finding.invariant("our FAVOR+ Performer equals performer-pytorch's given the same projection",
                          "performer_pytorch_max_abs_diff", oracle, oracle <= c.max_oracle_diff, c.max_oracle_diff),
        Finding.invariant("Linformer with identity projections is softmax attention",
                          "linformer_identity_max_abs_diff", linformer, linformer <= c.max_oracle_diff,
                          c.max_oracle_diff),
        Finding.compare(f"the Performer's estimate of softmax attention sharpens with features: its "
                        f"relative error at {many} features is at most {c.max_error_ratio} of the error at "
                        f"{few} (paired over {cfg.draws} draws)", f"error_ratio.m{many}_over_m{few}",
                        [a / b for a, b in zip(errors[many], errors[few])], margin=-c.max_error_ratio,
                        higher_is_better=False),
        Finding.compare(f"orthogonal random features (FAVOR+) estimate it better than independent ones at "
                        f"{many} features, by at least {c.min_orthogonal_gain} relative error",
                        "iid_minus_orthogonal_error", iid, errors[many], margin=c.min_orthogonal_gain,
                        paired=False),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    means = [np.mean(errors[m]) for m in cfg.features]
    ses = [np.std(errors[m], ddof=1) / np.sqrt(cfg.draws) for m in cfg.features]
    ax.errorbar(cfg.features, means, yerr=ses, marker="o", capsize=3, label="orthogonal (FAVOR+)")
    ax.errorbar([many], [np.mean(iid)], yerr=[np.std(iid, ddof=1) / np.sqrt(cfg.draws)], marker="s",
                capsize=3, label="independent")
    ax.set_xscale("log")
    ax.set_xlabel("random features m")
    ax.set_ylabel("relative error vs softmax attention")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings, figures={"estimator_error.png": fig})


def _train_encoder(mixer: str, cfg: LinearAttentionConfig, seed: int) -> MixerEncoder:
    torch.manual_seed(seed)
    seq_len = cfg.context + cfg.n_data
    model = MixerEncoder(mixer, 2 + cfg.data_vocab, cfg.d_model, cfg.n_layers, cfg.n_heads, seq_len,
                         cfg.performer_features, cfg.linformer_k)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(1000 + seed)  # the same batches for every mixer of a seed
    for _ in range(cfg.steps):
        x, data = copy_batch(cfg.batch_size, cfg.context, cfg.n_data, cfg.data_vocab, g)
        logits = model(x)[:, -cfg.n_data:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def _accuracy(model: MixerEncoder, cfg: LinearAttentionConfig, seed: int) -> float:
    g = torch.Generator().manual_seed(10_000 + seed)  # held out
    x, data = copy_batch(cfg.eval_sequences, cfg.context, cfg.n_data, cfg.data_vocab, g)
    return float((model(x)[:, -cfg.n_data:].argmax(-1) == data).float().mean())


def quality_item(cfg: LinearAttentionConfig) -> ItemResult:
    """Item 2: each mixer trained on selective copying at the same budget, accuracy by seed."""
    c = cfg.checks
    acc: dict[str, list[float]] = {m: [] for m in MIXERS}
    jobs = [(mixer, seed) for seed in cfg.seeds for mixer in MIXERS]
    with torch_threads(cfg.threads):
        for mixer, seed in progress(jobs, desc="linear_attention: models", unit="model"):
            acc[mixer].append(_accuracy(_train_encoder(mixer, cfg, seed), cfg, seed))
    metrics = {f"accuracy.{m}": float(np.mean(v)) for m, v in acc.items()}
    metrics["chance_accuracy"] = 1.0 / cfg.data_vocab
    findings = [
        Finding.compare(f"the Performer ({cfg.performer_features} features) stays within "
                        f"{c.max_performer_loss} of softmax attention's copy accuracy (paired by seed)",
                        "performer_minus_softmax_accuracy", acc["performer"], acc["softmax"],
                        margin=-c.max_performer_loss),
        Finding.compare(f"FNet, whose mixing ignores the content, loses at least {c.min_fnet_loss} of "
                        "softmax attention's accuracy on a task that needs content-based selection "
                        "(paired by seed)", "softmax_minus_fnet_accuracy", acc["softmax"], acc["fnet"],
                        margin=c.min_fnet_loss),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, m in enumerate(MIXERS):
        ax.scatter([i] * len(acc[m]), acc[m], color="grey", s=12)
        ax.bar(i, np.mean(acc[m]), alpha=0.6)
    ax.axhline(1.0 / cfg.data_vocab, color="grey", ls=":", label="chance")
    ax.set_xticks(range(len(MIXERS)), MIXERS)
    ax.set_ylabel(f"copy accuracy ({len(cfg.seeds)} seeds)")
    ax.set_title(f"selective copying, {cfg.steps} steps, d_model {cfg.d_model}")
    ax.legend()
    return ItemResult(ITEMS[1], metrics=metrics, findings=findings, figures={"accuracy_by_mixer.png": fig})


def _plain_attention(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1) @ v


@torch.no_grad()
def speed_item(cfg: LinearAttentionConfig) -> ItemResult:
    """Item 3: tokens per second of one mixer at each length, quadratic ones only where they fit."""
    c, d, heads = cfg.checks, cfg.head_dim, 1
    projection = orthogonal_features(cfg.performer_features, d, torch.Generator().manual_seed(0))
    timings: dict[str, float] = {}
    metrics: dict[str, float] = {}
    longest = cfg.lengths[-1]
    final_rounds: dict[str, list[float]] = {}
    with torch_threads(cfg.threads):
        for T in progress(cfg.lengths, desc="linear_attention: lengths", unit="length"):
            q, k, v = (torch.randn(1, heads, T, d) for _ in range(3))
            e = torch.randn(cfg.linformer_k, T) / T ** 0.5
            x = torch.randn(1, T, d)
            arms: dict[str, Callable[[], object]] = {
                "fused_softmax": lambda: softmax_attention(q, k, v),
                "performer": lambda: performer_attention(q, k, v, projection),
                "linformer": lambda: linformer_attention(q, k, v, e, e),
                "fnet": lambda: fnet_mixing(x),
            }
            weights_gib = heads * T * T * 4 / 2 ** 30
            metrics[f"plain_weights_gib.T{T}"] = weights_gib
            fits = weights_gib * 2 <= cfg.memory_budget_gib  # scores and weights
            metrics[f"plain_fits.T{T}"] = float(fits)
            if fits:
                arms["plain_softmax"] = lambda: _plain_attention(q, k, v)
            times = interleaved_rounds(arms, cfg.rounds)
            for name, ts in times.items():
                timings[f"tokens_per_s.{name}.T{T}"] = T / float(np.median(ts))
            if T == longest:
                final_rounds = times
    findings = [
        Finding.timing_ratio(f"at {longest} tokens {name} mixes at least {c.min_speedup}x the tokens per second "
                             "of torch's fused softmax attention (one head, interleaved rounds)",
                             f"speedup.{name}_over_fused.T{longest}", final_rounds["fused_softmax"],
                             final_rounds[name], c.min_speedup)
        for name in ("performer", "linformer", "fnet")
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for name in ("fused_softmax", "plain_softmax", "performer", "linformer", "fnet"):
        pts = [(T, timings[f"tokens_per_s.{name}.T{T}"]) for T in cfg.lengths if f"tokens_per_s.{name}.T{T}" in timings]
        if pts:
            ax.loglog(*zip(*pts), "o-", label=name)
    for T in cfg.lengths:
        if not metrics[f"plain_fits.T{T}"]:
            ax.axvline(T, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("tokens (dotted: plain attention's weights do not fit the memory budget)")
    ax.set_ylabel("tokens / s, one head")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    lines = [f"{'T':>8}" + "".join(f"{n:>16}" for n in ("fused_softmax", "plain_softmax", "performer", "linformer", "fnet"))]
    for T in cfg.lengths:
        cells = []
        for n in ("fused_softmax", "plain_softmax", "performer", "linformer", "fnet"):
            key = f"tokens_per_s.{n}.T{T}"
            cells.append(f"{timings[key]:>16.0f}" if key in timings
                         else f"{'no fit (%.0f GiB)' % (2 * metrics[f'plain_weights_gib.T{T}']):>16}")
        lines.append(f"{T:>8}" + "".join(cells))
    return ItemResult(ITEMS[2], metrics=metrics, timings=timings, findings=findings,
                      figures={"tokens_per_second.png": fig},
                      texts={"speed.txt": "tokens per second, one head of %d\n" % d + "\n".join(lines) + "\n"})


def run(cfg: LinearAttentionConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    return [estimator_item(cfg), quality_item(cfg), speed_item(cfg)]
