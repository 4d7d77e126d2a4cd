"""The GQA experiment: a tiny end-to-end run and config errors."""

from dataclasses import replace

import pytest

from nlpcurriculum.experiments.grouped_query_attention import ITEMS, GQAConfig, Inputs, run
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def _tiny() -> GQAConfig:
    return GQAConfig(
        model=MiniFormerConfig(vocab_size=256, d_model=16, n_layers=1, n_heads=4, max_seq_len=16,
                               position="rope"),
        train=TrainerConfig(max_steps=4, batch_size=2, warmup_steps=1, eval_every=2, eval_batches=1,
                            progress=False),
        seq_len=16, uptrain_fraction=0.5, groups=[2], val_batches=1, batch=3, prompt_len=5,
        new_tokens=4, repeats=1, check_rows=2, workers=1,
    )


def test_run_covers_every_group_count_with_exact_checks():
    conversion, speed, ablation = run(_tiny(), Inputs(TEXT, TEXT))
    assert [conversion.item, speed.item, ablation.item] == list(ITEMS)
    assert conversion.metrics["identity_max_abs_diff"] < 1e-5
    assert conversion.metrics["identical_heads_max_abs_diff"] < 1e-5
    assert conversion.metrics["uptrain_steps"] == 2
    # item 1 over the seeds, paired: recovery, the gap to the uptrained MHA, the scratch control
    cfg = _tiny()
    for f in conversion.findings[2:]:
        assert f.n == len(cfg.seeds) and f.se is not None and not f.timed, f
    assert [f.metric for f in conversion.findings[2:]] == ["uptraining_recovery", "uptrained_gap_vs_mha",
                                                          "gain_vs_scratch"]
    for seed in cfg.seeds:
        assert f"seed{seed}.gqa_scratch_val_loss" in conversion.metrics
    assert speed.metrics["cached_match_rate"] == 1.0
    assert speed.metrics["kv_bytes_ratio"] == 4.0
    # groups 1 (n_heads/4), 2 (asked) and 4 (MHA), KV bytes exactly the formula
    assert {k.split(".")[0] for k in ablation.metrics if k.startswith("kv")} >= {"kv1", "kv2", "kv4"}
    assert ablation.metrics["kv_bytes_formula_error"] == 0
    # the speed-up is MHA's decode time over GQA's (n_heads / 4 = 1 K/V head) round by round, as
    # item 3 times it; clock readings are timings, never metrics, and their findings are timed
    assert speed.timings["speedup"] == pytest.approx(ablation.timings["latency_ratio_mha_over_fewest"])
    assert "speedup" not in speed.metrics and "kv4.ms_per_step" in ablation.timings
    timed = [f for r in (speed, ablation) for f in r.findings if f.metric in
             ("speedup", "latency_ratio_mha_over_fewest")]
    assert len(timed) == 2 and all(f.timed and f.n == 1 and not f.passed for f in timed)


def test_config_errors_name_the_key():
    ok = _tiny()
    with pytest.raises(ValueError, match="n_kv_heads"):
        replace(ok, model=MiniFormerConfig(vocab_size=256, n_heads=4, n_kv_heads=2))
    with pytest.raises(ValueError, match="groups"):
        replace(ok, groups=[3])
    with pytest.raises(ValueError, match="vocab_size"):
        replace(ok, model=MiniFormerConfig(vocab_size=100, d_model=256, n_heads=8))
    with pytest.raises(ValueError, match="new_tokens"):
        replace(ok, new_tokens=1)


def test_seeds_must_be_distinct():
    with pytest.raises(ValueError, match="seeds"):
        replace(_tiny(), seeds=[1, 1])


def test_seeds_side_by_side_equal_one_after_the_other():
    from nlpcurriculum.experiments.grouped_query_attention import _other_seeds
    from nlpcurriculum.experiments.harness import byte_tokens
    from nlpcurriculum.training.data import TokenBatcher

    cfg = _tiny()
    train, val_tokens = byte_tokens(TEXT), byte_tokens(TEXT)
    val = TokenBatcher(val_tokens, cfg.seq_len, mode="sequential")
    serial = _other_seeds(cfg, train, val_tokens, val)
    parallel = _other_seeds(replace(cfg, workers=2), train, val_tokens, val)
    assert [a.seed for a in serial] == cfg.seeds[1:]
    assert serial == parallel  # seeded, one thread: the same losses in a worker process
