"""Training the mini-former over several processes with torch.distributed.

- :mod:`.common`: the jobs and the setup file every rank reads (:class:`DistJob`,
  :class:`DistSetup`), the same global batch on every rank and its disjoint shards, the optimizer,
  :func:`reference_losses` (the single-process run every mode must match);
- :mod:`.data_parallel`: data parallel by hand (per-parameter or bucketed ``dist.all_reduce``,
  timed), DDP (``bucket_cap_mb``, fp16 compression hook) and FSDP2 (``fully_shard``);
- :mod:`.pipeline_parallel`: GPipe, the blocks split over ranks;
- :mod:`.worker`: every rank's entry point (``python -m nlpcurriculum.training.distributed
  SETUP.json OUT_DIR`` under torchrun, see :mod:`.worker` for the single- and multi-node
  commands) and :func:`launch`, which runs torchrun as a subprocess and gathers the ranks' results.

gloo on CPU, nccl on CUDA.

Left out: tensor parallelism, ZeRO-1/2 by hand, elastic restarts.
"""

from nlpcurriculum.training.distributed.common import (
    DIST_MODES,
    DistJob,
    DistSetup,
    global_batch_starts,
    make_optimizer,
    reference_losses,
    shard_starts,
    windows,
)
from nlpcurriculum.training.distributed.data_parallel import grad_buckets
from nlpcurriculum.training.distributed.pipeline_parallel import (
    bubble_fraction,
    stage_forward,
    stage_layers,
)
from nlpcurriculum.training.distributed.worker import init_distributed, launch

__all__ = [
    "DIST_MODES",
    "DistJob",
    "DistSetup",
    "bubble_fraction",
    "global_batch_starts",
    "grad_buckets",
    "init_distributed",
    "launch",
    "make_optimizer",
    "reference_losses",
    "shard_starts",
    "stage_forward",
    "stage_layers",
    "windows",
]
