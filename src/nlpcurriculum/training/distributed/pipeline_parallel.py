"""Pipeline parallelism: the mini-former's blocks split over ranks, a GPipe schedule.

GPipe (Huang et al. 2019, arXiv:1811.06965): stage ``s`` of ``p`` holds a contiguous slice of
the layers. A global batch is cut into ``m`` micro-batches; every stage first runs *all* ``m``
forwards (receiving activations ``(b, T, C)`` from the previous stage, sending its output to the
next), then *all* ``m`` backwards in reverse order (receiving the gradient of its output,
sending the gradient of its input back). Gradients add up over the micro-batches (each loss is
divided by ``m``), and one optimizer step follows: the same update as one big batch.

While the first micro-batch travels down the pipe the later stages wait, and while the last
gradient travels back the earlier ones wait: with equal stage times the idle ("bubble")
fraction of each stage is ``(p - 1) / (m + p - 1)`` (p=2: 50% at m=1, 20% at m=4, 11% at m=8).
:func:`run_pipeline` measures it as the time each rank spends blocked in ``recv`` / waiting
for sends, over the step time.

The split here is two stages (``world`` ranks, ``n_layers / world`` blocks each): stage 0 owns
the token (and position) embedding and the first blocks; the last stage the remaining blocks,
the final norm, the head and the loss. A tied embedding (``tok_emb`` = ``lm_head``) lives on
both ends; each end computes its part of the gradient and they are summed with one all-reduce
between the first and last stage before the step (Megatron-LM's approach, Shoeybi et al. 2019,
arXiv:1909.08053). Every rank builds the whole model from the seed (so the split is exact) and
only uses, and updates, its slice: parameters outside it get no gradient, and AdamW skips them.

Left out: 1F1B / interleaved schedules (PipeDream), activation recomputation, more than one
stage per rank, data parallelism across pipeline replicas.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import MiniFormer
from nlpcurriculum.training.distributed.common import (
    DistJob,
    DistSetup,
    build_seeded,
    global_batch_starts,
    make_optimizer,
    windows,
)

__all__ = ["bubble_fraction", "run_pipeline", "stage_forward", "stage_layers"]


def bubble_fraction(p: int, m: int) -> float:
    """GPipe's idle fraction per stage, ``(p - 1) / (m + p - 1)``, for ``p`` stages and ``m``
    micro-batches (equal stage times, communication free)."""
    if p < 1 or m < 1:
        raise ValueError(f"p and m must be >= 1, got p={p}, m={m}")
    return (p - 1) / (m + p - 1)


def stage_layers(n_layers: int, n_stages: int, stage: int) -> range:
    """The block indices of ``stage``: contiguous, as equal as possible."""
    if not 0 <= stage < n_stages or n_stages > n_layers:
        raise ValueError(f"cannot put {n_layers} blocks on {n_stages} stages (stage {stage})")
    bounds = [round(i * n_layers / n_stages) for i in range(n_stages + 1)]
    return range(bounds[stage], bounds[stage + 1])


def stage_forward(model: MiniFormer, stage: int, n_stages: int, inp: Tensor,
                  targets: Tensor | None = None) -> Tensor:
    """Run stage ``stage``'s slice of ``model``.

    Args:
        inp: token ids ``(b, T)`` on stage 0, else the previous stage's activations ``(b, T, C)``.
        targets: ``(b, T)`` next-token ids, needed on the last stage.

    Returns:
        The activations ``(b, T, C)`` to send on, or the mean loss (a scalar) on the last stage.
    """
    T = inp.shape[1]
    positions = torch.arange(T, device=inp.device)  # (T,)
    if stage == 0:
        model.position.ensure_length(T)
        x = model.drop(model.position.embed(model.tok_emb(inp), positions))  # (b, T, C)
    else:
        x = inp
    for i in stage_layers(len(model.blocks), n_stages, stage):
        x, _ = model.blocks[i](x, position=model.position, positions=positions, layer_idx=i)
    if stage < n_stages - 1:
        return x
    logits = model.lm_head(model.norm_f(x))  # (b, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1))


def _stage_params(model: MiniFormer, stage: int, n_stages: int) -> list[nn.Parameter]:
    own: list[nn.Module] = [model.blocks[i] for i in stage_layers(len(model.blocks), n_stages, stage)]
    if stage == 0:
        own += [model.tok_emb, model.position]
    if stage == n_stages - 1:
        own += [model.norm_f, model.lm_head]
    seen, params = set(), []
    for module in own:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def run_pipeline(job: DistJob, setup: DistSetup, tokens: Tensor, rank: int, world: int,
                 device: torch.device) -> dict[str, Any]:
    """Train with a ``world``-stage GPipe pipeline; this rank is stage ``rank``.

    Returns:
        ``losses`` (the global-batch loss, known on the last stage; ``nan`` elsewhere),
        ``step_s`` per step, ``pipeline_s`` (the forward/backward schedule alone, without the
        tied-gradient all-reduce and the optimizer step) and ``wait_s`` (time blocked on
        communication) per step, ``idle_fraction`` = wait / pipeline time over the steps after
        the first (a warm-up).
    """
    m, stage, last = job.micro_batches, rank, world - 1
    if setup.global_batch % m:
        raise ValueError(f"global_batch={setup.global_batch} is not divisible by micro_batches={m}")
    model = build_seeded(setup).to(device).train()
    mine = _stage_params(model, stage, world)
    for p in model.parameters():  # only this stage's slice trains here
        p.requires_grad_(any(p is q for q in mine))
    tied = model.config.tie_weights and world > 1
    opt = make_optimizer(model, setup.lr, setup.weight_decay)
    C, T, b = model.config.d_model, setup.seq_len, setup.global_batch // m
    losses, step_times, pipe_times, wait_times = [], [], [], []
    for step in range(job.steps):
        starts = global_batch_starts(step, setup.global_batch, len(tokens), T, setup.seed)
        micro = [tuple(t.to(device) for t in windows(tokens, part, T)) for part in starts.chunk(m)]
        dist.barrier()
        wait, sends = 0.0, []
        t_step = time.perf_counter()
        inputs, outputs = [], []
        for x, y in micro:  # phase 1: all forwards
            if stage == 0:
                inp = x
            else:
                inp = torch.empty(b, T, C, device=device)
                t0 = time.perf_counter()
                dist.recv(inp, src=stage - 1)
                wait += time.perf_counter() - t0
                inp.requires_grad_(True)
            out = stage_forward(model, stage, world, inp, y)
            if stage < last:
                sends.append(dist.isend(out.detach().contiguous(), dst=stage + 1))
            inputs.append(inp)
            outputs.append(out)
        total = 0.0
        for i in reversed(range(m)):  # phase 2: all backwards, last micro-batch first
            if stage == last:
                total += float(outputs[i].detach()) / m
                (outputs[i] / m).backward()
            else:
                grad = torch.empty(b, T, C, device=device)
                t0 = time.perf_counter()
                dist.recv(grad, src=stage + 1)
                wait += time.perf_counter() - t0
                outputs[i].backward(grad)
            if stage > 0:
                sends.append(dist.isend(inputs[i].grad.contiguous(), dst=stage - 1))
        t0 = time.perf_counter()
        for s in sends:
            s.wait()
        wait += time.perf_counter() - t0
        pipe_times.append(time.perf_counter() - t_step)  # the schedule itself, without the update
        if tied:  # the embedding's gradient from stage 0 + the head's from the last stage
            w = model.tok_emb.weight
            if w.grad is None:
                w.grad = torch.zeros_like(w)
            dist.all_reduce(w.grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - t_step)
        wait_times.append(wait)
        losses.append(total if stage == last else float("nan"))
    timed = slice(1, None) if job.steps > 1 else slice(None)
    return {
        "losses": losses, "step_s": step_times, "pipeline_s": pipe_times, "wait_s": wait_times,
        "idle_fraction": sum(wait_times[timed]) / sum(pipe_times[timed]),
        "bubble_theory": bubble_fraction(world, m), "micro_batches": m,
        "stage_blocks": list(stage_layers(len(model.blocks), world, stage)),
    }
