"""What every rank of a distributed run shares: the jobs, the setup file, the data, the reference.

A launch runs several jobs (:class:`DistJob`) described by one :class:`DistSetup`, written to a
JSON file that every rank reads. Every rank draws the *same* global batch of ``G`` windows (a
generator seeded by the step) and keeps its shard ``starts[rank::world]`` (DistributedSampler's
strided split). :func:`reference_losses` is the single-process run at the same global batch that
every mode is compared with.

Dimension legend: G windows per global batch, W world size (ranks), T tokens per window.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.training.trainer import param_groups, seed_everything

__all__ = [
    "DIST_MODES",
    "DistJob",
    "DistSetup",
    "build_seeded",
    "global_batch_starts",
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
        return MiniFormerConfig.from_dict(self.model)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DistSetup":
        return cls(**json.loads(Path(path).read_text()))


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
