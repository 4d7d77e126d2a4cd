"""The LoRA / PEFT experiment at toy sizes: the items, the invariants, the honest counts, and
findings that fail where they must (an untrained LoRA ties the head-only probe)."""

import pytest
import torch

from nlpcurriculum.experiments.low_rank_adaptation_and_peft import (
    ITEMS,
    Inputs,
    LoRAExperimentConfig,
    build_arm,
    rank_item,
    run,
)
from nlpcurriculum.models.miniformer import build_model, llama_like


def _base():
    torch.manual_seed(0)
    return build_model(llama_like("tiny", vocab_size=128, n_layers=2, max_seq_len=64)).eval()


def _encode(text):
    return [b % 128 for b in text.encode()][:40]


def test_run_at_toy_sizes():
    cfg = LoRAExperimentConfig(n_train=40, n_test=30, max_tokens=24, ranks=[1, 8], prefix_len=4,
                               bottleneck=4, steps=3, warmup_steps=1, batch_size=4, seeds=[0, 1],
                               parity_rank=2, workers=1)
    results = run(cfg, Inputs(_base(), _encode))
    assert [r.item for r in results] == list(ITEMS)
    for r in results:
        assert all(f.passed for f in r.findings if f.kind == "invariant"), r.findings
        assert any(f.kind == "finding" for f in r.findings)
    lora, sweep, methods = results
    assert lora.metrics["peft_max_abs_diff"] <= 1e-6
    assert lora.metrics["adapter_bytes"] < lora.metrics["classifier_bytes"] / 5
    # honest counts: r (in + out) per adapted qkv + the classification head (64 -> 5)
    assert sweep.metrics["r8_trainable"] == 2 * 8 * (64 + 192) + 64 * 5 + 5
    assert sweep.metrics["r1_trainable"] < sweep.metrics["r8_trainable"]
    assert "accuracy_vs_params.png" in sweep.figures
    assert methods.metrics["prefix_peft_max_abs_diff"] <= 1e-5
    assert methods.metrics["prefix_unshifted_vs_peft_max_abs_diff"] > 1e-4
    assert set(methods.timings) and not set(methods.timings) & set(methods.metrics)


def test_arms_train_exactly_their_parameters():
    cfg = LoRAExperimentConfig(ranks=[4], main_rank=4)
    base = _base()
    for arm, marker in (("lora_r4", "lora_"), ("prefix", "prefix_"), ("adapter", "adapter.")):
        model = build_arm(arm, base, 5, cfg, seed=0)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        assert names and all(marker in n or n.startswith("lm_head.") for n in names)
    head = build_arm("head", base, 5, cfg, seed=0)
    assert {n for n, p in head.named_parameters() if p.requires_grad} == {"lm_head.weight", "lm_head.bias"}
    full = build_arm("full", base, 5, cfg, seed=0)
    assert all(p.requires_grad for p in full.parameters())


def test_gain_share_finding_fails_for_a_lora_that_learns_nothing():
    """The null model: LoRA accuracy equal to the probe's (an adapter that never trains)."""
    cfg = LoRAExperimentConfig(ranks=[8], seeds=[0, 1, 2])
    runs = {"head": [{"accuracy": a, "trainable": 5.0} for a in (0.5, 0.52, 0.49)],
            "full": [{"accuracy": a, "trainable": 1000.0} for a in (0.9, 0.91, 0.92)],
            "lora_r8": [{"accuracy": a, "trainable": 5.0 + 0} for a in (0.5, 0.52, 0.49)],
            "prefix": [{"accuracy": 0.5, "trainable": 9.0}] * 3,
            "adapter": [{"accuracy": 0.5, "trainable": 9.0}] * 3}
    share = next(f for f in rank_item(cfg, runs, 1000).findings if f.metric == "gain_share_excess")
    assert not share.passed
    runs["lora_r8"] = [{"accuracy": a, "trainable": 5.0} for a in (0.95, 0.96, 0.97)]
    share = next(f for f in rank_item(cfg, runs, 1000).findings if f.metric == "gain_share_excess")
    assert share.passed


@pytest.mark.parametrize("bad, match", [(dict(main_rank=3), "main_rank"),
                                        (dict(seeds=[1]), "two distinct seeds")])
def test_config_refuses_what_the_findings_cannot_use(bad, match):
    with pytest.raises(ValueError, match=match):
        LoRAExperimentConfig(**bad)
