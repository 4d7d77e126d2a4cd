"""What machine a timing was measured on: CPU model, the vector extensions that decide speed, threads.

Speed and memory findings depend on the hardware (docs/CONVENTIONS.md, "Findings"): bf16 matmuls
are fast only where the CPU has native bf16 instructions (AVX-512 BF16 or AMX) and can be a
hundred times slower than fp32 where it has AVX2 only. So a stage records :func:`host` beside its
timings, and a finding that depends on a capability asks :func:`cpu_flags` instead of assuming one
machine's answer.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from functools import lru_cache

import torch

__all__ = ["VECTOR_FLAGS", "cache_sizes", "cpu_flags", "cpu_model", "has_native_bf16", "host"]

# The /proc/cpuinfo flags that decide how fast fp32, bf16 and int8 kernels run.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor block of ``/proc/cpuinfo`` as ``{key: value}`` (empty off Linux)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``avx2``, ``avx512_bf16``, ...); empty where they cannot be read."""
    return frozenset(_cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. ``"AMD EPYC 9R14"``, or the platform's processor string."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


def has_native_bf16() -> bool:
    """Whether bf16 matmuls run on native instructions (AVX-512 BF16 or AMX), not emulated."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cache_sizes(cpu: str = "/sys/devices/system/cpu/cpu0") -> dict[str, int]:
    """The core's data caches in bytes, read from sysfs: ``{"L1d": ..., "L2": ..., "L3": ...}``.

    Empty where sysfs does not say (not Linux, a container that hides it); callers fall back to
    a stated default and say so.
    """
    sizes: dict[str, int] = {}
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    for index in sorted(Path(cpu, "cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        number, unit = (size[:-1], size[-1]) if size[-1:] in units else (size, "")
        name = f"L{level}d" if kind == "Data" else f"L{level}"
        sizes[name] = int(number) * units.get(unit, 1)
    return sizes


def host() -> dict[str, object]:
    """A record of the machine for a timings file: model, cores, vector flags, torch threads."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "vector_flags": [f for f in VECTOR_FLAGS if f in flags],
        "caches": cache_sizes(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
