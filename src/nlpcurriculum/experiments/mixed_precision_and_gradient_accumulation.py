"""Experiments of "Mixed Precision & Gradient Accumulation" (on this CPU; no GPU in this session).

1. *FP16/BF16 training, loss scaling* (:func:`precision_item`): our
   :class:`~nlpcurriculum.training.amp.DynamicLossScaler` and ``torch.amp.GradScaler("cpu")``
   drive the same fp16-autocast training run of the byte-level mini-former, with overflows
   injected at fixed steps: the scale trajectories, the skipped steps and the final weights must
   be identical. Then fp32, bf16 (no scaler: fp32's exponent range) and fp16 (with our scaler)
   train from the same start; their loss curves overlaid, final losses compared. The scaler's
   control is fp16 *without* it: on the first batch of ``control_seeds`` models, the fp16
   gradients with and without the scale against the fp32 ones: without it small gradients
   underflow (entries flushed to zero, a larger relative error). The fp16 run without a scaler
   is trained too (AdamW divides by the gradient's RMS, so underflow, not the gradient's scale,
   is what can hurt it).
2. *Gradient accumulation* (:func:`accumulation_item`): the project's
   :class:`~nlpcurriculum.training.trainer.Trainer` with ``batch_size = b, grad_accum = k`` vs
   ``batch_size = k b, grad_accum = 1`` on the same sequential windows: weights after training
   equal to fp32 tolerance, at about ``1/k`` of the activation memory; a run with batch ``b``
   and no accumulation shows what a real difference looks like.
3. *Throughput vs memory* (:func:`throughput_item`): tokens/s of whole training steps
   (interleaved rounds, median; timings) and the bytes autograd saves for backward
   (activations, plus autocast's weight copies), fp32 / bf16 / fp16. Low precision halves
   activation bytes. Its speed depends on the CPU (:func:`~nlpcurriculum.metrics.hardware.has_native_bf16`):
   with native bf16 instructions (AVX-512 BF16, AMX) bf16 autocast is expected to keep at least
   ``min_bf16_speed_native`` of fp32's speed at this size (the casts cost about what the narrower
   matmuls save); without them bf16 is emulated and fp32 is expected to be at least
   ``min_fp32_speedup_emulated`` times faster. The stage states which expectation it checked and
   records the CPU flags with the timings.

Left out: GPU timings (no GPU was lent to this session; the same code runs with
``device_type="cuda"``), pure low-precision weights, fp8.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from matplotlib.figure import Figure

from nlpcurriculum.experiments.harness import BYTE_VOCAB, byte_tokens, torch_threads
from nlpcurriculum.metrics.hardware import VECTOR_FLAGS, cpu_flags, has_native_bf16
from nlpcurriculum.metrics.timing import interleaved_rounds
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.amp import (
    AMP_DTYPES,
    DynamicLossScaler,
    autocast,
    saved_activation_bytes,
    train_amp,
)
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, param_groups, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "MixedPrecisionConfig",
    "accumulation_item",
    "precision_item",
    "run",
    "throughput_item",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "precision": "mixed-precision-and-gradient-accumulation/1",
    "accumulation": "mixed-precision-and-gradient-accumulation/2",
    "throughput": "mixed-precision-and-gradient-accumulation/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class MixedPrecisionChecks:
    """Bounds of the findings that no knob above sets (params ``mixed_precision.checks``).

    Attributes:
        max_scale_diff: item 1: max |scale difference| of our scaler from ``GradScaler``.
        max_skip_mismatches: item 1: steps one scaler skips and the other does not.
        max_scaler_weight_diff: item 1: max |weight difference| at the end of the parity run.
        min_small_batch_factor: item 2: a batch of ``b`` without accumulation must end at least
            this many times ``accum_tol`` from the big batch (the control).
        activation_ratio_factor: item 2: accumulation's saved-for-backward bytes over the big
            batch's must stay below this over ``k``.
        min_underflow_error_gain: item 1: relative gradient error (vs fp32) of fp16 without
            the scaler minus with it, mean over ``control_seeds``, paired.
        min_underflow_zero_gain: item 1: fraction of gradient entries (non-zero in fp32) that
            fp16 flushes to zero, without the scaler minus with it, paired.
        min_bf16_speed_native: item 3, CPU with native bf16: bf16 step throughput / fp32's must
            exceed this (median over interleaved rounds).
        min_fp32_speedup_emulated: item 3, CPU without native bf16: fp32 step throughput /
            bf16's must exceed this.
    """

    max_scale_diff: float = 0.0
    max_skip_mismatches: float = 0.0
    max_scaler_weight_diff: float = 1e-6
    min_small_batch_factor: float = 100.0
    activation_ratio_factor: float = 1.5
    min_underflow_error_gain: float = 0.01
    min_underflow_zero_gain: float = 0.001
    min_bf16_speed_native: float = 0.5
    min_fp32_speedup_emulated: float = 2.0


@dataclass(kw_only=True)
class MixedPrecisionConfig:
    """The ``mixed_precision`` section of params/mixed_precision_and_gradient_accumulation.yaml.

    Attributes:
        model: the mini-former (byte tokens, ``vocab_size`` 256).
        seq_len: window length T.
        batch_size: windows per step (items 1 and 3; item 2's big batch is ``k * micro_batch``).
        steps: updates of each precision's training run (item 1).
        lr: AdamW learning rate.
        seed: model and data seed.
        growth_interval: the scalers' growth interval in the parity run (short, so growth shows).
        scaler_steps: updates of the scaler parity run.
        inject_inf_at: steps of the parity run whose gradients get an injected inf.
        micro_batch: item 2: ``b``.
        accum_steps: item 2: ``k``.
        accum_updates: item 2: optimizer updates per run.
        control_seeds: item 1: init (and batch) seeds of the no-scaler gradient control and of
            the precision comparisons (``seed``'s runs are reused for its own).
        throughput_steps: item 3: interleaved timing rounds, one step per precision each (after
            2 warm-up rounds).
        accum_tol: item 2: max |weight difference| allowed after ``accum_updates`` AdamW updates
            (AdamW normalises every update to ~lr per weight, so an fp32 rounding difference in a
            tiny gradient entry can move a weight by a fraction of lr: 1e-4 ~ lr / 30).
        grad_tol: item 2: max |gradient difference| on the first batch, relative to the largest
            gradient entry (pure fp32 summation-order rounding).
        max_precision_loss_gap: item 1: |final loss (low precision) - fp32| allowed, nats (mean
            over ``control_seeds``, two standard errors below).
        max_activation_ratio: item 3: saved-for-backward bytes, low / fp32, at most this.
        num_threads: torch threads.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    seq_len: int = 64
    batch_size: int = 16
    steps: int = 60
    lr: float = 3e-3
    seed: int = 0
    growth_interval: int = 10
    scaler_steps: int = 30
    inject_inf_at: list[int] = field(default_factory=lambda: [5, 6, 23])
    micro_batch: int = 4
    accum_steps: int = 4
    accum_updates: int = 20
    control_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    throughput_steps: int = 10
    accum_tol: float = 1e-4
    grad_tol: float = 1e-5
    max_precision_loss_gap: float = 0.05
    max_activation_ratio: float = 0.75
    num_threads: int = 1
    checks: MixedPrecisionChecks = field(default_factory=MixedPrecisionChecks)

    def __post_init__(self) -> None:
        if self.model.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens)")
        if not 2 <= self.seq_len <= self.model.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len]")
        for name in ("batch_size", "steps", "growth_interval", "scaler_steps", "micro_batch",
                     "accum_updates", "throughput_steps", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.accum_steps < 2:
            raise ValueError(f"accum_steps must be >= 2, got {self.accum_steps}")
        if any(not 0 <= s < self.scaler_steps for s in self.inject_inf_at):
            raise ValueError(f"inject_inf_at={self.inject_inf_at} must lie in [0, scaler_steps)")


def _model(cfg: MixedPrecisionConfig):
    seed_everything(cfg.seed)
    return build_model(cfg.model)


def _optimizer(model, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, 0.1), lr=lr, betas=(0.9, 0.95))


def _train(cfg: MixedPrecisionConfig, tokens, precision: str, scaler, steps: int,
           inject=()) -> tuple[torch.nn.Module, dict[str, list[float]]]:
    model = _model(cfg)
    data = TokenBatcher(tokens, cfg.seq_len, seed=cfg.seed)
    history = train_amp(model, lambda: data.next_batch(cfg.batch_size), steps,
                        _optimizer(model, cfg.lr), precision, scaler, inject_inf_at=tuple(inject),
                        grad_clip=1.0)
    return model, history


def _max_weight_diff(a, b) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def fp16_grad_underflow(cfg: MixedPrecisionConfig, tokens, seed: int) -> dict[str, float]:
    """fp16 gradients of one batch with and without loss scaling, against fp32's.

    One model (init ``seed``) and one batch (drawn with ``seed``); the gradients of the same
    loss in fp32, in fp16 autocast unscaled, and in fp16 autocast scaled by ``2^16`` (halved
    until no gradient overflows, as the scaler would) and divided back. Over the entries that
    are non-zero in fp32: the fraction fp16 flushed to zero, and the relative error
    ``||g - g_fp32|| / ||g_fp32||``.
    """
    seed_everything(seed)
    model = build_model(cfg.model).train()
    x, y = TokenBatcher(tokens, cfg.seq_len, seed=seed).next_batch(cfg.batch_size)

    def grads(precision: str, scale: float) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = model(x, targets=y).loss
        (loss.float() * scale).backward()
        return torch.cat([p.grad.flatten() / scale for p in model.parameters()])  # (n_params,)

    ref = grads("fp32", 1.0)
    unscaled = grads("fp16", 1.0)
    scale = 2.0**16
    scaled = grads("fp16", scale)
    while not torch.isfinite(scaled).all() and scale > 1.0:
        scale /= 2
        scaled = grads("fp16", scale)
    live = ref != 0
    out = {"scale": scale}
    for name, g in (("no_scaler", unscaled), ("scaler", scaled)):
        out[f"{name}.zero_fraction"] = float(((g == 0) & live).sum() / live.sum())
        out[f"{name}.rel_error"] = float((g - ref).norm() / ref.norm())
    return out


def precision_item(cfg: MixedPrecisionConfig, tokens) -> ItemResult:
    """Item 1: scaler parity with GradScaler (injected overflows); fp32 / bf16 / fp16 training."""
    ours_model, ours = _train(cfg, tokens, "fp16", DynamicLossScaler(
        growth_interval=cfg.growth_interval), cfg.scaler_steps, cfg.inject_inf_at)
    ref_model, ref = _train(cfg, tokens, "fp16", torch.amp.GradScaler(
        "cpu", growth_interval=cfg.growth_interval), cfg.scaler_steps, cfg.inject_inf_at)
    scale_diff = max(abs(a - b) for a, b in zip(ours["scale"], ref["scale"]))
    skip_mismatch = sum(a != b for a, b in zip(ours["skipped"], ref["skipped"]))
    weight_diff = _max_weight_diff(ours_model, ref_model)
    metrics = {
        "scaler.max_scale_diff": scale_diff, "scaler.skip_mismatches": float(skip_mismatch),
        "scaler.max_weight_diff": weight_diff, "scaler.skipped_steps": sum(ours["skipped"]),
        "scaler.final_scale": ours["scale"][-1],
    }
    runs = {}
    for precision in AMP_DTYPES:
        scaler = DynamicLossScaler() if precision == "fp16" else None
        _, runs[precision] = _train(cfg, tokens, precision, scaler, cfg.steps)
        tail = runs[precision]["loss"][-10:]
        metrics[f"{precision}.final_loss"] = sum(tail) / len(tail)
    metrics["fp16.skipped_steps"] = sum(runs["fp16"]["skipped"])
    # the precision comparisons over every control seed (model init and batches), paired
    finals = {cfg.seed: {p: metrics[f"{p}.final_loss"] for p in AMP_DTYPES}}
    for seed in (s for s in cfg.control_seeds if s != cfg.seed):
        finals[seed] = {}
        for precision in AMP_DTYPES:
            scaler = DynamicLossScaler() if precision == "fp16" else None
            tail = _train(replace(cfg, seed=seed), tokens, precision, scaler, cfg.steps)[1]["loss"][-10:]
            finals[seed][precision] = sum(tail) / len(tail)
            metrics[f"seed{seed}.{precision}.final_loss"] = finals[seed][precision]
    # the scaler's control: fp16 without it (training, and the underflow on one batch per seed)
    _, no_scaler = _train(cfg, tokens, "fp16", None, cfg.steps)
    tail = no_scaler["loss"][-10:]
    metrics["fp16_no_scaler.final_loss"] = sum(tail) / len(tail)
    metrics["fp16_no_scaler.first_loss"] = no_scaler["loss"][0]
    under = {s: fp16_grad_underflow(cfg, tokens, s) for s in cfg.control_seeds}
    for s, d in under.items():
        for key, v in d.items():
            metrics[f"underflow.seed{s}.{key}"] = v
    col = {key: [under[s][key] for s in cfg.control_seeds] for key in under[cfg.control_seeds[0]]}
    findings = [
        Finding.at_most("our dynamic loss scaler reproduces torch.amp.GradScaler's scale "
                        f"trajectory ({cfg.scaler_steps} fp16 steps, overflows injected at "
                        f"{cfg.inject_inf_at}; max |scale difference|)",
                        "scaler.max_scale_diff", scale_diff, cfg.checks.max_scale_diff, kind=INVARIANT),
        Finding.at_most("... and skips exactly the same steps (mismatching steps)",
                        "scaler.skip_mismatches", skip_mismatch, cfg.checks.max_skip_mismatches,
                        kind=INVARIANT),
        Finding.at_most("... and ends with the same weights (max |difference|)",
                        "scaler.max_weight_diff", weight_diff, cfg.checks.max_scaler_weight_diff,
                        kind=INVARIANT),
        Finding.at_least("every injected overflow was skipped (skipped steps in the parity run)",
                         "scaler.skipped_steps", sum(ours["skipped"]), len(set(cfg.inject_inf_at)),
                         kind=INVARIANT),
    ]
    n = len(cfg.control_seeds)
    findings += [
        Finding.compare(
            "without a loss scaler fp16 gradients underflow: their relative error against fp32 "
            f"exceeds the scaled fp16 gradients' (one batch, paired over {n} init/batch seeds; a "
            "scaler that does not scale, or fp16 with fp32's range, would fail)",
            "underflow.rel_error_gain", col["no_scaler.rel_error"], col["scaler.rel_error"],
            margin=cfg.checks.min_underflow_error_gain),
        Finding.compare(
            "... entries that are non-zero in fp32 are flushed to zero in fp16 without the scaler, "
            f"more often than with it (fraction of entries, paired over {n} seeds)",
            "underflow.zero_fraction_gain", col["no_scaler.zero_fraction"],
            col["scaler.zero_fraction"], margin=cfg.checks.min_underflow_zero_gain),
    ]
    for precision in ("bf16", "fp16"):
        gap = abs(metrics[f"{precision}.final_loss"] - metrics["fp32.final_loss"])
        metrics[f"{precision}.loss_gap_vs_fp32"] = gap
        gaps = [abs(f[precision] - f["fp32"]) for f in finals.values()]
        findings.append(Finding.compare(
            f"{precision} autocast{' with loss scaling' if precision == 'fp16' else ''} trains "
            f"as well as fp32 (|mean loss of the last 10 of {cfg.steps} steps - fp32's|, nats, "
            f"mean over {len(gaps)} seeds below the bound by two SE; a low-precision path that "
            "lost the updates would fail)", f"{precision}.loss_gap_vs_fp32", gaps,
            margin=-cfg.max_precision_loss_gap, higher_is_better=False))
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for precision, h in runs.items():
        ax0.plot(range(1, len(h["loss"]) + 1), h["loss"], label=precision, linewidth=1.0)
    ax0.set(xlabel="step", ylabel="training loss (nats/byte)", title="fp32 vs bf16 vs fp16 autocast")
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
    steps = range(1, cfg.scaler_steps + 1)
    ax1.step(steps, ours["scale"], where="post", label="ours", linewidth=3)
    ax1.step(steps, ref["scale"], where="post", label="torch.amp.GradScaler", linestyle="--")
    skipped = [s for s, k in zip(steps, ours["skipped"]) if k]
    ax1.plot(skipped, [ours["scale"][s - 1] for s in skipped], "rx", markersize=9,
             label="skipped (overflow)")
    ax1.set(xlabel="step", ylabel="loss scale", yscale="log",
            title=f"dynamic loss scale (growth interval {cfg.growth_interval})")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    lines = [f"{'step':>4} {'ours scale':>11} {'GradScaler':>11} {'skipped':>8}"]
    lines += [f"{i + 1:>4} {a:>11g} {b:>11g} {int(k):>8}"
              for i, (a, b, k) in enumerate(zip(ours["scale"], ref["scale"], ours["skipped"]))]
    lines += ["", "final loss (mean of last 10 steps): " + ", ".join(
        f"{p} {metrics[f'{p}.final_loss']:.4f}" for p in AMP_DTYPES),
        f"fp16 run (init scale 2^16, interval 2000): {int(metrics['fp16.skipped_steps'])} "
        "overflow steps skipped",
        f"fp16 without a loss scaler: first loss {metrics['fp16_no_scaler.first_loss']:.4f}, final "
        f"{metrics['fp16_no_scaler.final_loss']:.4f} (AdamW divides by the gradient's RMS, so "
        "only entries lost to underflow, not the gradient's scale, can hurt it)",
        "", "underflow control (one batch; entries non-zero in fp32):",
        f"{'seed':>4} {'zero, no scaler':>15} {'zero, scaler':>12} {'rel err, no scaler':>18} "
        f"{'rel err, scaler':>15} {'scale':>7}"]
    lines += [f"{s:>4} {d['no_scaler.zero_fraction']:>15.4%} {d['scaler.zero_fraction']:>12.4%} "
              f"{d['no_scaler.rel_error']:>18.3e} {d['scaler.rel_error']:>15.3e} {d['scale']:>7g}"
              for s, d in under.items()]
    ax0.plot(range(1, len(no_scaler["loss"]) + 1), no_scaler["loss"], label="fp16, no scaler",
             linewidth=1.0, linestyle=":")
    ax0.legend(fontsize=8)
    series = {f"{p}_loss": list(enumerate(h["loss"], 1)) for p, h in runs.items()}
    series["fp16_no_scaler_loss"] = list(enumerate(no_scaler["loss"], 1))
    series["loss_scale"] = list(enumerate(ours["scale"], 1))
    return ItemResult(item=ITEM["precision"], metrics=metrics, findings=findings, series=series,
                      figures={"precision.png": fig},
                      texts={"loss_scale.txt": "\n".join(lines) + "\n"})


def accumulation_item(cfg: MixedPrecisionConfig, tokens) -> ItemResult:
    """Item 2: k micro-batches of b accumulated == one batch of k*b (the Trainer's grad_accum)."""
    b, k = cfg.micro_batch, cfg.accum_steps
    base = TrainerConfig(lr=cfg.lr, max_steps=cfg.accum_updates, warmup_steps=2, eval_every=0,
                         seed=cfg.seed, progress=False, fused_optimizer=False)
    runs = {}
    for name, bs, ga in (("accumulated", b, k), ("big_batch", k * b, 1), ("small_batch", b, 1)):
        model = _model(cfg)
        data = TokenBatcher(tokens, cfg.seq_len, mode="sequential")
        result = Trainer(model, replace(base, batch_size=bs, grad_accum=ga), data).train()
        x, y = TokenBatcher(tokens, cfg.seq_len, mode="sequential").next_batch(bs)
        saved, _ = saved_activation_bytes(lambda: model(x, targets=y).loss)
        runs[name] = (model, [h["loss"] for h in result.history], saved)
    model = _model(cfg)
    x, y = TokenBatcher(tokens, cfg.seq_len, mode="sequential").next_batch(k * b)
    model(x, targets=y).loss.backward()
    big = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for xs, ys in zip(x.split(b), y.split(b)):
        (model(xs, targets=ys).loss / k).backward()  # what Trainer.train_step does per micro-batch
    grad_diff = max(float((p.grad - g).abs().max()) for p, g in zip(model.parameters(), big))
    grad_diff /= max(float(g.abs().max()) for g in big)
    diff = _max_weight_diff(runs["accumulated"][0], runs["big_batch"][0])
    loss_diff = max(abs(p - q) for p, q in zip(runs["accumulated"][1], runs["big_batch"][1]))
    control = _max_weight_diff(runs["small_batch"][0], runs["big_batch"][0])
    metrics = {
        "max_weight_diff": diff, "max_loss_diff": loss_diff, "grad_rel_diff": grad_diff, "small_batch_weight_diff": control,
        "activation_bytes_accumulated": float(runs["accumulated"][2]),
        "activation_bytes_big_batch": float(runs["big_batch"][2]),
    }
    metrics["activation_ratio"] = metrics["activation_bytes_accumulated"] / metrics["activation_bytes_big_batch"]
    findings = [
        Finding.at_most(f"{k} accumulated micro-batches of {b} (loss / {k} each) give the gradient "
                        f"of one batch of {k * b} (max |difference| / max |gradient|, first batch)",
                        "grad_rel_diff", grad_diff, cfg.grad_tol, kind=INVARIANT),
        Finding.at_most(f"{k} accumulated micro-batches of {b} give the same weights as one batch "
                        f"of {k * b} after {cfg.accum_updates} AdamW updates (max |difference|)",
                        "max_weight_diff", diff, cfg.accum_tol, kind=INVARIANT),
        Finding.at_least(f"... while a batch of {b} without accumulation ends elsewhere (max "
                         f"|weight difference| to the big batch, > {cfg.checks.min_small_batch_factor:g}x "
                         "the tolerance)", "small_batch_weight_diff", control,
                         cfg.checks.min_small_batch_factor * cfg.accum_tol),
        Finding.at_most(f"accumulation needs the activation memory of one micro-batch: saved "
                        f"bytes ratio vs the big batch (1/k = {1 / k:.3f})",
                        "activation_ratio", metrics["activation_ratio"],
                        cfg.checks.activation_ratio_factor / k, kind=INVARIANT),
    ]
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for (name, (_, losses, _)), style in zip(runs.items(), ("-", "--", ":")):
        ax.plot(range(1, len(losses) + 1), losses, linestyle=style, linewidth=2.5 if style == "-" else 1.5,
                label=name.replace("_", " "))
    ax.set(xlabel="update", ylabel="training loss (nats/byte)",
           title=f"{k} x {b} accumulated vs one batch of {k * b}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    text = (f"first batch: max |grad diff| / max |grad| = {grad_diff:.3e}\n"
            f"max |weight diff| accumulated vs big batch: {diff:.3e}; max |loss diff| {loss_diff:.3e}\n"
            f"small batch (no accumulation) vs big batch: {control:.3e}\n"
            f"saved-for-backward bytes: micro-batch {runs['accumulated'][2]:,}, big batch "
            f"{runs['big_batch'][2]:,}\n")
    return ItemResult(item=ITEM["accumulation"], metrics=metrics, findings=findings,
                      figures={"accumulation.png": fig}, texts={"accumulation.txt": text},
                      series={f"{n}_loss": list(enumerate(r[1], 1)) for n, r in runs.items()})


def throughput_item(cfg: MixedPrecisionConfig, tokens) -> ItemResult:
    """Item 3: tokens/s (timings) and saved-activation bytes of fp32 / bf16 / fp16 training steps.

    The precisions' steps run in interleaved rounds (one step of each per round, 2 warm-up
    rounds), so a slow spell of the machine hits them alike; tokens/s is the median round's.
    """
    data = TokenBatcher(tokens, cfg.seq_len, seed=cfg.seed)
    x, y = data.next_batch(cfg.batch_size)
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    arms = {}
    for precision in AMP_DTYPES:
        model = _model(cfg)
        opt = _optimizer(model, cfg.lr)
        scaler = DynamicLossScaler(enabled=precision == "fp16")
        with autocast(precision):
            saved, _ = saved_activation_bytes(lambda: model(x, targets=y).loss)

        def step(precision=precision, model=model, opt=opt, scaler=scaler) -> None:
            with autocast(precision):
                loss = model(x, targets=y).loss
            scaler.scale_loss(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)

        arms[precision] = step
        metrics[f"{precision}.saved_bytes"] = float(saved)
    times = interleaved_rounds(arms, cfg.throughput_steps, warmup=2)
    for precision in AMP_DTYPES:
        timings[f"{precision}.tokens_per_s"] = x.numel() / statistics.median(times[precision])
    for p in ("bf16", "fp16"):
        timings[f"{p}.speedup_vs_fp32"] = timings[f"{p}.tokens_per_s"] / timings["fp32.tokens_per_s"]
        metrics[f"{p}.memory_ratio_vs_fp32"] = metrics[f"{p}.saved_bytes"] / metrics["fp32.saved_bytes"]
    native = has_native_bf16()
    flags = [f for f in VECTOR_FLAGS if f in cpu_flags()]
    timings["host.native_bf16"] = float(native)
    findings = [Finding.at_most(
        f"{p} autocast shrinks what autograd saves for backward (bytes, {p} / fp32)",
        f"{p}.memory_ratio_vs_fp32", metrics[f"{p}.memory_ratio_vs_fp32"], cfg.max_activation_ratio)
        for p in ("bf16", "fp16")]
    rounds = f"median over {cfg.throughput_steps} interleaved rounds"
    if native:
        expectation = (f"this CPU has native bf16 ({', '.join(f for f in flags if 'bf16' in f)}): "
                       f"bf16 autocast keeps more than {cfg.checks.min_bf16_speed_native:g}x fp32's "
                       "throughput at this size")
        findings.append(Finding.timing_ratio(
            f"{expectation} (bf16 / fp32 tokens per s, {rounds}; an emulated bf16 path would fail)",
            "bf16.speedup_vs_fp32", times["fp32"], times["bf16"], cfg.checks.min_bf16_speed_native))
    else:
        expectation = (f"this CPU has no native bf16 (flags: {', '.join(flags) or 'none read'}): "
                       f"bf16 is emulated and fp32 is more than "
                       f"{cfg.checks.min_fp32_speedup_emulated:g}x faster")
        findings.append(Finding.timing_ratio(
            f"{expectation} (fp32 / bf16 tokens per s, {rounds}; native bf16 kernels would fail)",
            "fp32.speedup_vs_bf16", times["bf16"], times["fp32"],
            cfg.checks.min_fp32_speedup_emulated))
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    names = list(AMP_DTYPES)
    ax0.bar(names, [timings[f"{p}.tokens_per_s"] for p in names], color=["C0", "C1", "C2"])
    ax0.set(ylabel="tokens / s (training step)", title="throughput (1 CPU thread)")
    ax1.bar(names, [metrics[f"{p}.saved_bytes"] / 2**20 for p in names], color=["C0", "C1", "C2"])
    ax1.set(ylabel="MiB saved for backward", title="activation memory per step")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3, axis="y")
    lines = [f"{'precision':<9} {'tokens/s':>10} {'x fp32':>7} {'saved MiB':>10} {'x fp32':>7}"]
    for p in names:
        lines.append(f"{p:<9} {timings[f'{p}.tokens_per_s']:>10.0f} "
                     f"{timings[f'{p}.tokens_per_s'] / timings['fp32.tokens_per_s']:>7.2f} "
                     f"{metrics[f'{p}.saved_bytes'] / 2**20:>10.2f} "
                     f"{metrics[f'{p}.saved_bytes'] / metrics['fp32.saved_bytes']:>7.2f}")
    lines += ["", "memory: bytes of the tensors autograd saves for backward in one training step "
              "(torch.autograd.graph.saved_tensors_hooks; each storage once, parameters not "
              "counted; includes autocast's low-precision weight copies). Not RSS: the fp32 "
              "weights, gradients and AdamW state are the same in every precision.",
              f"tokens/s: {rounds} of one training step per precision (timings: they vary from "
              "run to run).",
              f"device: this CPU, {cfg.num_threads} thread(s); vector flags: "
              f"{', '.join(flags) or 'none read'}. Expectation checked: {expectation}."]
    return ItemResult(item=ITEM["throughput"], metrics=metrics, timings=timings, findings=findings,
                      figures={"throughput_memory.png": fig},
                      texts={"throughput_memory.txt": "\n".join(lines) + "\n"})


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the corpus's train split (tokenized here as UTF-8 bytes)."""

    train_texts: Sequence[str]


def run(cfg: MixedPrecisionConfig, inputs: Inputs) -> list[ItemResult]:
    """Run the three items on the train split's bytes; returns ``[item 1, item 2, item 3]``."""
    train_texts = inputs.train_texts
    with torch_threads(cfg.num_threads):
        tokens = byte_tokens(train_texts)
        return [precision_item(cfg, tokens), accumulation_item(cfg, tokens),
                throughput_item(cfg, tokens)]
