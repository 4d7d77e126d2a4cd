"""Experiments of "Scaling Laws & Model Capacity": a ladder of model sizes at one token budget.

1. *Loss vs size* (:func:`loss_item`): byte-level mini-formers from ~10^4 to ~10^6
   non-embedding parameters ``N`` (Kaplan et al. 2020's count: the token embedding and learned
   position table left out) are trained on the corpus for the same number of tokens ``D``, with
   the same batches and warmup + cosine schedule fitted to that budget, and a peak learning rate
   either shared or from Kaplan et al.'s rule ``LR(N) = 0.003239 - 0.0001395 ln N``. The final
   validation loss ``L`` of each is fitted with the saturating power law

       L(N) = E + A * N^(-alpha)

   (Kaplan et al. 2020, arXiv:2001.08361, eq. 1.1 with an irreducible term; Hoffmann et al.
   2022, arXiv:2203.15556, eq. 2 at fixed D) by ``scipy.optimize.curve_fit``; the parameters'
   standard errors come from its covariance, the plotted band from 2000 parameter draws of
   ``N(popt, pcov)`` (5-95%), and R^2 is ``1 - SS_res / SS_tot`` on the measured losses. Loss is
   plotted against ``N`` and against training compute ``C = 6 N D`` (FLOPs: forward 2ND,
   backward 4ND; attention's ``T``-dependent term left out, as in Kaplan et al.), with each
   size's validation curve along its compute.
2. *Wall clock, memory, throughput* (:func:`benchmark_item`): per size, the training wall time,
   tokens per second, and memory: parameter, gradient and AdamW-moment bytes (4 + 4 + 8 bytes
   per parameter), the bytes autograd saves for backward on one batch (``saved_tensors_hooks``)
   and the peak resident-set growth of one forward + backward. On this CPU "VRAM" is RAM: the peak
   RSS is the process's high-water mark. Wall times, tokens/s and peak RSS are the item's
   ``timings``; the throughput finding times one training step of the smallest and the largest
   size over ``throughput_rounds`` interleaved rounds (:func:`step_time_rounds`).
3. *How small can you go* (:func:`extrapolate_item`): (a) an out-of-range check: the law fitted
   on every size but the largest (all seeds) predicts the largest one's loss, larger than any
   size in that fit; its relative error per seed against a bound fixed in advance; (b) the smallest ``N`` whose predicted loss
   reaches a target loss (``target_loss``, or by default midway between the two largest models'
   measured losses), with an interval from the parameter draws; a model with about that many
   parameters is then trained the same way and its measured loss compared with the prediction.

Byte tokens (vocabulary 256): losses are nats per byte. Every size is trained with each of
``seeds`` (3 by default; each run is one point of the fit, and the size comparisons are paired
by seed). Left out: the compute-optimal frontier over several budgets
(Chinchilla's IsoFLOP curves), learning-rate tuning per size, ``T``-dependent FLOPs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.figure import Figure

from nlpcurriculum.experiments.harness import (
    BYTE_VOCAB,
    CorpusSplits,
    byte_tokens,
    mean_loss,
    torch_threads,
)
from nlpcurriculum.metrics.timing import interleaved_rounds
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.activation_checkpointing import peak_rss_delta, saved_tensor_bytes
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.progress import progress
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "ScaleSize",
    "ScalingConfig",
    "SizeRun",
    "fit_power_law",
    "kaplan_lr",
    "power_law",
    "run",
    "smallest_n_for",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "loss": "scaling-laws-and-model-capacity/1",
    "benchmark": "scaling-laws-and-model-capacity/2",
    "extrapolate": "scaling-laws-and-model-capacity/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class ScaleSize:
    """One rung of the ladder: a name and the three shape knobs (the rest from ``base``)."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int = 2


def _default_sizes() -> list[ScaleSize]:
    return [
        ScaleSize("xxs", 16, 2, 2),    # ~6.6k non-embedding parameters
        ScaleSize("xs", 32, 2, 2),     # ~25k
        ScaleSize("tiny", 48, 3, 4),   # ~85k
        ScaleSize("small", 64, 4, 4),  # ~200k (the `tiny` preset's shape)
        ScaleSize("medium", 96, 4, 4),  # ~448k
        ScaleSize("large", 128, 6, 4),  # ~1.19M (the `small` preset's shape)
    ]


@dataclass
class ScalingChecks:
    """Bounds of the findings that no knob above sets (params ``scaling_laws.checks``).

    Attributes:
        min_size_gain: item 1: the smallest size's val loss minus the largest's (nats), paired
            by seed, by two standard errors.
        min_throughput_ratio: item 2: step time of the largest size over the smallest's (median
            of interleaved rounds, two robust SE above it).
        max_n_star: item 3: the predicted size N* when the verify run is skipped (target below E).
    """

    min_size_gain: float = 0.1
    min_throughput_ratio: float = 2.0
    max_n_star: float = 1e17


@dataclass(kw_only=True)
class ScalingConfig:
    """The ``scaling_laws`` section of params/scaling_laws_and_model_capacity.yaml.

    Attributes:
        base: the architecture every size shares (position, norm, mlp, ...); its ``d_model``,
            ``n_layers`` and ``n_heads`` are replaced per size. ``vocab_size`` 256;
            ``max_seq_len`` is the training window.
        sizes: the ladder, smallest first (at least 4 for a 3-parameter fit).
        train: trainer knobs, the same for every size; ``max_steps * batch_size * max_seq_len``
            is the token budget ``D``.
        seeds: initialisation seeds per size (each run is one point of the fit; the size
            comparisons and the out-of-range check are paired by / taken over them).
        val_batches: batches of ``train.batch_size`` windows for the final validation loss.
        lr_rule: ``"fixed"`` (``train.lr`` for every size) or ``"kaplan"`` (the peak learning
            rate of each size from :func:`kaplan_lr`; ``train.lr`` is then unused).
        target_loss: item 3: the loss to reach; ``null``: midway between the two largest
            sizes' measured losses.
        verify_layers: item 3: depth of the verification model (its width is solved for N*).
        num_threads: torch intra-op threads.
        min_r2: item 1: the fit's R^2 must reach this.
        max_verify_rel_error: item 3: |measured - predicted| / predicted of the verification run.
        max_holdout_rel_error: item 3: the same for the largest size predicted by the fit without
            it (mean over its seeds, two standard errors below).
        throughput_rounds: item 2: interleaved rounds of one training step of the smallest and
            the largest size.
        checks: the other bounds of the findings.
    """

    base: MiniFormerConfig
    sizes: list[ScaleSize] = field(default_factory=_default_sizes)
    train: TrainerConfig
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    val_batches: int = 32
    lr_rule: str = "kaplan"
    target_loss: float | None = None
    verify_layers: int = 4
    num_threads: int = 1
    min_r2: float = 0.95
    max_verify_rel_error: float = 0.03
    max_holdout_rel_error: float = 0.05
    throughput_rounds: int = 10
    checks: ScalingChecks = field(default_factory=ScalingChecks)

    def __post_init__(self) -> None:
        if self.base.vocab_size != BYTE_VOCAB:
            raise ValueError(f"base.vocab_size must be {BYTE_VOCAB} (byte tokens), got {self.base.vocab_size}")
        if len(self.sizes) < 4:
            raise ValueError(f"sizes needs at least 4 models to fit 3 parameters, got {len(self.sizes)}")
        names = [s.name for s in self.sizes]
        if len(set(names)) != len(names):
            raise ValueError(f"sizes: names must be unique, got {names}")
        for s in self.sizes:
            if s.d_model < 1 or s.n_layers < 1 or s.n_heads < 1 or s.d_model % s.n_heads:
                raise ValueError(f"sizes: {s.name}: d_model={s.d_model} must be a positive "
                                 f"multiple of n_heads={s.n_heads}, n_layers >= 1")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        for name in ("val_batches", "verify_layers", "num_threads", "throughput_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_rule not in LR_RULES:
            raise ValueError(f"lr_rule must be one of {LR_RULES}, got {self.lr_rule!r}")
        if self.target_loss is not None and self.target_loss <= 0:
            raise ValueError(f"target_loss must be > 0 or null, got {self.target_loss}")

    @property
    def tokens_per_run(self) -> int:
        """D: training tokens every model sees."""
        t = self.train
        return t.max_steps * t.batch_size * t.grad_accum * self.base.max_seq_len

    def model_config(self, size: ScaleSize) -> MiniFormerConfig:
        return replace(self.base, d_model=size.d_model, n_layers=size.n_layers,
                       n_heads=size.n_heads, d_ff=None, n_kv_heads=None)


@dataclass
class SizeRun:
    """One trained size: what the items report about it."""

    name: str
    seed: int
    n_params: int  # non-embedding
    n_total: int
    val_loss: float
    train_seconds: float
    tokens_per_s: float
    curve: list[tuple[int, float]]  # (step, val loss)
    param_bytes: float
    optimizer_bytes: float
    activation_bytes: float
    peak_rss_bytes: float


# ---------------------------------------------------------------------------------------------
# the fit


def power_law(n: np.ndarray, e: float, a: float, alpha: float) -> np.ndarray:
    """``E + A * N^(-alpha)``."""
    return e + a * np.power(n, -alpha)


@dataclass
class PowerLawFit:
    """``L(N) = E + A N^-alpha`` with standard errors, R^2 and parameter draws for bands."""

    e: float
    a: float
    alpha: float
    stderr: tuple[float, float, float]
    r2: float
    draws: np.ndarray  # (S, 3) parameter samples from N(popt, pcov)

    def predict(self, n) -> np.ndarray:
        return power_law(np.asarray(n, dtype=float), self.e, self.a, self.alpha)

    def band(self, n, lo: float = 5, hi: float = 95) -> tuple[np.ndarray, np.ndarray]:
        n = np.asarray(n, dtype=float)
        preds = np.stack([power_law(n, *d) for d in self.draws])  # (S, len(n))
        return np.nanpercentile(preds, lo, axis=0), np.nanpercentile(preds, hi, axis=0)


def fit_power_law(n: Sequence[float], loss: Sequence[float], seed: int = 0,
                  n_draws: int = 2000) -> PowerLawFit:
    """Least-squares fit of ``E + A N^-alpha`` (``scipy.optimize.curve_fit``).

    Starts from ``E`` just below the smallest loss, ``alpha = 0.3``, ``A`` matching the largest
    loss; bounds keep ``E >= 0``, ``A >= 0``, ``0 < alpha < 3``.

    Raises:
        ValueError: fewer than 4 points (3 parameters need a degree of freedom).
    """
    from scipy.optimize import curve_fit

    n = np.asarray(n, dtype=float)
    y = np.asarray(loss, dtype=float)
    if n.size < 4 or n.size != y.size:
        raise ValueError(f"fit_power_law needs >= 4 (N, loss) pairs, got {n.size}")
    alpha0 = 0.3
    e0 = 0.9 * float(y.min())
    a0 = max(float(y.max()) - e0, 1e-3) * float(n.min()) ** alpha0
    popt, pcov = curve_fit(power_law, n, y, p0=(e0, a0, alpha0),
                           bounds=([0.0, 0.0, 1e-4], [float(y.min()), np.inf, 3.0]), maxfev=20000)
    pred = power_law(n, *popt)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    pcov = np.where(np.isfinite(pcov), pcov, 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(popt, pcov, size=n_draws, check_valid="ignore")
    draws = draws[(draws[:, 2] > 0) & (draws[:, 1] > 0)]  # keep decreasing laws
    stderr = tuple(float(s) for s in np.sqrt(np.clip(np.diag(pcov), 0, None)))
    return PowerLawFit(float(popt[0]), float(popt[1]), float(popt[2]), stderr, r2, draws)


def smallest_n_for(target: float, e: float, a: float, alpha: float) -> float:
    """The ``N`` where ``E + A N^-alpha`` equals ``target`` (``inf`` if ``target <= E``).

    ``N* = (A / (target - E))^(1/alpha)``; every larger model is predicted to do better.
    """
    if target <= e or a <= 0 or alpha <= 0:
        return math.inf
    log_n = (math.log(a) - math.log(target - e)) / alpha  # in logs: no overflow for tiny alpha
    return math.exp(log_n) if log_n < 700 else math.inf


def width_for(n_target: float, cfg: ScalingConfig) -> int:
    """The even ``d_model`` whose model with ``verify_layers`` blocks has the non-embedding
    parameter count closest to ``n_target`` (counted by building it)."""
    best, best_err = 4, math.inf
    for d in range(4, 1025, 2):
        n = build_model(cfg.model_config(ScaleSize("v", d, cfg.verify_layers, 2))).num_params(
            non_embedding=True)
        err = abs(math.log(n / n_target))
        if err < best_err:
            best, best_err = d, err
        if n > 2 * n_target:
            break
    return best


# ---------------------------------------------------------------------------------------------
# training one size

LR_RULES = ("fixed", "kaplan")


def kaplan_lr(n_params: int) -> float:
    """Kaplan et al. 2020's fitted learning rate for a model of ``N`` non-embedding parameters,
    ``LR(N) = 0.003239 - 0.0001395 ln N`` (their eq. D.1): larger models want smaller steps.

    Worked example: ``N = 6,592`` -> 0.00201; ``N = 1.19e6`` -> 0.00129.
    """
    return max(0.003239 - 0.0001395 * math.log(n_params), 1e-5)


def train_size(cfg: ScalingConfig, size: ScaleSize, seed: int, train: TokenBatcher,
               val: TokenBatcher) -> SizeRun:
    """Train one size on the budget; measure loss, time, throughput and memory."""
    model_cfg = cfg.model_config(size)
    seed_everything(seed)
    model = build_model(model_cfg)
    params = list(model.parameters())
    n_total = sum(p.numel() for p in params)
    # memory of one training step, measured before training on a fresh batch
    x, y = train.next_batch(cfg.train.batch_size)
    counted = []

    def step() -> None:  # one forward + backward; what autograd saves is counted on the way
        with saved_tensor_bytes(params) as saved:
            loss = model(x, targets=y).loss
        loss.backward()
        counted.append(saved.activation_bytes)

    step()  # warm-up: first-call allocations (kernels, allocator pools) are not the model's
    model.zero_grad(set_to_none=True)
    counted.clear()
    peak = peak_rss_delta(step)
    model.zero_grad(set_to_none=True)
    train.load_state_dict(TokenBatcher(train.tokens, train.seq_len, seed=cfg.train.seed).state_dict())

    train_cfg = cfg.train
    if cfg.lr_rule == "kaplan":
        train_cfg = replace(train_cfg, lr=kaplan_lr(model.num_params(non_embedding=True)))
    trainer = Trainer(model, train_cfg, train, val)
    t0 = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - t0
    val_loss = mean_loss(model, val, cfg.train.batch_size, cfg.val_batches)
    curve = [(int(h["step"]), float(h["val_loss"])) for h in result.history if "val_loss" in h]
    bytes_per = params[0].element_size()
    return SizeRun(
        name=size.name, seed=seed, n_params=model.num_params(non_embedding=True), n_total=n_total,
        val_loss=val_loss, train_seconds=seconds, tokens_per_s=result.tokens_seen / seconds,
        curve=curve, param_bytes=float(n_total * bytes_per),
        optimizer_bytes=float(2 * n_total * bytes_per),
        activation_bytes=float(counted[0]),
        peak_rss_bytes=float(peak) if peak is not None else math.nan,
    )


# ---------------------------------------------------------------------------------------------
# items


def loss_item(cfg: ScalingConfig, runs: list[SizeRun], fit: PowerLawFit) -> ItemResult:
    """Item 1: loss vs N and vs compute, the power-law fit with its band and R^2."""
    D = cfg.tokens_per_run
    metrics: dict[str, float] = {
        "tokens_per_run": float(D), "fit.E": fit.e, "fit.A": fit.a, "fit.alpha": fit.alpha,
        "fit.E_stderr": fit.stderr[0], "fit.A_stderr": fit.stderr[1],
        "fit.alpha_stderr": fit.stderr[2], "fit.r2": fit.r2,
    }
    lines = [f"token budget D = {D} bytes per model; L(N) = E + A N^-alpha fitted on {len(runs)} runs",
             f"E = {fit.e:.4f} +- {fit.stderr[0]:.4f}, A = {fit.a:.4g} +- {fit.stderr[1]:.3g}, "
             f"alpha = {fit.alpha:.4f} +- {fit.stderr[2]:.4f}, R^2 = {fit.r2:.4f}", "",
             f"{'size':<8} {'seed':>4} {'N (non-emb.)':>12} {'N total':>9} {'C = 6ND':>10} "
             f"{'val loss':>9} {'fit':>8}"]
    for r in runs:
        key = f"{r.name}.seed{r.seed}"
        c = 6.0 * r.n_params * D
        metrics[f"{key}.n_params"] = float(r.n_params)
        metrics[f"{key}.val_loss"] = r.val_loss
        metrics[f"{key}.compute_flops"] = c
        lines.append(f"{r.name:<8} {r.seed:>4} {r.n_params:>12} {r.n_total:>9} {c:>10.3g} "
                     f"{r.val_loss:>9.4f} {float(fit.predict(r.n_params)):>8.4f}")
    findings = [Finding.at_least(
        "final validation loss falls with non-embedding parameters as a power law "
        "L = E + A N^-alpha (R^2 of the fit on every run)", "fit.r2", fit.r2, cfg.min_r2)]
    n_big, n_small = max(r.n_params for r in runs), min(r.n_params for r in runs)
    by_seed = {r.seed: r for r in runs if r.n_params == n_big}
    pairs = [(by_seed[r.seed].val_loss, r.val_loss) for r in runs
             if r.n_params == n_small and r.seed in by_seed]
    metrics["largest_minus_smallest_loss"] = float(np.mean([b - a for b, a in pairs]))
    findings.append(Finding.compare(
        "the largest model ends below the smallest at the same token budget (smallest minus "
        f"largest val loss, nats, paired over {len(pairs)} seeds; a ladder whose extra capacity "
        "went unused would fail)", "size_gain_smallest_minus_largest",
        [a for _, a in pairs], [b for b, _ in pairs], margin=cfg.checks.min_size_gain))
    series = {f"{r.name}.seed{r.seed}.val_loss": r.curve for r in runs}
    return ItemResult(item=ITEM["loss"], metrics=metrics, series=series, findings=findings,
                      figures={"loss_vs_params.png": _fit_figure(cfg, runs, fit),
                               "loss_vs_compute.png": _compute_figure(cfg, runs, fit)},
                      texts={"scaling_fit.txt": "\n".join(lines) + "\n"})


def _fit_figure(cfg: ScalingConfig, runs: list[SizeRun], fit: PowerLawFit,
                extra: dict[str, tuple[float, float]] | None = None) -> Figure:
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    ns = np.array([r.n_params for r in runs], dtype=float)
    grid = np.geomspace(ns.min() / 2, ns.max() * 4, 200)
    lo, hi = fit.band(grid)
    ax.fill_between(grid, lo, hi, alpha=0.2, color="C0", label="fit 5-95% (parameter draws)")
    ax.plot(grid, fit.predict(grid), color="C0",
            label=f"L = {fit.e:.3f} + {fit.a:.3g} N^-{fit.alpha:.3f}  (R^2 {fit.r2:.3f})")
    ax.scatter(ns, [r.val_loss for r in runs], color="black", zorder=3, label="measured")
    for r in runs:
        ax.annotate(r.name, (r.n_params, r.val_loss), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    for label, (n, loss) in (extra or {}).items():
        ax.scatter([n], [loss], marker="*", s=120, zorder=4, label=label)
    ax.axhline(fit.e, color="grey", linestyle=":", linewidth=1, label=f"E = {fit.e:.3f}")
    # keep the axes on the data: a wide band (few points, correlated E and A) would flatten them
    losses = [r.val_loss for r in runs] + [v[1] for v in (extra or {}).values()]
    span = max(losses) - min(losses) or 1.0
    ax.set_ylim(min(min(losses), fit.e) - 0.15 * span, max(losses) + 0.4 * span)
    ax.set_xscale("log")
    ax.set(xlabel="non-embedding parameters N", ylabel="validation loss (nats / byte)",
           title=f"loss vs size at D = {cfg.tokens_per_run:,} bytes")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def _compute_figure(cfg: ScalingConfig, runs: list[SizeRun], fit: PowerLawFit) -> Figure:
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    tokens_per_step = cfg.tokens_per_run / cfg.train.max_steps
    for i, r in enumerate(runs):
        if r.curve:
            steps, losses = zip(*r.curve)
            ax.plot([6 * r.n_params * s * tokens_per_step for s in steps], losses, color=f"C{i % 10}",
                    alpha=0.6, linewidth=1)
        ax.scatter([6 * r.n_params * cfg.tokens_per_run], [r.val_loss], color=f"C{i % 10}",
                   zorder=3, label=f"{r.name} (N={r.n_params:,})")
    ns = np.geomspace(min(r.n_params for r in runs) / 2, max(r.n_params for r in runs) * 4, 200)
    ax.plot(6 * ns * cfg.tokens_per_run, fit.predict(ns), color="black", linestyle="--",
            linewidth=1, label="fit at the end of training")
    ax.set_xscale("log")
    ax.set(xlabel="training compute C = 6 N D (FLOPs)", ylabel="validation loss (nats / byte)",
           title="loss vs compute (lines: each size's validation curve)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def step_time_rounds(cfg: ScalingConfig, sizes: Sequence[ScaleSize], train: TokenBatcher
                     ) -> dict[str, list[float]]:
    """Seconds of one training step (forward, backward, AdamW) per size, interleaved rounds.

    Fresh models of each size (seeded with ``seeds[0]``) on one batch of ``train.batch_size``
    windows; one warm-up round, then ``throughput_rounds`` rounds each running every size once
    (:func:`~nlpcurriculum.metrics.timing.interleaved_rounds`).
    """
    x, y = TokenBatcher(train.tokens, train.seq_len, seed=cfg.train.seed).next_batch(
        cfg.train.batch_size)
    arms = {}
    for size in sizes:
        seed_everything(cfg.seeds[0])
        model = build_model(cfg.model_config(size)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)

        def step(m=model, o=opt) -> None:
            m(x, targets=y).loss.backward()
            o.step()
            o.zero_grad(set_to_none=True)

        arms[size.name] = step
    return interleaved_rounds(arms, cfg.throughput_rounds)


def benchmark_item(cfg: ScalingConfig, runs: list[SizeRun],
                   rounds: dict[str, list[float]]) -> ItemResult:
    """Item 2: wall clock, throughput and memory per size.

    ``rounds``: :func:`step_time_rounds` of the smallest and the largest size (their names).
    """
    mb = 1e6
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}  # clock and allocator readings, apart from the metrics
    lines = ["memory: weights fp32 (4 B/param), gradients (4 B), AdamW moments (8 B); activations = "
             "bytes autograd saves for backward on one batch; peak RSS = process high-water-mark "
             "growth of one forward + backward (CPU: 'VRAM' is RAM)", "",
             f"{'size':<8} {'N':>9} {'wall s':>8} {'tokens/s':>9} {'weights MB':>10} "
             f"{'grad+adam MB':>12} {'activ. MB':>9} {'peak RSS MB':>11}"]
    for r in runs:
        key = f"{r.name}.seed{r.seed}"
        timings[f"{key}.train_seconds"] = r.train_seconds
        timings[f"{key}.tokens_per_s"] = r.tokens_per_s
        metrics[f"{key}.param_bytes"] = r.param_bytes
        metrics[f"{key}.activation_bytes"] = r.activation_bytes
        timings[f"{key}.peak_rss_bytes"] = r.peak_rss_bytes
        lines.append(f"{r.name:<8} {r.n_params:>9} {r.train_seconds:>8.1f} {r.tokens_per_s:>9.0f} "
                     f"{r.param_bytes / mb:>10.2f} {(r.param_bytes + r.optimizer_bytes) / mb:>12.2f} "
                     f"{r.activation_bytes / mb:>9.2f} {r.peak_rss_bytes / mb:>11.2f}")
    # throughput should fall as N grows (compute per token ~ 6N); time the ends of the ladder
    small, big = min(runs, key=lambda r: r.n_params), max(runs, key=lambda r: r.n_params)
    finding = Finding.timing_ratio(
        f"the smallest model ({small.name}, N={small.n_params:,}) processes more tokens per second "
        f"than the largest ({big.name}, N={big.n_params:,}): step time largest / smallest, median "
        f"over {cfg.throughput_rounds} interleaved rounds (a step cost that did not grow with N "
        "would fail)", "throughput_ratio_smallest_over_largest", rounds[big.name],
        rounds[small.name], cfg.checks.min_throughput_ratio)
    timings["throughput_ratio_smallest_over_largest"] = finding.value
    findings = [finding]
    lines += ["", f"step time, median of {cfg.throughput_rounds} interleaved rounds: "
              + ", ".join(f"{n} {1e3 * float(np.median(t)):.1f} ms" for n, t in rounds.items())
              + f" (ratio {finding.value:.2f}); wall s, tokens/s and peak RSS are timings: they "
              "vary from run to run"]
    fig = Figure(figsize=(12.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 3)
    ns = [r.n_params for r in runs]
    axes[0].plot(ns, [r.train_seconds for r in runs], marker="o")
    axes[0].set(ylabel="training wall clock (s)", title="time for the same token budget")
    axes[1].plot(ns, [r.tokens_per_s for r in runs], marker="o", color="C1")
    axes[1].set(ylabel="tokens / s", title="throughput (1 thread)")
    for key, label in (("param_bytes", "weights"), ("optimizer_bytes", "AdamW moments"),
                       ("activation_bytes", "saved activations"), ("peak_rss_bytes", "peak RSS (step)")):
        axes[2].plot(ns, [getattr(r, key) / mb for r in runs], marker="o", label=label)
    axes[2].set(ylabel="MB", title="memory per size (RAM)")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.grid(alpha=0.3, which="both")
    axes[2].set_yscale("log")
    return ItemResult(item=ITEM["benchmark"], metrics=metrics, timings=timings, findings=findings,
                      figures={"benchmark.png": fig},
                      texts={"benchmark.txt": "\n".join(lines) + "\n"})


def extrapolate_item(cfg: ScalingConfig, runs: list[SizeRun], fit: PowerLawFit,
                     train: TokenBatcher, val: TokenBatcher) -> ItemResult:
    """Item 3: held-out prediction of the largest size; smallest N for a target; verification."""
    metrics: dict[str, float] = {}
    lines = []
    findings = []
    # (a) fit without the largest size, predict it
    largest = max(r.n_params for r in runs)
    rest = [r for r in runs if r.n_params != largest]
    held = [r for r in runs if r.n_params == largest]
    if len({r.n_params for r in rest}) >= 4:
        fit_rest = fit_power_law([r.n_params for r in rest], [r.val_loss for r in rest])
        measured = float(np.mean([r.val_loss for r in held]))
        predicted = float(fit_rest.predict(largest))
        rel = abs(measured - predicted) / predicted
        per_seed = [abs(r.val_loss - predicted) / predicted for r in held]
        top_fitted = max(r.n_params for r in rest)
        metrics.update({"holdout.n_params": float(largest), "holdout.predicted": predicted,
                        "holdout.measured": measured, "holdout.rel_error": rel,
                        "holdout.range_factor": largest / top_fitted})
        for r, e in zip(held, per_seed):
            metrics[f"holdout.seed{r.seed}.rel_error"] = e
        lines.append(f"(a) fit on the {len(rest)} runs of the smaller sizes (largest fitted N="
                     f"{top_fitted:,}) predicts the largest (N={largest:,}, {largest / top_fitted:.1f}x "
                     f"beyond the fit): {predicted:.4f}, measured {measured:.4f} (mean of "
                     f"{len(held)} seeds), relative error {rel:.2%}; per seed "
                     + ", ".join(f"{e:.2%}" for e in per_seed))
        findings.append(Finding.compare(
            f"a power law fitted on the smaller models predicts the loss of a model "
            f"{largest / top_fitted:.1f}x larger than any in the fit (relative error per seed, "
            f"mean below the bound by two SE; a law that flattened or kept falling too fast "
            "would fail)", "holdout.rel_error", per_seed, margin=-cfg.max_holdout_rel_error,
            higher_is_better=False))
    else:
        lines.append("(a) skipped: fewer than 4 distinct smaller sizes to fit without the largest")

    # (b) smallest N for a target loss, (c) train that size and compare
    by_n = sorted(runs, key=lambda r: r.n_params)
    if cfg.target_loss is not None:
        target = cfg.target_loss
    else:
        sizes = sorted({r.n_params for r in runs})
        l_top = float(np.mean([r.val_loss for r in runs if r.n_params == sizes[-1]]))
        l_next = float(np.mean([r.val_loss for r in runs if r.n_params == sizes[-2]]))
        target = 0.5 * (l_top + l_next)
    n_star = smallest_n_for(target, fit.e, fit.a, fit.alpha)
    stars = np.array([smallest_n_for(target, *d) for d in fit.draws])
    finite = stars[np.isfinite(stars)]
    metrics["target_loss"] = target
    metrics["n_star"] = n_star if math.isfinite(n_star) else 1e18
    metrics["n_star_p05"] = float(np.percentile(finite, 5)) if finite.size else math.nan
    metrics["n_star_p95"] = float(np.percentile(finite, 95)) if finite.size else math.nan
    metrics["n_star_unreachable_fraction"] = 1.0 - finite.size / max(len(stars), 1)
    lines.append(f"(b) target loss {target:.4f} nats/byte: smallest N predicted to reach it "
                 f"N* = {n_star:,.0f} (5-95% over parameter draws: {metrics['n_star_p05']:,.0f} - "
                 f"{metrics['n_star_p95']:,.0f}; unreachable in {metrics['n_star_unreachable_fraction']:.1%} "
                 f"of draws); smallest trained size reaching it: "
                 + next((f"{r.name} (N={r.n_params:,}, {r.val_loss:.4f})" for r in by_n
                         if r.val_loss <= target), "none"))
    extra = {}
    if math.isfinite(n_star):
        d = width_for(n_star, cfg)
        size = ScaleSize("verify", d, cfg.verify_layers, 2 if d % 4 else 4)
        run = train_size(cfg, size, cfg.seeds[0], train, val)
        predicted = float(fit.predict(run.n_params))
        rel = abs(run.val_loss - predicted) / predicted
        metrics.update({"verify.n_params": float(run.n_params), "verify.d_model": float(d),
                        "verify.predicted": predicted, "verify.measured": run.val_loss,
                        "verify.rel_error": rel,
                        "verify.reaches_target": float(run.val_loss <= target)})
        lines.append(f"(c) trained d_model {d}, {cfg.verify_layers} blocks: N = {run.n_params:,}; "
                     f"predicted {predicted:.4f}, measured {run.val_loss:.4f} (relative error "
                     f"{rel:.2%}); reaches the target: {run.val_loss <= target}")
        findings.append(Finding.at_most(
            "a model of about the predicted smallest size N* lands on the fitted curve "
            "(relative error of its measured loss vs the prediction)", "verify.rel_error", rel,
            cfg.max_verify_rel_error))
        extra = {f"verify N={run.n_params:,} (measured)": (run.n_params, run.val_loss)}
    else:
        findings.append(Finding.at_most(
            "the target loss is reachable under the fitted law (target above E)",
            "n_star", metrics["n_star"], cfg.checks.max_n_star))
        lines.append("(c) skipped: the target is below the fitted irreducible loss E")
    fig = _fit_figure(cfg, runs, fit, extra)
    ax = fig.axes[0]
    ax.axhline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:.3f}")
    if math.isfinite(n_star):
        ax.axvline(n_star, color="red", linestyle=":", linewidth=1, label=f"N* = {n_star:,.0f}")
    ax.legend(fontsize=7)
    ax.set_title("how small can you go: smallest N predicted to reach the target")
    return ItemResult(item=ITEM["extrapolate"], metrics=metrics, findings=findings,
                      figures={"extrapolation.png": fig},
                      texts={"extrapolation.txt": "\n".join(lines) + "\n"})


# ---------------------------------------------------------------------------------------------


#: What :func:`run` reads: the corpus's train and val splits.
Inputs = CorpusSplits


def run(cfg: ScalingConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the ladder, fit the law, benchmark, extrapolate and verify."""
    train_texts, val_texts = inputs.train_texts, inputs.val_texts
    T = cfg.base.max_seq_len
    train = TokenBatcher(byte_tokens(train_texts), T, seed=cfg.train.seed)
    val = TokenBatcher(byte_tokens(val_texts), T, seed=cfg.train.seed)
    with torch_threads(cfg.num_threads):
        grid = [(size, seed) for size in cfg.sizes for seed in cfg.seeds]
        runs = [train_size(cfg, size, seed, train, val)
                for size, seed in progress(grid, desc="scaling_laws: models", unit="model")]
        fit = fit_power_law([r.n_params for r in runs], [r.val_loss for r in runs])
        ends = [min(cfg.sizes, key=lambda s: _n_params(cfg, s)),
                max(cfg.sizes, key=lambda s: _n_params(cfg, s))]
        rounds = step_time_rounds(cfg, ends, train)
        return [loss_item(cfg, runs, fit), benchmark_item(cfg, runs, rounds),
                extrapolate_item(cfg, runs, fit, train, val)]


def _n_params(cfg: ScalingConfig, size: ScaleSize) -> int:
    return build_model(cfg.model_config(size)).num_params(non_embedding=True)
