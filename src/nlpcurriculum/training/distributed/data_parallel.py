"""Data parallel by hand, with DDP and with FSDP2: one job on this rank.

What one data-parallel step does (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704):

1. every rank draws the *same* global batch and keeps its shard
   (:func:`~nlpcurriculum.training.distributed.common.shard_starts`): ``G / W`` windows per rank,
   disjoint, together the whole batch;
2. forward + backward on the shard: the local gradient of the local mean loss;
3. all-reduce (sum) every gradient and divide by ``W``: every rank now holds the gradient of
   the *global* mean loss, exactly the single-process gradient up to float summation order;
4. the same optimizer step everywhere, so the replicas stay identical.

Three implementations, selected by a job's ``mode``:

- ``"manual"``: step 3 written out: ``dist.all_reduce`` per parameter (``bucket_mb = 0``), or on
  flat buckets of about ``bucket_mb`` MB (gradients concatenated in reverse order, as DDP does),
  with timers around the communication: the all-reduce share of the step, measured directly.
- ``"ddp"``: :class:`torch.nn.parallel.DistributedDataParallel` with ``bucket_cap_mb``: autograd
  hooks all-reduce a bucket as soon as all its gradients are ready, overlapping communication
  with the rest of the backward pass. Optionally the fp16 compression comm hook.
- ``"fsdp"``: FSDP2 (``torch.distributed.fsdp.fully_shard``, Zhao et al. 2023,
  arXiv:2304.11277), each block and the root sharded: every rank stores ``1/W`` of each
  parameter and of the AdamW state, all-gathers a block's weights just before using it and
  reduce-scatters its gradients. Works on CPU with gloo in torch 2.13.

Dimension legend: G windows per global batch, W world size (ranks).

Left out: ZeRO-1/2 by hand, gradient clipping (a global norm needs one more all-reduce; here it
would only blur the parity check).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nlpcurriculum.training.distributed.common import (
    DistJob,
    DistSetup,
    build_seeded,
    global_batch_starts,
    make_optimizer,
    shard_starts,
    windows,
)

__all__ = ["allreduce_gradients", "grad_buckets", "run_data_parallel"]


class _Timer:
    """Accumulates wall time of named phases (synchronising CUDA so GPU time is counted)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.total = device, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - t0


def grad_buckets(params: list[nn.Parameter], bucket_mb: float) -> list[list[nn.Parameter]]:
    """Group parameters into buckets of about ``bucket_mb`` MB, in reverse order (the order
    backward produces gradients, as DDP buckets them); ``bucket_mb = 0``: one per parameter."""
    if bucket_mb <= 0:
        return [[p] for p in reversed(params)]
    cap = bucket_mb * 2**20
    buckets, current, size = [], [], 0
    for p in reversed(params):
        current.append(p)
        size += p.numel() * p.element_size()
        if size >= cap:
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    return buckets


def allreduce_gradients(buckets: list[list[nn.Parameter]], world: int) -> int:
    """Average gradients over ranks by hand; returns the number of all-reduce calls.

    A bucket of one parameter is reduced in place; a larger one is flattened into one buffer,
    reduced with a single call (one latency instead of many) and copied back.
    """
    for bucket in buckets:
        if len(bucket) == 1:
            g = bucket[0].grad
            dist.all_reduce(g)  # sum over ranks, in place
            g.div_(world)
        else:
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # (sum of numel,)
            dist.all_reduce(flat)
            flat.div_(world)
            offset = 0
            for p in bucket:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
                offset += n
    return len(buckets)


def _global_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def run_data_parallel(job: DistJob, setup: DistSetup, tokens: Tensor, rank: int, world: int,
                      device: torch.device) -> dict[str, Any]:
    """Train one data-parallel job on this rank; returns its losses and timings."""
    model = build_seeded(setup).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    timer = _Timer(device)
    buckets = None
    if job.mode == "manual":
        for p in params:  # replicas must start equal; the seed already makes them, but say so
            dist.broadcast(p.data, src=0)
        buckets = grad_buckets(params, job.bucket_mb)
        net: nn.Module = model
    elif job.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, bucket_cap_mb=job.bucket_mb,
                  device_ids=[device.index] if device.type == "cuda" else None)
        if job.compress == "fp16":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            net.register_comm_hook(None, default_hooks.fp16_compress_hook)
    else:  # fsdp
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)  # each block's weights all-gathered just in time
        fully_shard(model)  # the rest (embedding, tied head, final norm)
        net = model
    opt = make_optimizer(model, setup.lr, setup.weight_decay)
    local, global_losses, step_times, fwd_bwd_times, comm_times, calls = [], [], [], [], [], 0
    for step in range(job.steps):
        starts = global_batch_starts(step, setup.global_batch, len(tokens), setup.seq_len, setup.seed)
        x, y = (t.to(device) for t in windows(tokens, shard_starts(starts, rank, world), setup.seq_len))
        dist.barrier()  # start every step together, so the timings are per step, not skew
        timer.total.clear()
        with timer("step"):
            with timer("compute"):
                loss = net(x, targets=y).loss
                loss.backward()
            if buckets is not None:
                with timer("comm"):
                    calls = allreduce_gradients(buckets, world)
            opt.step()
            opt.zero_grad(set_to_none=True)
        loss = loss.detach()
        local.append(float(loss))
        global_losses.append(_global_mean(float(loss), device))
        step_times.append(timer.total["step"])
        fwd_bwd_times.append(timer.total["compute"])  # for DDP: includes the overlapped all-reduce
        comm_times.append(timer.total.get("comm", 0.0))
    out: dict[str, Any] = {
        "losses": local, "global_losses": global_losses, "step_s": step_times,
        "fwd_bwd_s": fwd_bwd_times, "comm_s": comm_times, "allreduce_calls": calls,
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
    }
    if job.mode == "ddp" and job.profile_passes:
        # compute alone: the same forward+backward under no_sync (DDP skips its all-reduce)
        compute = []
        for _ in range(job.profile_passes):
            dist.barrier()
            t0 = time.perf_counter()
            with net.no_sync():
                net(x, targets=y).loss.backward()
            compute.append(time.perf_counter() - t0)
            opt.zero_grad(set_to_none=True)
        out["compute_only_s"] = compute
    return out
