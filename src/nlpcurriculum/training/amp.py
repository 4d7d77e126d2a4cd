"""Mixed precision: autocast training with a dynamic loss scaler written out, and its measures.

fp16 has 5 exponent bits: values below ~6e-8 flush to zero and above 65504 overflow. Small
gradients (activations' gradients deep in the backward pass) underflow, so the loss is
multiplied by a large *scale* before ``backward`` and the parameter gradients divided by it
afterwards (Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740). Too large
a scale overflows instead, which shows up as inf/nan gradients: then the step is *skipped* and
the scale halved. After ``growth_interval`` clean steps in a row the scale doubles again, so it
hovers just below the overflow edge. bf16 keeps fp32's 8 exponent bits (same range, fewer
mantissa bits), so it needs no scaling.

:class:`DynamicLossScaler` is that algorithm, with ``torch.amp.GradScaler``'s defaults and
update rule (scale ``2**16``, growth x2, backoff x0.5, growth interval 2000; the tests and the
``mixed_precision`` stage check identical scales, skips and weights against it). Usage::

    scaler = DynamicLossScaler()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(x, targets=y).loss
    scaler.scale_loss(loss).backward()
    scaler.unscale_(optimizer)          # optional: before clipping the true gradients
    scaler.step(optimizer)              # skipped if any gradient is inf/nan
    scaler.update()

Weights stay fp32 ("master weights"); autocast runs matmuls in low precision and keeps
reductions (softmax, layer norm, the loss) in fp32.

Measures: :func:`saved_activation_bytes` counts the bytes autograd saves for the backward pass
(the activation memory that low precision halves), through
``torch.autograd.graph.saved_tensors_hooks``; :func:`throughput` times whole training steps.

Left out: pure-fp16/bf16 weights, fp8, per-layer scaling, stochastic rounding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "AMP_DTYPES",
    "DynamicLossScaler",
    "autocast",
    "saved_activation_bytes",
    "throughput",
    "train_amp",
]

AMP_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device_type: str = "cpu") -> Any:
    """``torch.autocast`` for ``"bf16"`` / ``"fp16"``; a no-op context for ``"fp32"``."""
    if precision not in AMP_DTYPES:
        raise ValueError(f"precision must be one of {tuple(AMP_DTYPES)}, got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type, dtype=AMP_DTYPES[precision])


class DynamicLossScaler:
    """Dynamic loss scaling with overflow skipping (GradScaler's algorithm, written out).

    Args:
        init_scale: the first scale.
        growth_factor: multiply the scale by this after ``growth_interval`` clean steps.
        backoff_factor: multiply the scale by this after an overflow.
        growth_interval: clean steps in a row before growing.
        enabled: ``False`` makes every method a pass-through (fp32 / bf16 training).
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 enabled: bool = True) -> None:
        if init_scale <= 0 or growth_factor <= 1.0 or not 0.0 < backoff_factor < 1.0:
            raise ValueError("need init_scale > 0, growth_factor > 1 and 0 < backoff_factor < 1")
        if growth_interval < 1:
            raise ValueError(f"growth_interval must be >= 1, got {growth_interval}")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval, self.enabled = growth_interval, enabled
        self.growth_tracker = 0  # clean steps since the last growth or overflow
        self._unscaled: bool = False
        self._found_inf: bool = False
        self.skipped_steps = 0

    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss * scale`` (call ``.backward()`` on it)."""
        return loss * self.scale if self.enabled else loss

    @staticmethod
    def _grads(optimizer: torch.optim.Optimizer) -> list[Tensor]:
        return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def unscale_(self, optimizer: torch.optim.Optimizer) -> bool:
        """Divide the gradients by the scale in place; return whether any is inf/nan.

        Called at most once per step (``step`` calls it if you did not).
        """
        if not self.enabled:
            return False
        if self._unscaled:
            raise RuntimeError("unscale_() was already called since the last update()")
        # the reciprocal in double, rounded to fp32 once, as GradScaler computes it
        inv = float(torch.tensor(self.scale, dtype=torch.float64).reciprocal().float())
        found = False
        for g in self._grads(optimizer):
            g.mul_(inv)
            found = found or not bool(torch.isfinite(g).all())
        self._unscaled, self._found_inf = True, found
        return found

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale (if not done) and step, unless a gradient overflowed; returns whether it stepped."""
        if not self.enabled:
            optimizer.step()
            return True
        if not self._unscaled:
            self.unscale_(optimizer)
        if self._found_inf:
            self.skipped_steps += 1
            return False
        optimizer.step()
        return True

    def update(self) -> float:
        """Adjust the scale after a step: back off on overflow, grow after a clean streak.

        Returns:
            The new scale.
        """
        if not self.enabled:
            return self.scale
        if not self._unscaled:
            raise RuntimeError("update() needs a step() (or unscale_()) first")
        if self._found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                grown = self.scale * self.growth_factor
                # never grow into inf; the scale is an fp32 number (as GradScaler stores it)
                if math.isfinite(float(torch.tensor(grown, dtype=torch.float32))):
                    self.scale = grown
                self.growth_tracker = 0
        self._unscaled = self._found_inf = False
        return self.scale

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "growth_tracker": self.growth_tracker,
                "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.growth_tracker = int(state["growth_tracker"])
        self.skipped_steps = int(state.get("skipped_steps", 0))


def saved_activation_bytes(fn: Callable[[], Tensor]) -> tuple[int, Tensor]:
    """Bytes autograd saves for the backward pass while ``fn()`` runs (each storage once).

    This is the activation memory of a training step (plus autocast's low-precision copies of
    the weights, which are saved too); parameters themselves are not counted (they are leaves
    that exist anyway). Returns ``(bytes, fn's output)``.
    """
    seen: dict[tuple[int, int], int] = {}
    params: set[int] = set()

    def pack(t: Tensor) -> Tensor:
        if isinstance(t, nn.Parameter):
            params.add(t.untyped_storage().data_ptr())
        else:
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    total = sum(n for (ptr, _), n in seen.items() if ptr not in params)
    return total, out


def throughput(step: Callable[[], int], n_steps: int, warmup: int = 2) -> float:
    """Tokens per second of ``step()`` (which runs one training step and returns its tokens),
    timed over ``n_steps`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    tokens = sum(step() for _ in range(n_steps))
    return tokens / (time.perf_counter() - t0)


def train_amp(
    model: nn.Module,
    batches: Callable[[], tuple[Tensor, Tensor]],
    steps: int,
    optimizer: torch.optim.Optimizer,
    precision: str = "fp32",
    scaler: "DynamicLossScaler | torch.amp.GradScaler | None" = None,
    inject_inf_at: tuple[int, ...] = (),
    grad_clip: float | None = None,
) -> dict[str, list[float]]:
    """Train ``steps`` updates under autocast with an optional loss scaler.

    Args:
        model: returns ``.loss`` from ``model(x, targets=y)``.
        batches: returns the next ``(x, y)``.
        steps: updates.
        optimizer: over ``model``'s fp32 parameters.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the autocast dtype).
        scaler: our :class:`DynamicLossScaler` or ``torch.amp.GradScaler("cpu")``; ``None``
            trains unscaled.
        inject_inf_at: steps at which one gradient entry is set to ``inf`` after the backward
            pass (a simulated overflow: the scaler must skip that step).
        grad_clip: clip the unscaled gradients' global norm to this.

    Returns:
        ``{"loss": [...], "scale": [scale used at each step], "skipped": [0/1 per step]}``.
    """
    torch_scaler = isinstance(scaler, torch.amp.GradScaler)
    out: dict[str, list[float]] = {"loss": [], "scale": [], "skipped": []}
    first = next(p for p in model.parameters() if p.requires_grad)
    model.train()
    for step in range(steps):
        x, y = batches()
        with autocast(precision):
            loss = model(x, targets=y).loss
        if scaler is None:
            scale = 1.0
            loss.backward()
        else:
            scale = scaler.get_scale() if torch_scaler else scaler.scale
            (scaler.scale(loss) if torch_scaler else scaler.scale_loss(loss)).backward()
        if step in inject_inf_at:
            with torch.no_grad():
                first.grad.view(-1)[0] = float("inf")
        if scaler is not None and grad_clip:
            scaler.unscale_(optimizer)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is None:
            optimizer.step()
            skipped = False
        elif torch_scaler:
            scaler.step(optimizer)
            scaler.update()
            skipped = scaler.get_scale() < scale  # GradScaler backs off exactly when it skipped
        else:
            skipped = not scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        out["loss"].append(float(loss.detach()))
        out["scale"].append(float(scale))
        out["skipped"].append(float(skipped))
    return out
