"""Activation (gradient) checkpointing: keep a block's input, recompute its insides in backward.

Backpropagation needs, for every operation, the tensors its gradient formula reads (the inputs
of a matmul, the probabilities of a softmax, the pre-activation of a GELU, ...). Autograd keeps
them alive from the forward pass until the backward pass reaches that operation, so activation
memory grows with depth x batch x sequence length and, for a transformer at long context,
dwarfs the weights. Chen et al. 2016 ("Training Deep Nets with Sublinear Memory Cost",
arXiv:1604.06174) trade compute for memory: run a segment's forward *without* recording
(``no_grad``), keep only its input, and when backward reaches the segment, run its forward
again with recording on and backpropagate through that fresh graph. Per transformer block that
keeps one ``(B, T, C)`` tensor instead of a dozen (plus the ``(B, nh, T, T)`` attention
probabilities on the by-hand path), at the price of one extra forward per block: about
``(F + F + 2F) / (F + 2F) = 4/3`` of the step's compute when backward costs twice the forward.

:class:`RecomputeBlock` is that idea as a ``torch.autograd.Function``:

- ``forward(run_fn, x, *params)``: records torch's RNG state (so dropout draws the same mask
  twice), saves only ``x`` for backward, runs ``run_fn(x)`` under ``no_grad``.
- ``backward(grad_y)``: detaches ``x``, restores the RNG state inside ``fork_rng`` (the global
  generator is left where it was), re-runs ``run_fn`` under ``enable_grad`` and returns
  ``torch.autograd.grad(y, (x, *params), grad_y)``. The parameters are inputs of the Function,
  so their gradients flow back through autograd as usual (``.backward()`` accumulates them,
  ``torch.autograd.grad`` can ask for them); no ``.grad`` is written behind autograd's back as
  the reentrant ``torch.utils.checkpoint`` does.

:func:`checkpoint_blocks` turns it on per block of a
:class:`~nlpcurriculum.models.miniformer.MiniFormer` (``impl="ours"``, or ``"torch"`` for
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``, the reference) by overriding the
block instance's ``forward``; the module tree and the ``state_dict`` keys do not change, so
checkpoints and hooks keep working. It only applies while training with gradients on and
without a KV cache or attention weights requested; evaluation runs the plain block.

Measuring (:func:`saved_tensor_bytes`, :func:`peak_rss_delta`): the bytes autograd keeps for
backward are counted exactly with ``torch.autograd.graph.saved_tensors_hooks``, one count per
distinct storage (a view of a kept tensor costs nothing more); parameters are counted apart,
since they live anyway. On CPU the allocator's peak is the process's peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs``), which includes gradients, optimizer state
and allocator slack.

Left out: selective checkpointing (recompute only cheap ops), checkpointing every k-th block
(sqrt(n) segments), CPU offloading of saved tensors, CUDA streams/autocast state capture.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

__all__ = [
    "CKPT_IMPLS",
    "RecomputeBlock",
    "SavedBytes",
    "checkpoint_blocks",
    "peak_rss_delta",
    "recompute",
    "saved_tensor_bytes",
]

CKPT_IMPLS = ("ours", "torch")


class RecomputeBlock(torch.autograd.Function):
    """``y = run_fn(x)`` that stores only ``x`` and recomputes ``run_fn`` in backward.

    Call as ``RecomputeBlock.apply(run_fn, x, *params)`` where ``params`` are the parameters
    ``run_fn`` reads (their gradients are returned through autograd). ``run_fn`` must be a pure
    function of ``x``, the parameters and torch's RNG (which is replayed).
    """

    @staticmethod
    def forward(ctx: Any, run_fn: Callable[[Tensor], Tensor], x: Tensor, *params: Tensor) -> Tensor:
        ctx.run_fn = run_fn
        ctx.params = params  # leaf parameters: held anyway by the module, no extra memory
        ctx.device = x.device
        ctx.cpu_rng = torch.get_rng_state()  # dropout must draw the same masks when recomputed
        ctx.cuda_rng = torch.cuda.get_rng_state(x.device) if x.is_cuda else None
        ctx.save_for_backward(x)  # the only activation kept: (B, T, C)
        with torch.no_grad():
            return run_fn(x)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        devices = [ctx.device] if ctx.cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.set_rng_state(ctx.cpu_rng)
            if ctx.cuda_rng is not None:
                torch.cuda.set_rng_state(ctx.cuda_rng, ctx.device)
            y = ctx.run_fn(x)  # the block again, this time recording its graph
        wanted = [x] + [p for p in ctx.params if p.requires_grad]
        grads = iter(torch.autograd.grad(y, wanted, grad_y, allow_unused=True))
        grad_x = next(grads)
        grad_params = [next(grads) if p.requires_grad else None for p in ctx.params]
        return (None, grad_x if ctx.needs_input_grad[1] else None, *grad_params)


def recompute(run_fn: Callable[[Tensor], Tensor], x: Tensor, params: Iterable[Tensor]) -> Tensor:
    """``run_fn(x)`` under :class:`RecomputeBlock` (``params``: what ``run_fn`` reads)."""
    return RecomputeBlock.apply(run_fn, x, *params)


def _checkpointed_forward(block: nn.Module, x: Tensor, **kwargs: Any) -> tuple[Tensor, Any]:
    """The block's forward, through the recompute path when it can apply."""
    impl = block._ckpt_impl
    plain = type(block).forward
    if (not block.training or not torch.is_grad_enabled() or kwargs.get("kv_cache") is not None
            or kwargs.get("need_weights")):
        return plain(block, x, **kwargs)

    def run(t: Tensor) -> Tensor:
        return plain(block, t, **kwargs)[0]  # (B, T, C); the weights are None here

    if impl == "ours":
        y = recompute(run, x, block.parameters())
    else:
        from torch.utils.checkpoint import checkpoint

        y = checkpoint(run, x, use_reentrant=False, preserve_rng_state=True)
    return y, None


def checkpoint_blocks(model: nn.Module, impl: str | None = "ours",
                      which: Iterable[int] | None = None) -> nn.Module:
    """Turn activation checkpointing on (or off, ``impl=None``) for blocks of ``model``.

    Args:
        model: anything with a ``blocks`` ``ModuleList`` whose blocks return ``(x, weights)``
            (a :class:`~nlpcurriculum.models.miniformer.MiniFormer`).
        impl: ``"ours"`` (:class:`RecomputeBlock`), ``"torch"``
            (``torch.utils.checkpoint.checkpoint(use_reentrant=False)``) or ``None`` (off).
        which: block indices (default: every block).

    Returns:
        ``model`` (changed in place; parameters and ``state_dict`` keys are untouched).
    """
    if impl is not None and impl not in CKPT_IMPLS:
        raise ValueError(f"impl must be one of {CKPT_IMPLS} or None, got {impl!r}")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError("checkpoint_blocks needs a model with a `blocks` ModuleList")
    indices = range(len(blocks)) if which is None else list(which)
    for i in indices:
        if not 0 <= i < len(blocks):
            raise ValueError(f"block index {i} out of range for {len(blocks)} blocks")
        block = blocks[i]
        if impl is None:
            block.__dict__.pop("forward", None)
            block.__dict__.pop("_ckpt_impl", None)
        else:
            block._ckpt_impl = impl
            block.forward = types.MethodType(_checkpointed_forward, block)
    return model


# ---------------------------------------------------------------------------------------------
# measuring


class SavedBytes:
    """Bytes autograd saves for backward, one count per distinct storage.

    Attributes:
        activation_bytes: saved tensors that are not parameters (what checkpointing removes).
        parameter_bytes: saved tensors that are parameters (kept alive by the model anyway).
        n_tensors: saved tensors packed (views of one storage included).
    """

    def __init__(self, params: Iterable[Tensor] = ()) -> None:
        self._param_ptrs = {p.untyped_storage().data_ptr() for p in params}
        self._seen: set[int] = set()
        self.activation_bytes = 0
        self.parameter_bytes = 0
        self.n_tensors = 0

    def pack(self, t: Tensor) -> Tensor:
        self.n_tensors += 1
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._seen:
            self._seen.add(ptr)
            if ptr in self._param_ptrs:
                self.parameter_bytes += storage.nbytes()
            else:
                self.activation_bytes += storage.nbytes()
        return t

    @staticmethod
    def unpack(t: Tensor) -> Tensor:
        return t


@contextmanager
def saved_tensor_bytes(params: Iterable[Tensor] = ()) -> Iterator[SavedBytes]:
    """Count what autograd saves for backward inside the block (forward passes only).

    Example:
        >>> with saved_tensor_bytes(model.parameters()) as saved:
        ...     loss = model(x, targets=y).loss
        >>> saved.activation_bytes
    """
    counter = SavedBytes(params)
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        yield counter


_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"{field}:\s+(\d+)", _STATUS.read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _trim_heap() -> None:
    """Give freed heap pages back to the kernel (glibc ``malloc_trim``), so the step's peak
    shows as new resident memory instead of reusing pages an earlier step left behind."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _mmap_threshold(nbytes: int) -> None:
    """Serve allocations of ``nbytes`` or more with their own ``mmap`` (returned to the kernel
    on free), so the resident set follows the live tensors instead of heap fragmentation."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes))


def peak_rss_delta(fn: Callable[[], Any]) -> float | None:
    """Peak resident-set growth (bytes) while ``fn()`` runs, or ``None`` where not measurable.

    Makes every allocation of 64 KiB or more its own ``mmap`` while measuring (glibc
    ``mallopt``; afterwards the threshold is set to 32 MiB, the ceiling glibc's own dynamic
    threshold grows to), trims the heap, resets the kernel's high-water mark
    (``echo 5 > /proc/self/clear_refs``, Linux), runs
    ``fn`` and returns ``VmHWM - VmRSS(before)``. Includes everything the step allocates
    (activations, gradients, optimizer state on its first step, allocator slack).
    """
    _mmap_threshold(64 * 1024)
    try:
        _trim_heap()
        before = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return None
        if before is None:
            return None
        fn()
        peak = _status_kib("VmHWM")
    finally:
        _mmap_threshold(32 * 1024 * 1024)  # glibc's dynamic threshold's ceiling: heap reuse again
    return None if peak is None else max(0.0, (peak - before) * 1024.0)
