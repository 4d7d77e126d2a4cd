"""Bytes a process holds, read from the C allocator: what a tensor really costs once allocated.

``numel * element_size`` says what a tensor *should* take; :func:`heap_bytes` measures what the
allocator handed out. torch's CPU tensors are allocated with ``posix_memalign`` from glibc's
malloc, so the bytes glibc reports in use (``mallinfo2``: ``uordblks``, the main arena's
allocated chunks, plus ``hblkhd``, the large blocks it maps with ``mmap``) grow by a tensor's
size plus a few bytes of chunk header when one is made, and fall back when it is freed. Read
before and after building something and kept alive, the difference is its measured size
(:func:`measured_bytes`).

Where glibc's ``mallinfo2`` is missing (musl, macOS), the resident set size from
``/proc/self/statm`` is used instead (page-granular, and it includes pages freed but not yet
returned); :func:`heap_source` says which one is read.

Left out: other threads' malloc arenas (``mallinfo2`` reports the main arena; decoding here runs
on the main thread), CUDA (``torch.cuda.memory_allocated`` is the allocator reading there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable
from typing import Any

__all__ = ["heap_bytes", "heap_source", "measured_bytes"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _mallinfo2()


def heap_source() -> str:
    """``"mallinfo2"`` (glibc's bytes in use) or ``"rss"`` (resident pages), what is read."""
    return "mallinfo2" if _MALLINFO2 is not None else "rss"


def heap_bytes() -> int:
    """Bytes the process's allocator has handed out now (see the module docstring)."""
    gc.collect()
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        return int(info.uordblks + info.hblkhd)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measured_bytes(build: Callable[[], Any]) -> tuple[Any, int]:
    """``(build(), bytes the heap grew by while building it)``; the result is kept alive, so
    what it holds is counted and what ``build`` only used on the way is not."""
    before = heap_bytes()
    out = build()
    return out, heap_bytes() - before
