"""The "Distributed Training" experiment: its config checks, and one tiny torchrun launch
(by-hand all-reduce, DDP, FSDP2, GPipe) checked against the single-process run. The library's
own tests are in ``tests/training/distributed/``."""

import math
from dataclasses import replace

import pytest

from nlpcurriculum.experiments.distributed_training import (
    ITEMS,
    DistributedConfig,
    Inputs,
    Outputs,
    run,
    unsynced_losses,
)
from nlpcurriculum.experiments.harness import byte_tokens
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.training.distributed import DistSetup, reference_losses

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def test_config_errors_name_the_key():
    cfg = _tiny()
    with pytest.raises(ValueError, match="global_batch=6 must be divisible by nproc=4"):
        replace(cfg, global_batch=6, nproc=4)
    with pytest.raises(ValueError, match="micro_batches"):
        replace(cfg, micro_batches=[3])
    with pytest.raises(ValueError, match="seq_len=64 must be in"):
        replace(cfg, seq_len=64)


def _tiny() -> DistributedConfig:
    return DistributedConfig(
        model=MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=16), seq_len=16,
        global_batch=4, steps=3, pipeline_steps=2, micro_batches=[1, 2], profile_steps=2,
        ddp_buckets_mb=[0.001, 25.0], profile_rounds=2, timeout_s=150)


def test_the_unsynced_control_is_the_reference_on_one_rank_and_drifts_on_two():
    cfg = _tiny()
    tokens = byte_tokens(TEXT)
    setup = DistSetup(model=dict(cfg.model.__dict__), tokens="", seq_len=cfg.seq_len,
                      global_batch=cfg.global_batch, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ref = reference_losses(setup, 4, tokens)
    # with one rank its shard is the whole batch: the control is the reference itself
    assert unsynced_losses(setup, 4, tokens, world=1) == pytest.approx(ref, abs=1e-6)
    alone = unsynced_losses(setup, 4, tokens, world=2)
    assert alone[0] == pytest.approx(ref[0], abs=1e-6)  # the same start, before any update
    assert max(abs(a - b) for a, b in zip(alone, ref)) > 100 * cfg.parity_tol


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
    assert [f.kind for f in dp.findings] == ["invariant"] * 3 + ["finding"]
    assert dp.findings[-1].metric == "unsynced.max_abs_loss_diff"
    # the shards differ, so the ranks' local losses differ; the global loss is their mean
    local = [r["jobs"]["ddp"]["losses"][0] for r in ranks]
    assert local[0] != local[1]
    assert math.isclose(sum(local) / 2, ranks[0]["jobs"]["ddp"]["global_losses"][0], rel_tol=1e-6)
    assert pipe.metrics["max_abs_loss_diff"] < 1e-5
    assert "m2.bubble_theory" in pipe.metrics
    assert comm.metrics["manual_per_param.allreduce_calls"] > comm.metrics["manual_flat.allreduce_calls"] == 1
    # clock readings are timings (never metrics); the timing findings are timed, over the rounds
    assert {"m1.idle_fraction", "m2.idle_fraction", "idle_shrink"} <= set(pipe.timings)
    assert {"ddp_b25.exposed_comm_share", "bucket_speedup", "manual_flat.comm_ms"} <= set(comm.timings)
    assert not set(pipe.metrics) & set(pipe.timings) and "bucket_speedup" not in comm.metrics
    timed = {f.metric: f for r in results for f in r.findings if f.timed}
    assert set(timed) == {"idle_shrink", "bucket_speedup"}
    assert timed["idle_shrink"].n == timed["bucket_speedup"].n == 2
    assert {"loss_parity.png"} <= set(dp.figures) and "bubble.png" in pipe.figures

