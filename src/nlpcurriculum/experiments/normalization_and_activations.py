"""Experiments of "Normalization & Activations": by-hand parts, ablations, activation statistics.

1. *Hand-implement LayerNorm, RMSNorm, SwiGLU, GELU* (:func:`parity_item`): the by-hand modules of
   :mod:`nlpcurriculum.nn.norms` and :mod:`nlpcurriculum.nn.activations` are compared with torch's
   own kernels (``F.layer_norm``, ``F.rms_norm``, ``F.gelu`` exact and tanh, and SwiGLU assembled
   from ``F.linear`` and ``F.silu``) on the same random inputs, forward *and* backward; the max
   abs differences are invariants. A figure shows GELU (exact), its tanh approximation, ReLU and
   SiLU, and how far the tanh form is from the exact one. The finding: writing RMSNorm's backward
   by hand pays, measured against its control, autograd through the same forward formula
   (forward + backward time, interleaved rounds).
2. *Ablate each* (:func:`ablation_item`): byte-level mini-formers on the corpus, identical but for
   the norm (LayerNorm / RMSNorm / none) or the feed-forward activation (ReLU / GELU / SwiGLU at a
   parameter-matched width), trained with the same steps, batches and learning rate; final train
   and test loss of each, curves, and whether a run diverged. Every variant is trained on each
   of ``seeds`` (fresh seeds, >= 3, run side by side): the findings are paired comparisons over
   them (:meth:`~nlpcurriculum.results.Finding.compare`), on held-out test windows, those after
   the first ``heldout_from_window`` of the test split. The baseline's ``init_std`` was chosen
   (after SwiGLU trailed ReLU at GPT-2's 0.02) on seed 0 and the first 256 test windows; the
   findings are measured on neither.
3. *Plot activation distributions layer-wise* (:func:`activations_item`): histograms and standard
   deviations, layer by layer, of the residual stream and of each sub-layer's input, recorded
   with :func:`~nlpcurriculum.models.miniformer.record_activations` in the trained models with
   and without a norm. Pre-norm blocks keep the stream itself unnormalized, so its scale drifts
   with depth either way; what the norm controls is the scale of what each attention and MLP
   *reads* (Xiong et al. 2020, arXiv:2002.04745). Both findings are measured on every seed's
   models and compared over the seeds; the figures show the first seed.

Papers: LayerNorm arXiv:1607.06450, RMSNorm arXiv:1910.07467, GELU arXiv:1606.08415, SwiGLU
arXiv:2002.05202. Byte tokens (vocabulary 256), so losses are per byte.

Left out: post-norm, DeepNorm and other initialisation-based remedies, learning-rate sweeps per
variant (every variant gets the one learning rate, which is the point of the comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from nlpcurriculum.experiments.harness import (
    BYTE_VOCAB,
    CorpusSplits,
    byte_tokens,
    curve,
    final_train_loss,
    map_seeds,
    mean_loss,
    torch_threads,
    train_run,
    uniform_loss,
)
from nlpcurriculum.metrics.timing import interleaved_rounds
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, record_activations
from nlpcurriculum.nn.activations import SwiGLU, gelu, relu, silu
from nlpcurriculum.nn.norms import NORMS, LayerNorm, RMSNorm, rms_norm
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import TrainerConfig, TrainResult

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "NormsActivationsChecks",
    "NormsActivationsConfig",
    "ablation_item",
    "activation_stats",
    "activations_item",
    "matched_d_ff",
    "parity_errors",
    "parity_item",
    "rms_norm_backward_timing",
    "run",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "parity": "normalization-and-activations/1",
    "ablation": "normalization-and-activations/2",
    "activations": "normalization-and-activations/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())

ABLATION_MLPS = ("relu", "gelu", "gelu_tanh", "silu", "swiglu")


@dataclass
class NormsActivationsChecks:
    """Bounds of the findings that no knob above sets (params ``norms_activations.checks``).

    Attributes:
        min_hand_backward_speedup: item 1: median over rounds of (autograd through RMSNorm's
            forward formula) / (the hand-derived backward), forward + backward, beyond two robust SE.
    """

    min_hand_backward_speedup: float = 1.1


@dataclass(kw_only=True)
class NormsActivationsConfig:
    """The ``norms_activations`` section of params/normalization_and_activations.yaml.

    Attributes:
        model: the baseline architecture (its ``norm`` and ``mlp`` are the defaults each ablation
            varies away from); ``vocab_size`` 256. ``d_ff`` is set per variant by
            :func:`matched_d_ff` (4C, or 8C/3 for SwiGLU), so the MLPs compare at equal weights.
            Its ``init_std`` in params is 0.08 ~ 0.6 / sqrt(d_model) (GPT-2's 0.02 is that rule at
            d_model 768): at 0.02 and d_model 64 the gated SwiGLU starts near a saddle (its output
            is the product of two tiny projections) and trailed ReLU by 0.23 nats after 400 steps
            (0.47 after 1000); at 0.08 it leads (measured with this config).
        train: the trainer knobs, the same for every variant.
        seq_len: training window in bytes.
        norms: item 2: the norms compared (with ``model.mlp``).
        mlps: item 2: the feed-forward activations compared (with ``model.norm``).
        seed: the seed of item 1's random inputs.
        seeds: item 2 and 3: every variant is trained once per seed (initialisation and batch
            order); fresh seeds, none of them used while the config was chosen.
        workers: processes training seeds side by side (one torch thread each).
        num_threads: torch intra-op threads.
        test_batches: batches of ``train.batch_size`` windows for the test loss.
        heldout_from_window: the test loss starts at this window of the test split (windows of
            ``seq_len`` bytes); the ones before it were looked at while the config was chosen.
        parity_rows: item 1: random input rows of the parity checks.
        parity_dim: item 1: features per row.
        parity_tol: item 1: max abs difference (forward and gradient) allowed against torch,
            relative to the largest magnitude of torch's outputs and gradients (fp32 rounding
            is ~1e-7 of it; a wrong formula, e.g. an unbiased variance, is ~1e-2 off).
        timing_rounds: item 1: interleaved rounds of the RMSNorm backward timing (on the
            ``parity_rows x parity_dim`` input).
        stat_windows: item 3: validation windows whose activations are recorded.
        min_norm_gain: item 2: how much lower the best norm's test loss must be than no norm's.
        max_rms_ln_gap: item 2: RMSNorm's and LayerNorm's test losses must agree this closely.
        min_swiglu_gain: item 2: how much lower SwiGLU's test loss must be than ReLU's.
        min_growth_ratio: item 3: without a norm, the residual stream's growth over depth must
            exceed the normed models' by this factor.
        max_norm_input_spread: item 3: with a norm, ``max/min`` over layers of the std of the
            attention inputs must stay below this.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 64
    norms: list[str] = field(default_factory=lambda: ["layernorm", "rmsnorm", "none"])
    mlps: list[str] = field(default_factory=lambda: ["relu", "gelu", "swiglu"])
    seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [101, 102, 103])
    workers: int = 2
    num_threads: int = 1
    test_batches: int = 16
    heldout_from_window: int = 0
    parity_rows: int = 2048
    parity_dim: int = 64
    parity_tol: float = 1e-5
    timing_rounds: int = 20
    stat_windows: int = 16
    min_norm_gain: float = 0.05
    max_rms_ln_gap: float = 0.05
    min_swiglu_gain: float = 0.0
    max_norm_input_spread: float = 2.0
    min_growth_ratio: float = 1.5
    checks: NormsActivationsChecks = field(default_factory=NormsActivationsChecks)

    def __post_init__(self) -> None:
        m = self.model
        if m.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens), got {m.vocab_size}")
        if not 2 <= self.seq_len <= m.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len={m.max_seq_len}]")
        for name in self.norms:
            if name not in NORMS:
                raise ValueError(f"unknown norm {name!r} in norms; choose from {NORMS}")
        for name in self.mlps:
            if name not in ABLATION_MLPS:
                raise ValueError(f"unknown mlp {name!r} in mlps; choose from {ABLATION_MLPS}")
        if "none" not in self.norms or len([n for n in self.norms if n != "none"]) < 1:
            raise ValueError("norms must contain 'none' and at least one real norm (items 2 and 3)")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must hold >= 2 distinct seeds (a comparison needs a standard "
                             f"error; use >= 3), got {self.seeds}")
        if self.heldout_from_window < 0:
            raise ValueError(f"heldout_from_window must be >= 0, got {self.heldout_from_window}")
        for name in ("test_batches", "parity_rows", "parity_dim", "stat_windows", "num_threads",
                     "timing_rounds", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# item 1: parity with torch


def _max_diff(ours: Tensor, theirs: Tensor) -> float:
    return float((ours - theirs).detach().abs().max())


def _compare(fn_ours, fn_torch, inputs: list[Tensor]) -> tuple[float, float, float]:
    """Max abs difference of outputs and of input gradients (for a fixed random upstream grad),
    and the largest reference magnitude (to express them relative to the output scale)."""
    a = [t.clone().requires_grad_(True) for t in inputs]
    b = [t.clone().requires_grad_(True) for t in inputs]
    out_a, out_b = fn_ours(*a), fn_torch(*b)
    upstream = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(1))
    grads_a = torch.autograd.grad(out_a, a, upstream)
    grads_b = torch.autograd.grad(out_b, b, upstream)
    scale = max(float(out_b.detach().abs().max()), *(float(g.abs().max()) for g in grads_b))
    return (_max_diff(out_a, out_b), max(_max_diff(x, y) for x, y in zip(grads_a, grads_b)),
            max(scale, 1e-30))


def parity_errors(rows: int, dim: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Max abs (output, gradient) differences of each by-hand part against torch's kernel.

    Inputs are ``N(0, 3^2)`` (wide enough to reach GELU's and SiLU's curved regions) with a
    random offset per row (so LayerNorm's centering matters); norms get random gains and biases
    instead of the identity initialisation, so a wrong affine term would show.

    Returns:
        ``{name: (forward_max_abs_diff, gradient_max_abs_diff, reference_scale)}`` for
        ``layernorm``, ``rmsnorm``, ``gelu``, ``gelu_tanh``, ``relu``, ``swiglu``;
        ``reference_scale`` is the largest ``|value|`` among torch's outputs and gradients.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=g) * 3 + torch.randn(rows, 1, generator=g)
    out: dict[str, tuple[float, float]] = {}

    ln = LayerNorm(dim)
    rms = RMSNorm(dim)
    with torch.no_grad():
        for p in (ln.weight, ln.bias, rms.weight):
            p.copy_(torch.randn(dim, generator=g) * 0.5 + 1.0)
    out["layernorm"] = _compare(
        ln, lambda t: F.layer_norm(t, (dim,), ln.weight, ln.bias, ln.eps), [x])
    out["rmsnorm"] = _compare(rms, lambda t: F.rms_norm(t, (dim,), rms.weight, rms.eps), [x])
    out["gelu"] = _compare(gelu, F.gelu, [x])
    out["gelu_tanh"] = _compare(
        lambda t: gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh"), [x])
    out["relu"] = _compare(relu, F.relu, [x])

    hidden = 2 * dim
    swiglu = SwiGLU(dim, hidden)
    with torch.no_grad():
        swiglu.gate_up.weight.copy_(torch.randn(2 * hidden, dim, generator=g) / math.sqrt(dim))
        swiglu.down.weight.copy_(torch.randn(dim, hidden, generator=g) / math.sqrt(hidden))
    w_gate, w_up = swiglu.gate_up.weight[:hidden], swiglu.gate_up.weight[hidden:]  # (H, C) each

    def torch_swiglu(t: Tensor) -> Tensor:
        # the textbook form with torch's own kernels: down(silu(x W_gate^T) * (x W_up^T))
        return F.linear(F.silu(F.linear(t, w_gate)) * F.linear(t, w_up), swiglu.down.weight)

    out["swiglu"] = _compare(swiglu, torch_swiglu, [x])
    return out


def rms_norm_backward_timing(rows: int, dim: int, rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Forward + backward seconds of RMSNorm on ``(rows, dim)``, round by round, two ways.

    ``"by_hand"`` is :func:`~nlpcurriculum.nn.norms.rms_norm` (the backward derived by hand, one
    ``autograd.Function``); ``"autograd"``, the control, is the same forward formula written with
    plain tensor ops, so that autograd records each op and differentiates them one by one. Both
    compute the gradients of the input and the gain for one fixed upstream gradient.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=g).requires_grad_(True)
    w = (torch.randn(dim, generator=g) * 0.5 + 1.0).requires_grad_(True)
    upstream = torch.randn(rows, dim, generator=g)
    eps = 1e-6

    def by_hand() -> None:
        torch.autograd.grad(rms_norm(x, w, eps), (x, w), upstream)

    def autograd() -> None:
        y = x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w
        torch.autograd.grad(y, (x, w), upstream)

    return interleaved_rounds({"autograd": autograd, "by_hand": by_hand}, rounds)


def parity_item(cfg: NormsActivationsConfig) -> ItemResult:
    """Item 1: by-hand norms and activations against torch, forward and backward."""
    errors = parity_errors(cfg.parity_rows, cfg.parity_dim, seed=cfg.seed)
    metrics: dict[str, float] = {}
    findings = []
    lines = [f"{'part':<10} {'forward max|diff|':>18} {'gradient max|diff|':>19} "
             f"{'relative':>9}   reference"]
    reference = {
        "layernorm": "F.layer_norm", "rmsnorm": "F.rms_norm", "gelu": "F.gelu",
        "gelu_tanh": "F.gelu(approximate='tanh')", "relu": "F.relu",
        "swiglu": "F.linear(F.silu(F.linear(x, W_gate)) * F.linear(x, W_up), W_down)",
    }
    for name, (fwd, grad, scale) in errors.items():
        relative = max(fwd, grad) / scale
        metrics[f"{name}.forward_max_abs_diff"] = fwd
        metrics[f"{name}.grad_max_abs_diff"] = grad
        metrics[f"{name}.relative_diff"] = relative
        lines.append(f"{name:<10} {fwd:>18.3e} {grad:>19.3e} {relative:>9.2e}   {reference[name]}")
        findings.append(Finding.at_most(
            f"by-hand {name} equals {reference[name]} (max abs difference of outputs and "
            "gradients, relative to their largest magnitude; fp32)",
            f"{name}.relative_diff", relative, cfg.parity_tol, kind=INVARIANT))
    times = rms_norm_backward_timing(cfg.parity_rows, cfg.parity_dim, cfg.timing_rounds, cfg.seed)
    speedup = Finding.timing_ratio(
        "RMSNorm's hand-derived backward is faster than autograd through the same forward formula "
        f"(forward + backward on {cfg.parity_rows} x {cfg.parity_dim}, median time ratio, "
        f"{cfg.timing_rounds} interleaved rounds)", "rmsnorm.hand_backward_speedup",
        times["autograd"], times["by_hand"], cfg.checks.min_hand_backward_speedup)
    # a clock reading: a timing (metrics/timings/), never a metric, which must repeat byte for byte
    timings = {"rmsnorm.hand_backward_speedup": speedup.value, "rmsnorm.hand_backward_speedup.se": speedup.se}
    findings.append(speedup)
    xs = torch.linspace(-6, 6, 2001)
    tanh_gap = float((gelu(xs) - gelu(xs, "tanh")).abs().max())
    metrics["gelu_exact_vs_tanh_max_abs_diff"] = tanh_gap
    lines += [
        "",
        f"inputs: {cfg.parity_rows} x {cfg.parity_dim}, N(0, 9) plus a per-row offset; "
        "random gains/biases.",
        f"GELU exact vs its tanh approximation on [-6, 6]: max |diff| = {tanh_gap:.2e} "
        "(a different function, not a rounding error)",
        f"RMSNorm forward + backward, autograd through the formula / the hand-derived backward: "
        f"{speedup.value:.2f}x (median of {cfg.timing_rounds} rounds, robust SE {speedup.se:.2f})",
        "worked examples: gelu(1) = %.4f, gelu_tanh(1) = %.4f, silu(1) = %.4f" % (
            float(gelu(torch.tensor(1.0))), float(gelu(torch.tensor(1.0), "tanh")),
            float(silu(torch.tensor(1.0)))),
    ]
    return ItemResult(
        item=ITEM["parity"], metrics=metrics, timings=timings, findings=findings,
        figures={"activations.png": _activation_figure(xs)},
        texts={"parity.txt": "\n".join(lines) + "\n"},
    )


def _activation_figure(xs: Tensor) -> Figure:
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    x = xs.numpy()
    ax0.plot(x, relu(xs).numpy(), label="ReLU  max(0, x)", linewidth=1.2)
    ax0.plot(x, gelu(xs).numpy(), label="GELU exact  x Phi(x)", linewidth=2.2)
    ax0.plot(x, gelu(xs, "tanh").numpy(), label="GELU tanh approx.", linestyle="--")
    ax0.plot(x, silu(xs).numpy(), label="SiLU  x sigmoid(x)  (SwiGLU's gate)", linestyle=":")
    ax0.set(xlim=(-4, 3), ylim=(-0.6, 3), xlabel="x", title="activations")
    ax0.axhline(0, color="black", linewidth=0.5)
    ax0.grid(alpha=0.3)
    ax0.legend(fontsize=8)
    ax1.plot(x, (gelu(xs) - gelu(xs, "tanh")).numpy(), color="C2")
    ax1.set(xlabel="x", ylabel="gelu_exact - gelu_tanh", title="how far the tanh approximation is off")
    ax1.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# item 2: ablations


def matched_d_ff(mlp: str, d_model: int) -> int:
    """Hidden width giving every feed-forward kind the same weight count, ``8 C^2``.

    A plain MLP has two ``C x 4C`` matrices; SwiGLU has three ``C x H`` ones, so ``H = 8C/3``
    (rounded to the nearest integer, not up to a multiple of 32 as
    :func:`~nlpcurriculum.nn.activations.swiglu_hidden` does for speed: at ``C = 64`` that
    rounding would give SwiGLU 12% more MLP weights). Worked example: ``C = 64`` gives 256 for
    ReLU/GELU and 171 for SwiGLU (``3 * 64 * 171 = 32832`` vs ``2 * 64 * 256 = 32768``).
    """
    return round(8 * d_model / 3) if mlp == "swiglu" else 4 * d_model


@dataclass
class _Variant:
    """One trained ablation variant on one seed."""

    name: str
    model: MiniFormer | None
    result: TrainResult | None
    train_loss: float
    test_loss: float
    diverged: bool

    @property
    def score(self) -> float:
        """The test loss, or uniform guessing's ``log 256`` for a diverged run (no better)."""
        return self.test_loss if math.isfinite(self.test_loss) else uniform_loss(BYTE_VOCAB)


def _train_variant(name: str, model_cfg: MiniFormerConfig, train_cfg: TrainerConfig, seed: int,
                   cfg: NormsActivationsConfig, train: TokenBatcher, val: TokenBatcher,
                   test: TokenBatcher) -> _Variant:
    try:
        model, result = train_run(model_cfg, train_cfg, train, val, seed=seed)
    except FloatingPointError:  # the trainer stops on a non-finite loss: that *is* the result
        return _Variant(name, None, None, math.nan, math.nan, True)
    test_loss = mean_loss(model, test, cfg.train.batch_size, cfg.test_batches)
    return _Variant(name, model, result, final_train_loss(result.history), test_loss,
                    not math.isfinite(test_loss))


@dataclass
class _SeedRuns:
    """Everything one seed trained: the norm ablation, the activation ablation and item 3's
    activation statistics (stds by layer, ``{variant: {site: [std per layer]}}``)."""

    seed: int
    norm_runs: dict[str, _Variant]
    mlp_runs: dict[str, _Variant]
    stats: dict[str, dict[str, list[float]]]


def _heldout_test(cfg: NormsActivationsConfig, test_texts) -> TokenBatcher:
    """The test windows after the first ``heldout_from_window`` (see the config)."""
    tokens = byte_tokens(test_texts)
    skip = cfg.heldout_from_window * cfg.seq_len
    if len(tokens) - skip < cfg.seq_len + 1:
        raise ValueError(f"the test split has {len(tokens)} bytes: nothing is left after the first "
                         f"heldout_from_window={cfg.heldout_from_window} windows of {cfg.seq_len}")
    return TokenBatcher(tokens[skip:], cfg.seq_len, mode="sequential")


def _train_seed(seed: int, cfg: NormsActivationsConfig, train_texts, val_texts, test_texts) -> _SeedRuns:
    """Train every variant on one seed (module-level: it runs in a worker process)."""
    with torch_threads(cfg.num_threads):
        train = TokenBatcher(byte_tokens(train_texts), cfg.seq_len, seed=seed)
        val = TokenBatcher(byte_tokens(val_texts), cfg.seq_len, mode="sequential")
        test = _heldout_test(cfg, test_texts)
        train_cfg = replace(cfg.train, seed=seed, progress=False)  # the seed orders the batches too
        trained: dict[tuple[str, str], _Variant] = {}

        def variant(norm: str, mlp: str) -> _Variant:
            if (norm, mlp) not in trained:
                d_ff = matched_d_ff(mlp, cfg.model.d_model)
                model_cfg = replace(cfg.model, norm=norm, mlp=mlp, d_ff=d_ff)
                trained[(norm, mlp)] = _train_variant(f"{norm}+{mlp}", model_cfg, train_cfg, seed,
                                                      cfg, train, val, test)
            return trained[(norm, mlp)]

        norm_runs = {n: variant(n, cfg.model.mlp) for n in cfg.norms}
        mlp_runs = {m: variant(cfg.model.norm, m) for m in cfg.mlps}
        x = torch.cat([xb for xb, _ in val.eval_batches(cfg.stat_windows, 1)])  # (N, T)
        stats = {}
        for name, v in norm_runs.items():
            if v.model is not None:
                acts = activation_stats(v.model, x)
                stats[name] = {key: _std_by_layer(acts, key, cfg.model.n_layers)
                               for key in ("norm1", "residual", "mlp_hidden")}
    return _SeedRuns(seed, norm_runs, mlp_runs, stats)


def _mean(xs) -> float:
    return float(np.mean(xs))


def ablation_item(cfg: NormsActivationsConfig, seeds: list[_SeedRuns]) -> ItemResult:
    """Item 2: train/test loss of each norm and each activation, same steps and learning rate,
    on every seed; the findings compare the variants paired by seed."""
    metrics: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    ids = [r.seed for r in seeds]
    lines = [f"seeds {ids} (fresh), test loss on held-out windows (from window "
             f"{cfg.heldout_from_window} of the test split); a diverged run scores log 256",
             f"{'ablation':<8} {'variant':<10} {'params':>7} {'train loss':>10} "
             f"{'test loss (mean)':>16}  per seed{'':<12} {'diverged':>8}"]
    for group, attr in (("norm", "norm_runs"), ("mlp", "mlp_runs")):
        for name in getattr(seeds[0], attr):
            runs = [getattr(r, attr)[name] for r in seeds]
            metrics[f"{group}.{name}.train_loss"] = _mean([v.train_loss for v in runs])
            metrics[f"{group}.{name}.test_loss"] = _mean([v.score for v in runs])
            metrics[f"{group}.{name}.diverged"] = float(sum(v.diverged for v in runs))
            for seed, v in zip(ids, runs):
                metrics[f"{group}.{name}.seed{seed}.test_loss"] = v.score
            first = runs[0]
            params = sum(p.numel() for p in first.model.parameters()) if first.model is not None else 0
            per_seed = " ".join(f"{v.score:.4f}" for v in runs)
            lines.append(f"{group:<8} {name:<10} {params:>7} {metrics[f'{group}.{name}.train_loss']:>10.4f} "
                         f"{metrics[f'{group}.{name}.test_loss']:>16.4f}  {per_seed:<20} "
                         f"{int(metrics[f'{group}.{name}.diverged']):>8}")
            if first.result is not None:
                series[f"{group}.{name}.val_loss"] = curve(first.result.history)

    def scores(attr: str, name: str) -> list[float]:
        return [getattr(r, attr)[name].score for r in seeds]

    normed = [n for n in cfg.norms if n != "none"]
    best_norm = min(normed, key=lambda n: metrics[f"norm.{n}.test_loss"])
    gain = Finding.compare(
        f"at the same learning rate ({cfg.train.lr:g}) no norm ends with a higher held-out test "
        f"loss than with one (best: {best_norm}; no norm - {best_norm}, nats/byte, paired over "
        f"seeds {ids}; a divergence scores log 256)",
        "norm_gain", scores("norm_runs", "none"), scores("norm_runs", best_norm),
        margin=cfg.min_norm_gain)
    findings = [gain]
    if "layernorm" in cfg.norms and "rmsnorm" in cfg.norms:
        same = Finding.compare(
            "RMSNorm (no re-centering) trains as well as LayerNorm: its held-out test loss is not "
            f"worse by {cfg.max_rms_ln_gap:g} nats/byte or more (non-inferiority, RMSNorm - "
            f"LayerNorm paired over seeds {ids}; Zhang & Sennrich 2019)",
            "rmsnorm_minus_layernorm", scores("norm_runs", "rmsnorm"),
            scores("norm_runs", "layernorm"), margin=-cfg.max_rms_ln_gap, higher_is_better=False)
        findings.append(same)
    if "relu" in cfg.mlps and "swiglu" in cfg.mlps:
        swiglu = Finding.compare(
            "SwiGLU (parameter-matched) reaches a lower held-out test loss than ReLU by more than "
            f"{cfg.min_swiglu_gain:g} nats/byte (ReLU - SwiGLU paired over seeds {ids}; "
            "Shazeer 2020)", "swiglu_gain_over_relu", scores("mlp_runs", "relu"),
            scores("mlp_runs", "swiglu"), margin=cfg.min_swiglu_gain)
        findings.append(swiglu)
    for f in findings:  # each comparison's mean effect and its standard error
        metrics[f.metric], metrics[f"{f.metric}.se"] = f.value, f.se
        lines.append(f"{f.metric}: {f.value:+.4f} (SE {f.se:.4f}, n {f.n}, bound {f.threshold:+g}) "
                     f"{'pass' if f.passed else 'FAIL'}")

    fig = Figure(figsize=(12.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (group, attr) in zip(axes, (("norm", "norm_runs"), ("activation", "mlp_runs"))):
        for name, v in getattr(seeds[0], attr).items():
            mean = metrics[f"{'norm' if group == 'norm' else 'mlp'}.{name}.test_loss"]
            if v.result is not None:
                steps, values = zip(*curve(v.result.history))
                ax.plot(steps, values, label=f"{name} (test {mean:.3f}, mean of {len(seeds)} seeds)")
            else:
                ax.plot([], [], label=f"{name} (diverged)")
        ax.set(xlabel="optimizer step", title=f"{group} ablation, lr {cfg.train.lr:g}, seed {ids[0]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("validation loss (nats / byte)")
    return ItemResult(
        item=ITEM["ablation"], metrics=metrics, series=series, findings=findings,
        figures={"ablation.png": fig},
        texts={"ablation.txt": "\n".join(lines) + "\n"},
    )


# ---------------------------------------------------------------------------------------------
# item 3: activation distributions


@torch.no_grad()
def activation_stats(model: MiniFormer, x: Tensor) -> dict[str, Tensor]:
    """Record one forward pass's activations (see ``record_activations`` for the keys)."""
    with record_activations(model) as acts:
        model(x)
    return dict(acts)


def _std_by_layer(acts: dict[str, Tensor], key: str, n_layers: int) -> list[float]:
    return [float(acts[f"layer{i}.{key}"].std()) for i in range(n_layers)]


def activations_item(cfg: NormsActivationsConfig, seeds: list[_SeedRuns], x: Tensor) -> ItemResult:
    """Item 3: per-layer activation histograms and scales, with and without a norm.

    The numbers and findings come from every seed's models (compared over the seeds); the
    histograms show the first seed's, on the validation windows ``x``.
    """
    n_layers = cfg.model.n_layers
    first = seeds[0]
    stats = {name: activation_stats(v.model, x) for name, v in first.norm_runs.items()
             if v.model is not None}
    metrics: dict[str, float] = {}
    lines = [f"seed {first.seed}", f"{'variant':<10} {'site':<10} "
             + " ".join(f"{'L' + str(i):>8}" for i in range(n_layers))]
    for name, acts in stats.items():
        for key in ("norm1", "residual", "mlp_hidden"):
            stds = _std_by_layer(acts, key, n_layers)
            for i, s in enumerate(stds):
                metrics[f"{name}.layer{i}.{key}_std"] = s
            lines.append(f"{name:<10} {key:<10} " + " ".join(f"{s:>8.3f}" for s in stds))
        metrics[f"{name}.embed_std"] = float(acts["embed"].std())

    def growth(r: _SeedRuns, name: str) -> float:
        res = r.stats[name]["residual"]
        return res[-1] / res[0]

    def spread(r: _SeedRuns, name: str) -> float:
        inputs = r.stats[name]["norm1"]
        return max(inputs) / min(inputs)

    findings = []
    ids = [r.seed for r in seeds]
    normed = [n for n in cfg.norms if n != "none"]
    # a diverged run has no model: the findings then use the seeds where every run trained
    complete = [r for r in seeds if all(n in r.stats for n in cfg.norms)]
    for name in cfg.norms:
        values = [growth(r, name) for r in complete]
        if values:
            metrics[f"{name}.residual_growth"] = _mean(values)
            metrics[f"{name}.attn_input_spread"] = _mean([spread(r, name) for r in complete])
    if complete and normed:
        worst = [max(spread(r, n) for n in normed) for r in complete]
        f = Finding.compare(
            "with a norm, the input every attention layer reads keeps its scale across depth "
            f"(max/min over layers of its std, worst norm, mean over seeds {ids}, below "
            f"{cfg.max_norm_input_spread:g})", "attn_input_spread_with_norm", worst,
            margin=-cfg.max_norm_input_spread, higher_is_better=False)
        metrics["attn_input_spread_with_norm"] = f.value
        findings.append(f)
        ratios = [growth(r, "none") / max(growth(r, n) for n in normed) for r in complete]
        f = Finding.compare(
            "without a norm the residual stream's std grows with depth far more than with one "
            f"(growth first -> last block, no norm / with norm, mean over seeds {ids}, above "
            f"{cfg.min_growth_ratio:g})", "residual_growth_ratio_none_vs_norm", ratios,
            margin=cfg.min_growth_ratio)
        metrics["residual_growth_ratio_none_vs_norm"] = f.value
        findings.append(f)
    return ItemResult(
        item=ITEM["activations"], metrics=metrics, findings=findings,
        figures={
            "histograms.png": _histogram_figure(stats, n_layers),
            "activation_std.png": _std_figure(stats, n_layers),
        },
        texts={"activation_std.txt": "std of activations per layer (validation windows)\n"
               + "\n".join(lines) + "\n"},
    )


def _histogram_figure(stats: dict[str, dict[str, Tensor]], n_layers: int) -> Figure:
    names = list(stats)
    sites = [("embed", "embedding (block 0 input)")] + [
        (f"layer{i}.residual", f"residual after block {i}") for i in range(n_layers)
    ]
    fig = Figure(figsize=(4.0 * len(names), 1.9 * len(sites) + 0.8), layout="constrained")
    # one x range for every panel, so the widening of the distributions with depth is visible
    axes = np.array(fig.subplots(len(sites), len(names), squeeze=False, sharex=True))
    for c, name in enumerate(names):
        for r, (key, label) in enumerate(sites):
            ax = axes[r, c]
            values = stats[name][key].flatten().numpy()
            ax.hist(values, bins=120, color=f"C{c}", log=True)
            ax.set_title(f"{name}: {label}  (std {values.std():.2f})", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Residual-stream value histograms per layer (log counts), by norm")
    return fig


def _std_figure(stats: dict[str, dict[str, Tensor]], n_layers: int) -> Figure:
    fig = Figure(figsize=(12.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 3)
    layers = np.arange(n_layers)
    titles = {"norm1": "attention input (after norm1)", "residual": "residual stream after block",
              "mlp_hidden": "MLP hidden activation"}
    for ax, (key, title) in zip(axes, titles.items()):
        for c, (name, acts) in enumerate(stats.items()):
            ax.plot(layers, _std_by_layer(acts, key, n_layers), marker="o", color=f"C{c}", label=name)
        ax.set(xlabel="layer", title=title, xticks=layers)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("std of activations")
    axes[0].legend(fontsize=8)
    fig.suptitle("Activation scale by layer, trained models")
    return fig


# ---------------------------------------------------------------------------------------------


#: What :func:`run` reads: the corpus's train, val and test splits.
Inputs = CorpusSplits


def run(cfg: NormsActivationsConfig, inputs: Inputs) -> list[ItemResult]:
    """Run the parity checks, train every variant on every seed and measure its activations.

    Args:
        cfg: the stage config.
        inputs: the corpus splits.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, val_texts, test_texts = inputs.train_texts, inputs.val_texts, inputs.test_texts
    _heldout_test(cfg, test_texts)  # fail before training when the held-out windows are missing
    with torch_threads(cfg.num_threads):
        parity = parity_item(cfg)
    seeds = map_seeds(_train_seed, cfg.seeds, cfg.workers, cfg, list(train_texts), list(val_texts),
                      list(test_texts))
    with torch_threads(cfg.num_threads):
        ablation = ablation_item(cfg, seeds)
        val = TokenBatcher(byte_tokens(val_texts), cfg.seq_len, mode="sequential")
        x = torch.cat([xb for xb, _ in val.eval_batches(cfg.stat_windows, 1)])  # (N, T)
        activations = activations_item(cfg, seeds, x)
    return [parity, ablation, activations]
