"""The torchrun side of a launch: every rank's entry point, and the launcher that starts them.

Launch (one machine, 2 processes; gloo on CPU, nccl when CUDA is available)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 \\
        -m nlpcurriculum.training.distributed setup.json OUT_DIR

Multi-node (run the same command on every node; ``$HEAD`` is node 0's address)::

    torchrun --nnodes 2 --nproc-per-node 8 --node-rank $NODE_RANK \\
        --rdzv-backend c10d --rdzv-endpoint $HEAD:29500 --rdzv-id job42 \\
        -m nlpcurriculum.training.distributed setup.json OUT_DIR

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` / ``MASTER_PORT`` for
every process; :func:`init_distributed` reads them (``init_process_group`` with the ``env://``
method) and pins each process to ``cuda:LOCAL_RANK`` on GPUs. Nothing else changes between one
node and many: the global batch is split by global rank.

Every rank runs the setup's jobs in order (:func:`worker`) and writes ``rank<r>.json`` (its local
losses, the global losses and timings per job) to the output folder; :func:`launch` runs torchrun
as a subprocess and gathers them.

Left out: elastic restarts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from nlpcurriculum.training.distributed.common import DistSetup
from nlpcurriculum.training.distributed.data_parallel import run_data_parallel
from nlpcurriculum.training.distributed.pipeline_parallel import run_pipeline

__all__ = ["init_distributed", "launch", "worker"]


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
    src = str(Path(__file__).resolve().parents[3])  # .../src
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
