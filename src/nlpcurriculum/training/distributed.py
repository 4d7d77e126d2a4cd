"""Data-parallel training of the mini-former with torch.distributed: by hand, DDP and FSDP.

Launch (one machine, 2 processes; gloo on CPU, nccl when CUDA is available)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 \\
        -m nlpcurriculum.training.distributed setup.json

Multi-node (run the same command on every node; ``$HEAD`` is node 0's address)::

    torchrun --nnodes 2 --nproc-per-node 8 --node-rank $NODE_RANK \\
        --rdzv-backend c10d --rdzv-endpoint $HEAD:29500 --rdzv-id job42 \\
        -m nlpcurriculum.training.distributed setup.json

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` / ``MASTER_PORT`` for
every process; :func:`init_distributed` reads them (``init_process_group`` with the ``env://``
method) and pins each process to ``cuda:LOCAL_RANK`` on GPUs. Nothing else changes between one
node and many: the global batch is split by global rank.

What one data-parallel step does (Li et al. 2020, "PyTorch Distributed", arXiv:2006.15704):

1. every rank draws the *same* global batch of ``G`` windows (a generator seeded by the step)
   and keeps its shard ``starts[rank::world]`` (DistributedSampler's strided split): ``G / W``
   windows per rank, disjoint, together the whole batch;
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

Pipeline parallelism lives in :mod:`nlpcurriculum.training.pipeline_parallel` (``mode
"pipeline"`` here dispatches to it). Every rank writes ``rank<r>.json`` (its local losses, the
global losses and timings per job) to the output folder; :func:`launch` runs torchrun as a
subprocess and gathers them, :func:`reference_losses` is the single-process run at the same
global batch that they are compared with.

Left out: tensor parallelism, ZeRO-1/2 by hand, elastic restarts, gradient clipping (a global
norm needs one more all-reduce; here it would only blur the parity check).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.training.trainer import param_groups, seed_everything

__all__ = [
    "DIST_MODES",
    "DistJob",
    "DistSetup",
    "global_batch_starts",
    "init_distributed",
    "launch",
    "make_optimizer",
    "reference_losses",
    "shard_starts",
    "windows",
]

DIST_MODES = ("manual", "ddp", "fsdp", "pipeline")


@dataclass
class DistJob:
    """One training run inside a launch (several jobs share one torchrun start-up).

    Attributes:
        name: the job's key in the result files.
        mode: ``"manual"``, ``"ddp"``, ``"fsdp"`` or ``"pipeline"``.
        steps: optimizer updates (all logged; timings skip the first, a warm-up).
        bucket_mb: manual: 0 = one all-reduce per parameter, > 0 = flat buckets of this size;
            ddp: ``bucket_cap_mb``.
        compress: ddp only: ``"none"`` or ``"fp16"`` (gradients cast to fp16 for the
            all-reduce, halving the bytes sent; changes the numerics slightly).
        micro_batches: pipeline only: ``m`` micro-batches per global batch (GPipe).
        profile_passes: ddp only: extra forward+backward passes under ``no_sync`` (no
            communication) after training, to time the compute alone.
    """

    name: str
    mode: str
    steps: int
    bucket_mb: float = 25.0
    compress: str = "none"
    micro_batches: int = 1
    profile_passes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in DIST_MODES:
            raise ValueError(f"job {self.name!r}: mode must be one of {DIST_MODES}, got {self.mode!r}")
        if self.steps < 1 or self.micro_batches < 1 or self.profile_passes < 0:
            raise ValueError(f"job {self.name!r}: steps and micro_batches must be >= 1")
        if self.bucket_mb < 0:
            raise ValueError(f"job {self.name!r}: bucket_mb must be >= 0, got {self.bucket_mb}")
        if self.compress not in ("none", "fp16"):
            raise ValueError(f"job {self.name!r}: compress must be 'none' or 'fp16'")


@dataclass
class DistSetup:
    """Everything a launch needs, written to a JSON file that every rank reads.

    Attributes:
        model: :class:`MiniFormerConfig` fields.
        tokens: path of a 1-D int64 tensor saved with ``torch.save`` (the byte stream).
        seq_len: T, tokens per window.
        global_batch: G, windows per optimizer step over all ranks (divisible by the world
            size for data parallel, by ``micro_batches`` for the pipeline).
        lr: AdamW learning rate (constant: the parity check needs no schedule).
        weight_decay: AdamW decoupled decay on matrices.
        seed: model initialisation and batch seed.
        jobs: the runs, in order.
    """

    model: dict[str, Any]
    tokens: str
    seq_len: int
    global_batch: int
    lr: float = 3e-3
    weight_decay: float = 0.1
    seed: int = 0
    jobs: list[DistJob] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.jobs = [j if isinstance(j, DistJob) else DistJob(**j) for j in self.jobs]
        if self.global_batch < 1 or self.seq_len < 2:
            raise ValueError("global_batch must be >= 1 and seq_len >= 2")

    def model_config(self) -> MiniFormerConfig:
        return MiniFormerConfig(**self.model)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DistSetup":
        return cls(**json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------
# data: the same global batch everywhere, a disjoint shard per rank


def global_batch_starts(step: int, global_batch: int, n_tokens: int, seq_len: int, seed: int) -> Tensor:
    """The window starts of step ``step``'s global batch, ``(G,)``: identical on every rank.

    A generator seeded by ``(seed, step)`` instead of one advancing stream, so any rank (or a
    resumed run) can compute any step's batch without replaying the previous ones.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n_tokens - seq_len, (global_batch,), generator=g)


def shard_starts(starts: Tensor, rank: int, world: int) -> Tensor:
    """Rank ``rank``'s share of the global batch: ``starts[rank::world]`` (DistributedSampler's
    strided split), ``(G / W,)``."""
    if len(starts) % world:
        raise ValueError(f"global_batch={len(starts)} is not divisible by world size {world}")
    return starts[rank::world]


def windows(tokens: Tensor, starts: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """``(x, y)``, each ``(len(starts), T)``: inputs and next-token targets."""
    chunk = tokens[starts[:, None] + torch.arange(seq_len + 1)[None, :]]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with the trainer's decay split; the for-each kernel in every mode (same math)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95),
                             foreach=True)


def build_seeded(setup: DistSetup) -> MiniFormer:
    """The model every run starts from (same seed -> same weights in every process)."""
    seed_everything(setup.seed)
    return build_model(setup.model_config())


def reference_losses(setup: DistSetup, steps: int, tokens: Tensor | None = None,
                     micro_batches: int = 1) -> list[float]:
    """Single-process training at the same global batch: the losses every mode must match.

    Args:
        setup: the launch's settings.
        steps: updates.
        tokens: the byte stream (default: loaded from ``setup.tokens``).
        micro_batches: split each global batch into this many micro-batches and accumulate
            (``loss / m`` each), as the pipeline does; 1 = one big batch.
    """
    tokens = torch.load(setup.tokens) if tokens is None else tokens
    model = build_seeded(setup).train()
    opt = make_optimizer(model, setup.lr, setup.weight_decay)
    losses = []
    for step in range(steps):
        starts = global_batch_starts(step, setup.global_batch, len(tokens), setup.seq_len, setup.seed)
        total = 0.0
        for part in starts.chunk(micro_batches):
            x, y = windows(tokens, part, setup.seq_len)
            loss = model(x, targets=y).loss / micro_batches
            loss.backward()
            total += float(loss.detach())
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
    return losses


# ---------------------------------------------------------------------------------------------
# process group


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun described in the environment; ``(rank, world, device)``.

    gloo on CPU, nccl on CUDA (one GPU per local rank).
    """
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


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


# ---------------------------------------------------------------------------------------------
# the hand-written all-reduce


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


# ---------------------------------------------------------------------------------------------
# the worker


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


def worker(setup_path: str | Path, out_dir: str | Path) -> None:
    """The torchrun entry of every rank: run the setup's jobs, write ``rank<r>.json``."""
    torch.set_num_threads(1)
    setup = DistSetup.load(setup_path)
    tokens = torch.load(setup.tokens)  # before joining the group: a bad input fails fast
    rank, world, device = init_distributed()
    results: dict[str, Any] = {"rank": rank, "world": world, "backend": dist.get_backend(),
                               "jobs": {}}
    try:
        for job in setup.jobs:
            if job.mode == "pipeline":
                from nlpcurriculum.training.pipeline_parallel import run_pipeline

                results["jobs"][job.name] = run_pipeline(job, setup, tokens, rank, world, device)
            else:
                results["jobs"][job.name] = run_data_parallel(job, setup, tokens, rank, world, device)
        out = Path(out_dir) / f"rank{rank}.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results))
        os.replace(tmp, out)
    finally:
        dist.destroy_process_group()


def launch(setup: DistSetup, work_dir: str | Path, nproc: int = 2, timeout: float = 600.0,
           while_waiting: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
    """Run ``setup`` under torchrun with ``nproc`` processes; return each rank's results.

    The launcher runs in its own process group, so a timeout (or an error in
    ``while_waiting``) kills every worker it started.

    Args:
        while_waiting: called in this process after the workers start (e.g. the single-process
            reference run, which then overlaps their start-up).

    Raises:
        RuntimeError: torchrun failed (its output tail is in the message) or timed out.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    setup_path = setup.save(work_dir / "setup.json")
    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(nproc), "-m", "nlpcurriculum.training.distributed",
           str(setup_path), str(work_dir)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    t0 = time.monotonic()
    try:
        if while_waiting is not None:
            while_waiting()
        output, _ = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"torchrun timed out after {timeout:.0f} s") from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed (exit {proc.returncode}):\n{output[-3000:]}")
    return [json.loads((work_dir / f"rank{r}.json").read_text()) for r in range(nproc)]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: torchrun ... -m nlpcurriculum.training.distributed SETUP.json OUT_DIR")
    worker(sys.argv[1], sys.argv[2])
