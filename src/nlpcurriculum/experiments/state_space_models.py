"""The curriculum experiments of section "State Space Models (Mamba/SSM)" (items 1-3).

The task is **selective copying** (Gu & Dao 2023, arXiv:2312.00752, section 4.1.1): a context of
``context`` tokens, mostly a blank token, holds ``n_data`` data tokens at random positions; after
it come ``n_data`` "copy" tokens, at which the model must emit the data tokens in order. Where the
data sit changes from sequence to sequence, so a model must decide from the content of each
token whether to store it: the input-dependent step size of a selective SSM can, a
time-invariant SSM's fixed dynamics cannot. Accuracy is the share of data tokens emitted right
(chance: ``1 / data_vocab``).

* ``state-space-models/1`` (:func:`layer_item`): the selective SSM (:mod:`nlpcurriculum.nn.ssm`).
  Invariants: the parallel scan equals the recurrence and the one-token steps, and the layer
  equals ``mambapy``'s ``MambaBlock`` given the same weights. The finding: selectivity is what
  solves the task: at the training length the selective model's accuracy exceeds the
  time-invariant ablation's (same size, budget and seeds) by ``min_selective_gain``.
* ``state-space-models/2`` (:func:`long_item`): the selective SSM against a transformer of the
  same width and depth (RoPE, the mini-former), both trained at ``context`` tokens, evaluated at
  every length of ``eval_lengths`` up to 10k+ tokens. Findings: at the longest length the SSM's
  accuracy exceeds the transformer's by ``min_ssm_minus_attention``, and it stays within
  ``max_ssm_drop`` of its accuracy at the training length.
* ``state-space-models/3`` (:func:`cost_item`): one mixer layer, forward over ``bench_lengths``
  tokens (selective scan vs causal softmax attention through torch's fused kernel): time and peak
  resident memory; and generation, one token at a position ``p``: the SSM's recurrent step holds a
  fixed-size state, attention reads ``p`` cached keys. Findings (timed): attention's forward time
  grows faster than the SSM's over the last doubling span; attention's per-token decode time
  grows with the position while the SSM's does not.

Left out: the induction-heads task, hardware-aware fused scans (here the scan is
``log2 L`` PyTorch steps that keep ``(L, ED, N)`` states, so its memory is larger than a fused
kernel's), and Mamba-2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nlpcurriculum.data.selective_copying import copy_batch
from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.models.ssm_lm import SSMLM, SSMLMConfig
from nlpcurriculum.nn.ssm import SelectiveSSM, SSMConfig, parallel_scan, sequential_scan
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.activation_checkpointing import peak_rss_delta
from nlpcurriculum.training.progress import progress

__all__ = ["ITEMS", "Inputs", "SSMExperimentConfig", "cost_item", "layer_item",
           "long_item", "run", "train_models"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("state-space-models/1", "state-space-models/2", "state-space-models/3")

ARMS = ("selective", "time_invariant", "attention")


@dataclass
class SSMChecks:
    """Bounds of the findings and tolerances of the invariants (params ``ssm.checks``).

    Attributes:
        max_scan_diff: parallel scan vs recurrence vs one-token steps, max |difference|.
        max_mambapy_diff: our layer vs ``mambapy.MambaBlock`` on the same weights.
        min_selective_gain: item 1: selective minus time-invariant accuracy at the training length.
        min_ssm_minus_attention: item 2: SSM minus transformer accuracy at the longest length.
        max_ssm_drop: item 2: SSM accuracy at the training length minus at the longest length.
        min_attention_growth_over_ssm: item 3: attention's forward-time growth over the last
            span of ``bench_lengths`` divided by the SSM's.
        min_attention_decode_growth: item 3: attention's per-token time at the last decode
            position over the first.
        max_ssm_decode_growth: item 3: the SSM's per-token time at the last position over the first.
    """

    max_scan_diff: float = 1e-4
    max_mambapy_diff: float = 1e-5
    min_selective_gain: float = 0.2
    min_ssm_minus_attention: float = 0.2
    max_ssm_drop: float = 0.1
    min_attention_growth_over_ssm: float = 1.5
    min_attention_decode_growth: float = 2.0
    max_ssm_decode_growth: float = 1.3


@dataclass
class SSMExperimentConfig:
    """Knobs of :func:`run` (the ``ssm`` params section).

    Attributes:
        context: tokens of the training context (blanks and data).
        n_data: data tokens to copy.
        data_vocab: distinct data tokens.
        d_model: width of every model; the SSMs expand it 2x inside the mixer.
        d_state: SSM state size per channel.
        n_layers: mixers (SSM) or blocks (transformer).
        n_heads: the transformer's heads.
        steps: training steps per model.
        batch_size: sequences per step.
        lr: AdamW learning rate.
        seeds: one model of each arm per seed (paired comparisons).
        eval_lengths: context lengths to evaluate at (the training length first).
        eval_sequences: sequences per evaluation.
        bench_lengths: item 3's forward lengths (the last two give the growth).
        decode_positions: item 3's generation positions (first and last compared).
        rounds: timed rounds, arms interleaved.
        threads: torch threads.
        checks: bounds of the findings.
    """

    context: int = 32
    n_data: int = 2
    data_vocab: int = 4
    d_model: int = 32
    d_state: int = 16
    n_layers: int = 2
    n_heads: int = 2
    steps: int = 600
    batch_size: int = 32
    lr: float = 0.005
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_lengths: list[int] = field(default_factory=lambda: [32, 512, 16384])
    eval_sequences: int = 64
    bench_lengths: list[int] = field(default_factory=lambda: [4096, 16384, 65536])
    decode_positions: list[int] = field(default_factory=lambda: [512, 16384])
    rounds: int = 5
    threads: int = 1
    checks: SSMChecks = field(default_factory=SSMChecks)

    def __post_init__(self) -> None:
        if self.n_data >= self.context:
            raise ValueError(f"n_data {self.n_data} must be below context {self.context}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds, got {self.seeds}")
        if not self.eval_lengths or self.eval_lengths[0] != self.context:
            raise ValueError(f"eval_lengths must start at the training context {self.context}, "
                             f"got {self.eval_lengths}")
        if len(self.bench_lengths) < 2 or len(self.decode_positions) < 2:
            raise ValueError("bench_lengths and decode_positions need at least two entries each")
        if self.rounds < 2:
            raise ValueError(f"rounds must be >= 2, got {self.rounds}")

    @property
    def vocab_size(self) -> int:
        return 2 + self.data_vocab


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: nothing but generated tasks (seeded) and the machine."""


def _build(arm: str, cfg: SSMExperimentConfig) -> torch.nn.Module:
    if arm == "attention":
        return build_model(MiniFormerConfig(vocab_size=cfg.vocab_size, d_model=cfg.d_model,
                                            n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                            max_seq_len=cfg.context + cfg.n_data, position="rope",
                                            norm="rmsnorm", dropout=0.0))
    ssm = SSMConfig(d_model=cfg.d_model, d_state=cfg.d_state, selective=arm == "selective")
    return SSMLM(SSMLMConfig(vocab_size=cfg.vocab_size, n_layers=cfg.n_layers, ssm=ssm))


def _logits(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    out = model(idx)
    return out if isinstance(out, torch.Tensor) else out.logits


def _train(arm: str, cfg: SSMExperimentConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = _build(arm, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(1000 + seed)  # the same batches for every arm of a seed
    for _ in range(cfg.steps):
        x, data = copy_batch(cfg.batch_size, cfg.context, cfg.n_data, cfg.data_vocab, g)
        logits = _logits(model, x)[:, -cfg.n_data:]                      # (B, n_data, V)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), data.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def _accuracy(model: torch.nn.Module, cfg: SSMExperimentConfig, length: int, seed: int) -> float:
    """Share of data tokens copied right, on fresh sequences with ``length`` context tokens."""
    g = torch.Generator().manual_seed(10_000 + seed)  # held out: never a training batch
    right, total, left = 0, 0, cfg.eval_sequences
    while left > 0:
        batch = min(left, max(1, 65536 // length))  # bound the memory of very long sequences
        x, data = copy_batch(batch, length, cfg.n_data, cfg.data_vocab, g)
        right += int((_logits(model, x)[:, -cfg.n_data:].argmax(-1) == data).sum())
        total += data.numel()
        left -= batch
    return right / total


def train_models(cfg: SSMExperimentConfig) -> dict[tuple[str, int], torch.nn.Module]:
    """``{(arm, seed): trained model}`` for every arm and seed."""
    jobs = [(arm, seed) for seed in cfg.seeds for arm in ARMS]
    with torch_threads(cfg.threads):
        return {(arm, seed): _train(arm, cfg, seed) for arm, seed in progress(jobs, desc="ssm: models", unit="model")}


def accuracies(models: dict[tuple[str, int], torch.nn.Module], cfg: SSMExperimentConfig
               ) -> dict[tuple[str, int], list[float]]:
    """``{(arm, length): [accuracy per seed]}``; the attention arm only up to the lengths it can hold."""
    out: dict[tuple[str, int], list[float]] = {}
    with torch_threads(cfg.threads):
        for (arm, seed), model in progress(models.items(), desc="ssm: evaluation", unit="model"):
            for length in cfg.eval_lengths:
                out.setdefault((arm, length), []).append(_accuracy(model, cfg, length, seed))
    return out


def layer_item(cfg: SSMExperimentConfig, acc: dict[tuple[str, int], list[float]]) -> ItemResult:
    """Item 1: the scan forms agree, the layer equals mambapy's, selectivity solves the task."""
    from mambapy import mamba

    c = cfg.checks
    torch.manual_seed(0)
    layer = SelectiveSSM(SSMConfig(d_model=cfg.d_model, d_state=cfg.d_state))
    u = torch.randn(2, 200, cfg.d_model)
    with torch.no_grad():
        parallel = layer(u)
        sequential = layer(u, scan=sequential_scan)
        state, steps = layer.initial_state(2), []
        for t in range(u.shape[1]):
            y, state = layer.step(u[:, t], state)
            steps.append(y)
        scan_diff = max((parallel - sequential).abs().max().item(),
                        (torch.stack(steps, 1) - sequential).abs().max().item())
        theirs = mamba.MambaBlock(mamba.MambaConfig(d_model=cfg.d_model, n_layers=1, d_state=cfg.d_state,
                                                    expand_factor=2, d_conv=4))
        theirs.load_state_dict(layer.state_dict())
        oracle_diff = (theirs(u) - parallel).abs().max().item()
    L = cfg.context
    sel, lti = acc[("selective", L)], acc[("time_invariant", L)]
    metrics = {"scan_max_abs_diff": scan_diff, "mambapy_max_abs_diff": oracle_diff,
               "selective_accuracy": float(np.mean(sel)), "time_invariant_accuracy": float(np.mean(lti)),
               "chance_accuracy": 1.0 / cfg.data_vocab}
    findings = [
        Finding.invariant("the parallel scan equals the recurrence and the one-token steps (200 "
                          "tokens)", "scan_max_abs_diff", scan_diff, scan_diff <= c.max_scan_diff, c.max_scan_diff),
        Finding.invariant("our selective SSM equals mambapy's MambaBlock given the same weights",
                          "mambapy_max_abs_diff", oracle_diff, oracle_diff <= c.max_mambapy_diff, c.max_mambapy_diff),
        Finding.compare(f"selectivity solves selective copying: at the training length ({L} tokens) "
                        "the selective SSM copies more data tokens than the time-invariant "
                        f"ablation of the same size and budget, by at least {c.min_selective_gain} "
                        "(paired by seed; fixed dynamics cannot tell data from blanks)",
                        "selective_minus_time_invariant_accuracy", sel, lti, margin=c.min_selective_gain),
    ]
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings)


def long_item(cfg: SSMExperimentConfig, acc: dict[tuple[str, int], list[float]]) -> ItemResult:
    """Item 2: SSM vs transformer accuracy from the training length to 10k+ tokens."""
    c = cfg.checks
    metrics = {f"accuracy.{arm}.L{length}": float(np.mean(v)) for (arm, length), v in acc.items()}
    longest, trained = cfg.eval_lengths[-1], cfg.context
    ssm_long, attn_long = acc[("selective", longest)], acc[("attention", longest)]
    findings = [
        Finding.compare(f"at {longest} tokens ({longest // trained}x the training length) the selective "
                        f"SSM copies more data tokens than the transformer (RoPE, same width and "
                        f"depth), by at least {c.min_ssm_minus_attention} (paired by seed)",
                        f"ssm_minus_attention_accuracy.L{longest}", ssm_long, attn_long,
                        margin=c.min_ssm_minus_attention),
        Finding.compare(f"the selective SSM keeps its accuracy from {trained} to {longest} tokens: it "
                        f"drops by less than {c.max_ssm_drop} (paired by seed)",
                        f"ssm_accuracy_change.L{trained}_to_L{longest}", ssm_long, acc[("selective", trained)],
                        margin=-c.max_ssm_drop),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for arm in ARMS:
        means = [np.mean(acc[(arm, L)]) for L in cfg.eval_lengths]
        errs = [np.std(acc[(arm, L)], ddof=1) / np.sqrt(len(cfg.seeds)) for L in cfg.eval_lengths]
        ax.errorbar(cfg.eval_lengths, means, yerr=errs, marker="o", capsize=3, label=arm.replace("_", "-"))
    ax.axhline(1.0 / cfg.data_vocab, color="grey", ls=":", label="chance")
    ax.axvline(trained, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("context length (tokens); dashed: training length")
    ax.set_ylabel(f"copy accuracy (mean ± SE, {len(cfg.seeds)} seeds)")
    ax.set_title("selective copying beyond the training length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    table = "\n".join(f"{arm:>15}: " + "  ".join(f"L={L}: {np.mean(acc[(arm, L)]):.3f}" for L in cfg.eval_lengths)
                      for arm in ARMS)
    return ItemResult(ITEMS[1], metrics=metrics, findings=findings, figures={"accuracy_vs_length.png": fig},
                      texts={"accuracy.txt": table + "\n"})


def _attention_layer(d_model: int, n_heads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A causal softmax-attention mixer with projections, through torch's fused kernel."""
    qkv = torch.nn.Linear(d_model, 3 * d_model, bias=False)
    out = torch.nn.Linear(d_model, d_model, bias=False)

    def forward(u: torch.Tensor) -> torch.Tensor:
        B, L, _ = u.shape
        q, k, v = qkv(u).view(B, L, 3, n_heads, -1).permute(2, 0, 3, 1, 4)  # (B, h, L, hs) each
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out(y.transpose(1, 2).reshape(B, L, d_model))
    return forward


@torch.no_grad()
def cost_item(cfg: SSMExperimentConfig) -> ItemResult:
    """Item 3: forward time and memory by length, per-token decode time by position."""
    c = cfg.checks
    torch.manual_seed(0)
    ssm = SelectiveSSM(SSMConfig(d_model=cfg.d_model, d_state=cfg.d_state))
    attention = _attention_layer(cfg.d_model, cfg.n_heads)
    timings: dict[str, float] = {}
    rounds: dict[int, dict[str, list[float]]] = {}
    with torch_threads(cfg.threads):
        for L in progress(cfg.bench_lengths, desc="ssm: lengths", unit="length"):
            u = torch.randn(1, L, cfg.d_model)
            arms = {"ssm": lambda u=u: ssm(u), "attention": lambda u=u: attention(u)}
            rounds[L] = interleaved_rounds(arms, cfg.rounds)
            for arm, fn in arms.items():
                median = float(np.median(rounds[L][arm]))
                timings[f"forward_seconds.{arm}.L{L}"] = median
                timings[f"forward_tokens_per_s.{arm}.L{L}"] = L / median
                peak = peak_rss_delta(fn)
                timings[f"peak_rss_bytes.{arm}.L{L}"] = float("nan") if peak is None else peak
        decode = _decode_rounds(ssm, cfg)
    for (arm, p), times in decode.items():
        timings[f"decode_seconds_per_token.{arm}.p{p}"] = float(np.median(times))
    lo, hi = cfg.bench_lengths[-2], cfg.bench_lengths[-1]
    growth = {arm: [b / a for a, b in zip(rounds[lo][arm], rounds[hi][arm])] for arm in ("ssm", "attention")}
    first, last = cfg.decode_positions[0], cfg.decode_positions[-1]
    findings = [
        Finding.timing_ratio(f"attention's forward time grows faster than the SSM's from {lo} to {hi} "
                             f"tokens (quadratic vs linear work): its growth over the SSM's, per round, "
                             f"is at least {c.min_attention_growth_over_ssm}",
                             f"forward_growth_attention_over_ssm.L{lo}_to_L{hi}", growth["attention"],
                             growth["ssm"], c.min_attention_growth_over_ssm),
        Finding.timing_ratio(f"generating one token, attention's time grows with the position (it reads "
                             f"every cached key): at position {last} it is at least "
                             f"{c.min_attention_decode_growth}x its time at {first}",
                             f"decode_growth.attention.p{first}_to_p{last}", decode[("attention", last)],
                             decode[("attention", first)], c.min_attention_decode_growth),
        Finding.timing_ratio(f"the SSM's recurrent step does not grow with the position (a fixed-size "
                             f"state): its time at {first} is at least {1 / c.max_ssm_decode_growth:.2f}x "
                             f"its time at {last}, i.e. the late step is at most {c.max_ssm_decode_growth}x "
                             f"the early one", f"decode_growth.ssm.p{first}_to_p{last}",
                             decode[("ssm", first)], decode[("ssm", last)], 1 / c.max_ssm_decode_growth),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_t, ax_m = fig.subplots(1, 2)
    for arm in ("ssm", "attention"):
        ax_t.loglog(cfg.bench_lengths, [timings[f"forward_tokens_per_s.{arm}.L{L}"] for L in cfg.bench_lengths],
                    "o-", label=arm)
        ax_m.loglog(cfg.bench_lengths, [timings[f"peak_rss_bytes.{arm}.L{L}"] / 2 ** 20 for L in cfg.bench_lengths],
                    "o-", label=arm)
    ax_t.set_ylabel("forward tokens / s (one layer)")
    ax_m.set_ylabel("peak RSS growth (MiB)")
    for ax in (ax_t, ax_m):
        ax.set_xlabel("sequence length")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"one mixer layer, d_model {cfg.d_model}, {cfg.threads} thread(s)")
    return ItemResult(ITEMS[2], timings=timings, findings=findings,
                      metrics={"d_model": float(cfg.d_model), "d_state": float(cfg.d_state)},
                      figures={"throughput_and_memory.png": fig})


def _decode_rounds(ssm: SelectiveSSM, cfg: SSMExperimentConfig) -> dict[tuple[str, int], list[float]]:
    """Seconds per generated token at each decode position, for the SSM step and cached attention."""
    hs = cfg.d_model // cfg.n_heads
    arms: dict[str, Callable[[], Any]] = {}
    for p in cfg.decode_positions:
        state = ssm.initial_state(1)
        x = torch.randn(1, cfg.d_model)
        keys = torch.randn(1, cfg.n_heads, p, hs)   # the cache after p tokens
        values = torch.randn(1, cfg.n_heads, p, hs)
        q = torch.randn(1, cfg.n_heads, 1, hs)
        arms[f"ssm.{p}"] = lambda x=x, state=state: ssm.step(x, state)
        arms[f"attention.{p}"] = lambda q=q, k=keys, v=values: F.scaled_dot_product_attention(q, k, v)
    # many calls per timed unit: one call is microseconds, below the clock's resolution on a busy machine
    repeat = 50
    timed = {name: (lambda fn=fn: [fn() for _ in range(repeat)]) for name, fn in arms.items()}
    times = interleaved_rounds(timed, cfg.rounds)
    return {(name.split(".")[0], int(name.split(".")[1])): [t / repeat for t in ts] for name, ts in times.items()}


def run(cfg: SSMExperimentConfig, inputs: Inputs = Inputs()) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    acc = accuracies(train_models(cfg), cfg)
    return [layer_item(cfg, acc), long_item(cfg, acc), cost_item(cfg)]
