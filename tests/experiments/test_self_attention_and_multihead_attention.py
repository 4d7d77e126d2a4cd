"""The attention experiment on a tiny model and a tiny corpus: items, structural findings, errors."""

import copy
from dataclasses import replace

import pytest
import torch

from nlpcurriculum.experiments.self_attention_and_multihead_attention import (
    ITEMS,
    AttentionConfig,
    Inputs,
    Outputs,
    byte_label,
    last_query_entropy,
    multi_head_item,
    pick_sample,
    replication_findings,
    run,
    single_token_item,
    torch_multihead_parity,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.nn.attention import MultiHeadAttention
from nlpcurriculum.training.trainer import TrainerConfig, TrainResult

TEXTS = ["The quick brown fox jumps over the lazy dog. " * 20,
         "Pack my box with five dozen liquor jugs. " * 20]


def _tiny() -> AttentionConfig:
    return AttentionConfig(
        model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=16),
        train=TrainerConfig(lr=3e-3, max_steps=4, batch_size=4, warmup_steps=1, eval_every=2,
                            eval_batches=1, progress=False),
        seq_len=16, sample_chars=12, stat_windows=4,
    )


def test_run_returns_the_three_items_with_structural_findings_passing():
    built = Outputs()
    results = run(_tiny(), Inputs(TEXTS[:1], TEXTS[1:]), built)
    model = built.model
    assert [r.item for r in results] == list(ITEMS)
    by_metric = {f.metric: f for r in results for f in r.findings}
    # what holds whatever the training: exact parity and the causal property
    for metric in ("max_abs_diff_vs_torch_sdpa", "weight_sum_error", "max_abs_diff_vs_model_weights",
                   "max_abs_diff_vs_nn_multihead", "max_abs_past_logit_change_masked",
                   "max_abs_past_logit_change_masked_by_hand", "max_future_gradient_masked",
                   "max_abs_past_logit_change_unmasked"):
        assert by_metric[metric].passed, by_metric[metric]
    assert by_metric["max_abs_past_logit_change_masked"].value == 0.0
    single, multi, causal = results
    selective = single.findings[-1]  # the item's finding: trained vs untrained, over the 4 windows
    assert selective.kind == "finding" and selective.metric == "selectivity_gain" and selective.n == 4
    assert selective.value == pytest.approx(single.metrics["last_query_entropy.untrained"]
                                            - single.metrics["last_query_entropy.trained"])
    assert "single_token.png" in single.figures and "sum of weights" in single.texts["single_token.txt"]
    assert {"heads.png", "head_divergence.png", "loss.png"} <= set(multi.figures)
    diverse = multi.findings[0]  # trained vs the randomly initialised model, over the 4 windows
    assert diverse.metric == "head_js_gain_over_init" and diverse.n == 4 and diverse.kind == "finding"
    assert not diverse.passed  # 4 updates do not make the heads diverge by 0.05 nats
    assert causal.metrics["perturb_from"] == 8
    assert not model.training


def test_replication_seeds_add_one_finding_per_item_over_training_runs():
    results = run(replace(_tiny(), replication_seeds=(1, 2)), Inputs(TEXTS[:1], TEXTS[1:]))
    single, multi, _ = results
    selective, diverse = single.findings[-1], multi.findings[-1]
    assert (selective.metric, selective.n) == ("seeds.selectivity_gain", 3)
    assert (diverse.metric, diverse.n) == ("seeds.head_js_gain_over_init", 3)
    assert not diverse.passed  # 4 updates per run: no run's heads diverge by 0.05 nats


def test_replication_findings_pass_a_consistent_gain_and_fail_one_lucky_run():
    cfg = replace(_tiny(), replication_seeds=(1, 2))

    def runs(gains):
        return [{"entropy.untrained": 0.9, "entropy.trained": 0.9 - g,
                 "head_js.untrained": 0.001, "head_js.trained": 0.001 + g} for g in gains]

    assert all(f.passed for f in replication_findings(runs([0.3, 0.32, 0.29]), cfg))
    # one run with a large gain and two with none: the mean clears 0.05, not by two SEs
    assert not any(f.passed for f in replication_findings(runs([0.6, 0.0, 0.0]), cfg))


def test_bad_replication_seed_fails_clearly():
    with pytest.raises(ValueError, match="must not repeat seed=0"):
        replace(_tiny(), replication_seeds=(0, 1))


def test_a_zero_query_attends_uniformly_and_a_sharp_one_is_found_selective():
    torch.manual_seed(0)
    cfg = MiniFormerConfig(vocab_size=256, d_model=16, n_layers=1, n_heads=2, max_seq_len=16)
    uniform, sharp = build_model(cfg).eval(), build_model(cfg).eval()
    with torch.no_grad():
        uniform.blocks[0].attn.qkv.weight[:16].zero_()  # the query rows: every score 0
        if uniform.blocks[0].attn.qkv.bias is not None:
            uniform.blocks[0].attn.qkv.bias[:16].zero_()
        sharp.blocks[0].attn.qkv.weight[:32] *= 50.0  # query and key rows: large scores, a peaked softmax
    windows = torch.randint(0, 256, (6, 10))
    assert last_query_entropy(uniform, windows, 0, 0) == pytest.approx([1.0] * 6)
    sample = windows[0]
    found = single_token_item(sharp, sample, 0, 0, 1e-5, control=uniform, windows=windows).findings[-1]
    assert found.metric == "selectivity_gain" and found.n == 6 and found.passed
    tie = single_token_item(uniform, sample, 0, 0, 1e-5, control=uniform, windows=windows).findings[-1]
    assert tie.value == 0.0 and not tie.passed


def test_head_diversity_passes_for_diverse_heads_and_fails_against_itself():
    """The head-diversity finding against its control: heads wired to attend differently pass;
    the initialised model compared with itself (a tie) fails."""
    cfg = _tiny()
    torch.manual_seed(0)
    init = build_model(cfg.model).eval()
    windows = torch.randint(0, 256, (6, 16), generator=torch.Generator().manual_seed(1))
    sample = windows[0, :12]
    result = TrainResult(history=[{"step": 1, "loss": 5.0, "val_loss": 5.0}], final_val_loss=5.0,
                         steps=1, tokens_seen=64)
    tie = multi_head_item(init, init, windows, sample, result, cfg).findings[0]
    assert tie.metric == "head_js_gain_over_init" and tie.value == 0.0 and not tie.passed
    sharp = copy.deepcopy(init)
    with torch.no_grad():  # larger random Q/K: each head's rows turn sharp along its own projection
        sharp.blocks[0].attn.qkv.weight.mul_(40.0)
    diverse = multi_head_item(sharp, init, windows, sample, result, cfg).findings[0]
    assert diverse.passed and diverse.value > cfg.min_head_js


def test_torch_multihead_parity_is_at_float_rounding():
    torch.manual_seed(0)
    attn = MultiHeadAttention(12, 3).eval()
    out_diff, w_diff = torch_multihead_parity(attn, torch.randn(2, 5, 12))
    assert out_diff < 1e-6 and w_diff < 1e-6


def test_pick_sample_prefers_a_readable_line():
    sample = pick_sample(["\x01\x02 junk\nshort\nA readable line of text here\n"], 10)
    assert bytes(sample.tolist()).decode() == "A readable"
    assert byte_label(32) == "␣" and byte_label(10) == "\\n" and byte_label(65) == "A"
    with pytest.raises(ValueError, match="fewer than sample_chars"):
        pick_sample(["abc"], 10)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(seq_len=64), "seq_len=64 must be in"),
        (dict(demo_head=2), "demo_head=2"),
        (dict(sample_chars=20), "sample_chars=20"),
        (dict(model=MiniFormerConfig(vocab_size=100, d_model=16, n_heads=2, max_seq_len=16)),
         "vocab_size must be 256"),
    ],
)
def test_bad_config_fails_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_tiny(), **change)
