"""Counting floating-point operations: measured by torch, and by the dense-matmul rule.

* :func:`count_flops` runs a function under ``torch.utils.flop_counter.FlopCounterMode`` and
  returns the FLOPs of the operators it knows (matmuls, convolutions, attention kernels): what
  actually ran, forward and backward.
* :func:`dense_train_flops` is the rule of Kaplan et al. 2020 (arXiv:2001.08361, section 2.1):
  a matmul of ``n`` token rows with a ``(a, b)`` weight costs ``2nab`` forward (a multiply and
  an add per weight per row) and twice that backward (the input gradient and the weight
  gradient), so ``6 * n * weights`` per training step.

Worked example (tested): one ``nn.Linear(4, 3, bias=False)`` on 5 rows, forward and backward:
``6 * 5 * 12 = 360`` FLOPs, and ``count_flops`` counts the same (forward ``2 * 5 * 4 * 3 = 120``,
backward 240).

Left out: element-wise operations (norms, activations, softmax), which the counter leaves out
too; hardware utilisation (see ``benchmarks/bench_model.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["count_flops", "dense_train_flops"]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the operators ``fn()`` runs, as counted by ``FlopCounterMode``.

    ``fn`` runs once; include ``.backward()`` in it to count the backward pass too.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def dense_train_flops(n_tokens: int, n_weights: int) -> int:
    """``6 * n_tokens * n_weights``: forward (2) and backward (4) FLOPs of dense matmuls holding
    ``n_weights`` weights, applied to ``n_tokens`` rows."""
    return 6 * n_tokens * n_weights
