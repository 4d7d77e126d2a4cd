"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

Adam's second-moment estimates are noise for the first few hundred updates, and a full learning
rate then can throw a transformer into a bad region it never leaves; a linear warmup (Goyal et
al. 2017, arXiv:1706.02677; used by the original transformer, arXiv:1706.03762) ramps it up. The
cosine decay (Loshchilov & Hutter 2016, SGDR, arXiv:1608.03983) then anneals it smoothly so the
last updates are small and the loss settles. Chinchilla (arXiv:2203.15556) decays to about 10% of
the peak, our default floor.

The multiplier for the update with 0-based index ``step`` (W warmup steps, S total steps, floor
``r``) is::

    step <  W:  (step + 1) / W
    step >= W:  r + (1 - r) * 0.5 * (1 + cos(pi * p)),   p = min(1, (step - W + 1) / (S - W))

This is exactly ``transformers.optimization.get_cosine_with_min_lr_schedule_with_warmup_lr_rate``
(with ``min_lr_rate=r``; tested), except that we hold the floor after step S instead of cycling
back up.

Worked example (W=2, S=6, r=0.1): steps 0..5 get multipliers 0.5, 1.0, 0.8682, 0.55, 0.2318, 0.1.

Left out: warmup-stable-decay (WSD), inverse-square-root and linear-decay schedules, restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupCosine", "build_scheduler"]


@dataclass
class WarmupCosine:
    """The multiplier of the peak learning rate at each update (a picklable callable).

    Attributes:
        warmup_steps: W, updates of linear warmup (0 for none).
        max_steps: S, the update at which the floor is reached.
        min_lr_ratio: r, the floor as a fraction of the peak.
    """

    warmup_steps: int
    max_steps: int
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(
                f"warmup_steps must be in [0, max_steps={self.max_steps}], got {self.warmup_steps}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")

    def __call__(self, step: int) -> float:
        """Multiplier for the update with 0-based index ``step``."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.max_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps + 1) / decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0 over the decay phase
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def build_scheduler(
    optimizer: Optimizer, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.1
) -> LambdaLR:
    """A torch ``LambdaLR`` driving :class:`WarmupCosine` (its state goes into checkpoints).

    Call ``scheduler.step()`` after each ``optimizer.step()``.

    Args:
        optimizer: whose param groups' ``lr`` is the peak.
        warmup_steps: W.
        max_steps: S.
        min_lr_ratio: r.
    """
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, max_steps, min_lr_ratio))
