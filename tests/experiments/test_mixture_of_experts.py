"""The MoE experiment: helpers on hand cases, a tiny end-to-end run, config errors."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.mixture_of_experts import (
    BYTE_KINDS,
    ITEMS,
    Inputs,
    MoEExperimentConfig,
    best_layer_mi,
    byte_kinds,
    equal_quality,
    run,
    untrained_routing,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.nn.moe import MoEConfig
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the WORST of times: 1775, naïve café. " * 30]


def test_byte_kinds():
    ids = torch.tensor(list("aZ5 ,\n".encode()) + list("é".encode()))
    assert [BYTE_KINDS[k] for k in byte_kinds(ids)] == [
        "lower", "upper", "digit", "space", "punct", "space", "non-ascii", "non-ascii"]


def test_equal_quality_interpolates_and_flags_bounds():
    assert equal_quality([1, 2, 3], [2.0, 1.8, 1.7], 1.75) == (1.5, True)  # the worked example
    assert equal_quality([1, 2, 3], [2.0, 1.8, 1.7], 1.6) == (2.0, False)  # better than all
    assert equal_quality([1, 2, 3], [2.0, 1.8, 1.7], 2.1) == (0.0, False)  # worse than all


def test_an_untrained_router_already_routes_by_byte_kind():
    """Why the control is needed: random router weights on random embeddings already send
    different bytes to different experts, so the mutual information is above zero untrained; a
    router that ignored its input (every token to one expert) would have exactly zero."""
    cfg = _tiny()
    x = torch.tensor([list(TEXT[0].encode()[:64])] * 2)  # (2, 64) -> too long: crop to the window
    x = x[:, : cfg.seq_len]
    untrained = untrained_routing(cfg.model, seed=0, batches=[x])
    assert set(untrained) == {0, 1}  # both blocks are MoE layers
    assert best_layer_mi(untrained) > 0.0
    collapsed = {0: {**untrained[0], "expert": torch.zeros_like(untrained[0]["expert"])}}
    assert best_layer_mi(collapsed) == 0.0
    # seeded: the same seed routes the same way
    again = untrained_routing(cfg.model, seed=0, batches=[x])
    assert torch.equal(again[1]["expert"], untrained[1]["expert"])


def _tiny() -> MoEExperimentConfig:
    return MoEExperimentConfig(
        model=MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=16, d_ff=16,
                               moe=MoEConfig(experts=4, top_k=1, capacity_factor=1.25)),
        train=TrainerConfig(lr=3e-3, max_steps=3, batch_size=4, warmup_steps=1, eval_every=3,
                            eval_batches=1, progress=False),
        seq_len=16, variants=[[2, 1]], dense_d_ff=[8], capacity_factors=[1.0], val_batches=2,
        timing_repeats=1,
    )


def test_run_returns_three_items_with_counted_flops_matching_the_hand_count():
    results = run(_tiny(), Inputs(TEXT, TEXT))
    assert [r.item for r in results] == list(ITEMS)
    routing, utilization, swaps = results
    for key in ("main.val_loss", "no_aux.val_loss", "E2_top1.val_loss", "dense_active.val_loss",
                "main.layer0.kind_expert_mi_bits", "capacity.none.dropped_fraction"):
        assert key in routing.metrics, key
    assert routing.metrics["capacity.none.dropped_fraction"] == 0.0
    assert "main.layer1.expert3.share" in utilization.metrics
    assert {"utilization.png", "by_kind.png"} <= set(utilization.figures)
    # dense sweep: 8, 16 (active: k*H) and 64 (total: E*H)
    for key in ("dense_8.flops_per_token", "dense_64.val_loss",
                "equal_quality.flops_ratio_dense_over_moe"):
        assert key in swaps.metrics, key
    # clock readings are timings, never metrics; the dispatch finding is a timed one
    for key in ("dense_16.ms_per_step", "wall_ratio_moe_over_dense_active",
                "dispatch_overhead_wall_over_flops"):
        assert key in swaps.timings and key not in swaps.metrics, key
    dispatch = next(f for f in swaps.findings if f.metric == "dispatch_overhead_wall_over_flops")
    assert dispatch.timed and dispatch.n == 1  # timing_repeats=1: one round, cannot pass
    assert not dispatch.passed
    # the paired comparisons run over seed + extra_seeds (3 seeds)
    for f in routing.findings + utilization.findings:
        if f.n is not None:
            assert f.n == 3, f
    assert {"seed0.untrained.best_layer_mi_bits", "seed2.main.best_layer_mi_bits"} <= set(routing.metrics)
    assert "seed1.no_aux.min_entropy" in utilization.metrics
    # the equal-quality FLOPs ratio is measured on every seed, the dense sweep retrained on each
    equal = next(f for f in swaps.findings if f.metric == "equal_quality.flops_ratio_dense_over_moe")
    assert equal.n == 3
    assert {"seed2.dense_64.val_loss", "seed0.equal_quality.flops_ratio_dense_over_moe",
            "seed1.equal_quality.flops_ratio_dense_over_moe"} <= set(swaps.metrics)
    per_seed = [swaps.metrics[f"seed{s}.equal_quality.flops_ratio_dense_over_moe"] for s in range(3)]
    assert swaps.metrics["equal_quality.flops_ratio_dense_over_moe"] == pytest.approx(np.mean(per_seed))
    assert swaps.metrics["seed1.dense_8.val_loss"] != swaps.metrics["dense_8.val_loss"]
    flop_check = next(f for f in swaps.findings if f.metric == "flop_count_max_rel_diff")
    assert flop_check.passed, flop_check
    assert swaps.metrics["dense_16.active_mlp_params"] == swaps.metrics["moe.active_mlp_params"]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model=MiniFormerConfig()), "moe.experts must be >= 2"),
        (dict(model=MiniFormerConfig(moe=MoEConfig(experts=1))), "moe.experts must be >= 2"),
        (dict(model=MiniFormerConfig(vocab_size=100, moe=MoEConfig(experts=2))), "vocab_size must be 256"),
        (dict(variants=[[2, 3]]), "variants entries"),
        (dict(dense_d_ff=[0]), "dense_d_ff"),
        (dict(capacity_factors=[0.0]), "capacity_factors"),
        (dict(seq_len=32), "seq_len=32 must be in"),
        (dict(val_batches=0), "val_batches must be >= 1"),
        (dict(extra_seeds=[0, 1]), "extra_seeds"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)
