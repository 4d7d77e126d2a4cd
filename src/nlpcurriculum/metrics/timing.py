"""Wall-clock timing on a shared CPU: best of several runs, and the number of torch threads.

* :func:`best_of` calls a function ``repeats`` times and keeps the fastest run: on a busy
  machine most slow runs are other processes' time slices, so the minimum is the least
  disturbed estimate of the function's own cost.
* :func:`torch_threads` runs a block with a given number of intra-op torch threads and
  restores the previous count afterwards (small models gain little from a second thread, and
  two spinning OpenMP threads on a shared machine can be many times slower than one).

Left out: CUDA timing (events and synchronisation), statistics over the runs (a median or a
quantile: the callers that need one compute it from their own list of times).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

__all__ = ["best_of", "torch_threads"]

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeats: int) -> tuple[T | None, float]:
    """Call ``fn`` ``repeats`` times; return ``(its last result, the fastest call in seconds)``.

    With ``repeats = 0`` nothing runs: ``(None, inf)``.
    """
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (restored afterwards).

    Raises:
        ValueError: when ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
