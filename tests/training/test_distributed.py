"""Data / pipeline parallel training: sharding, buckets, stage split, and one tiny torchrun launch
(by-hand all-reduce, DDP, FSDP2, GPipe) checked against the single-process run."""

import math
from dataclasses import replace

import pytest
import torch

from nlpcurriculum.experiments.distributed_training import (
    ITEMS,
    DistributedConfig,
    Inputs,
    Outputs,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.distributed import (
    DistJob,
    DistSetup,
    global_batch_starts,
    grad_buckets,
    reference_losses,
    shard_starts,
)
from nlpcurriculum.training.pipeline_parallel import bubble_fraction, stage_forward, stage_layers

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def test_shards_are_disjoint_and_cover_the_global_batch():
    starts = global_batch_starts(3, 8, 1000, 16, seed=0)
    assert torch.equal(starts, global_batch_starts(3, 8, 1000, 16, seed=0))  # same on every rank
    assert not torch.equal(starts, global_batch_starts(4, 8, 1000, 16, seed=0))
    shards = [shard_starts(starts, r, 2) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == sorted(starts.tolist())
    assert torch.equal(shards[1], starts[1::2])
    with pytest.raises(ValueError, match="not divisible by world size 3"):
        shard_starts(starts, 0, 3)


def test_grad_buckets_reverse_order_and_size_cap():
    model = build_model(MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=8))
    params = list(model.parameters())
    per_param = grad_buckets(params, 0)
    assert [b[0] for b in per_param] == list(reversed(params))
    one = grad_buckets(params, 25.0)
    assert len(one) == 1 and len(one[0]) == len(params)
    small = grad_buckets(params, 0.001)  # ~1 KB buckets
    assert 1 < len(small) < len(params) + 1
    assert [p for b in small for p in b] == list(reversed(params))


def test_bubble_formula_and_stage_split():
    assert bubble_fraction(2, 1) == 0.5 and math.isclose(bubble_fraction(2, 4), 0.2)
    assert math.isclose(bubble_fraction(4, 8), 3 / 11)
    assert [list(stage_layers(4, 2, s)) for s in range(2)] == [[0, 1], [2, 3]]
    assert [len(stage_layers(5, 2, s)) for s in range(2)] == [2, 3] or \
        [len(stage_layers(5, 2, s)) for s in range(2)] == [3, 2]
    with pytest.raises(ValueError, match="cannot put 2 blocks on 3 stages"):
        stage_layers(2, 3, 0)


def test_stages_compose_to_the_whole_model():
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(d_model=16, n_layers=4, n_heads=2, max_seq_len=8)).eval()
    x = torch.randint(0, 256, (3, 8))
    y = torch.randint(0, 256, (3, 8))
    acts = stage_forward(model, 0, 2, x)
    assert acts.shape == (3, 8, 16)
    loss = stage_forward(model, 1, 2, acts, y)
    assert torch.allclose(loss, model(x, targets=y).loss, atol=1e-6)


def test_job_and_config_errors_name_the_key():
    with pytest.raises(ValueError, match="mode must be one of"):
        DistJob("x", "tensor", 3)
    with pytest.raises(ValueError, match="compress must be"):
        DistJob("x", "ddp", 3, compress="int8")
    cfg = _tiny()
    with pytest.raises(ValueError, match="global_batch=6 must be divisible by nproc=4"):
        replace(cfg, global_batch=6, nproc=4)
    with pytest.raises(ValueError, match="micro_batches"):
        replace(cfg, micro_batches=[3])
    with pytest.raises(ValueError, match="seq_len=64 must be in"):
        replace(cfg, seq_len=64)


def test_reference_accumulation_matches_one_batch(tmp_path):
    tokens = torch.tensor(list(TEXT[0].encode()))
    torch.save(tokens, tmp_path / "t.pt")
    setup = DistSetup(model=dict(d_model=16, n_layers=2, n_heads=2, max_seq_len=16),
                      tokens=str(tmp_path / "t.pt"), seq_len=16, global_batch=4)
    one = reference_losses(setup, 3)
    four = reference_losses(setup, 3, micro_batches=4)
    assert max(abs(a - b) for a, b in zip(one, four)) < 1e-5
    assert one[-1] < one[0]


def _tiny() -> DistributedConfig:
    return DistributedConfig(
        model=MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=16), seq_len=16,
        global_batch=4, steps=3, pipeline_steps=2, micro_batches=[1, 2], profile_steps=2,
        ddp_buckets_mb=[0.001, 25.0], timeout_s=150)


def test_torchrun_launch_matches_single_process(tmp_path):
    built = Outputs()
    results = run(_tiny(), Inputs(TEXT, tmp_path), built)
    ranks = built.ranks
    assert [r.item for r in results] == list(ITEMS)
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["backend"] == "gloo"
    assert (tmp_path / "rank0.json").exists() and (tmp_path / "rank1.json").exists()
    dp, pipe, comm = results
    # data parallel: every mode on the single-process loss curve
    for mode in ("manual", "ddp", "fsdp"):
        assert dp.metrics[f"{mode}.max_abs_loss_diff"] < 1e-5, mode
    # the shards differ, so the ranks' local losses differ; the global loss is their mean
    local = [r["jobs"]["ddp"]["losses"][0] for r in ranks]
    assert local[0] != local[1]
    assert math.isclose(sum(local) / 2, ranks[0]["jobs"]["ddp"]["global_losses"][0], rel_tol=1e-6)
    assert pipe.metrics["max_abs_loss_diff"] < 1e-5
    assert {"m1.idle_fraction", "m2.idle_fraction", "m2.bubble_theory"} <= set(pipe.metrics)
    assert comm.metrics["manual_per_param.allreduce_calls"] > comm.metrics["manual_flat.allreduce_calls"] == 1
    assert "ddp_b25.exposed_comm_share" in comm.metrics
    assert {"loss_parity.png"} <= set(dp.figures) and "bubble.png" in pipe.figures


def test_launch_failure_is_reported(tmp_path):
    from nlpcurriculum.training.distributed import launch

    setup = DistSetup(model=dict(d_model=16, n_layers=2, n_heads=2, max_seq_len=16),
                      tokens=str(tmp_path / "missing.pt"), seq_len=16, global_batch=4,
                      jobs=[DistJob("x", "manual", 1)])
    with pytest.raises(RuntimeError, match="torchrun failed"):
        launch(setup, tmp_path, nproc=1, timeout=120)
