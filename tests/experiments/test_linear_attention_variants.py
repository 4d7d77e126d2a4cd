"""The linear-attention experiment at toy sizes: invariants hold, findings are built from samples,
plain attention is skipped (and marked) where its weights do not fit."""

import pytest
import torch

from nlpcurriculum.experiments.linear_attention_variants import (
    ITEMS,
    MIXERS,
    LinearAttentionConfig,
    MixerEncoder,
    run,
)


def test_run_at_toy_sizes():
    cfg = LinearAttentionConfig(head_dim=8, estimator_length=32, features=[8, 64], draws=2, context=8,
                                d_model=8, steps=2, batch_size=4, seeds=[0, 1], eval_sequences=8,
                                lengths=[256, 1024], memory_budget_gib=1e-5, rounds=2)
    estimator, quality, speed = run(cfg)
    assert [r.item for r in (estimator, quality, speed)] == list(ITEMS)
    assert all(f.passed for f in estimator.findings if f.kind == "invariant")
    assert [f.n for f in quality.findings] == [2, 2]
    # 1e-5 GiB holds 2 x 256^2 floats? no (0.5 MiB): plain attention is marked as not fitting
    assert speed.metrics["plain_fits.T256"] == 0.0
    assert not any(k.startswith("tokens_per_s.plain_softmax") for k in speed.timings)
    assert all(f.timed for f in speed.findings)


@pytest.mark.parametrize("mixer", MIXERS)
def test_every_mixer_encoder_maps_tokens_to_logits_and_learns_from_gradients(mixer):
    model = MixerEncoder(mixer, vocab=6, d_model=8, n_layers=1, n_heads=2, seq_len=10, features=16, k=4)
    x = torch.randint(0, 6, (3, 10))
    logits = model(x)
    assert logits.shape == (3, 10, 6)
    logits.sum().backward()
    assert model.embed.weight.grad.abs().sum() > 0


def test_config_refuses_what_the_findings_cannot_use():
    with pytest.raises(ValueError, match="features"):
        LinearAttentionConfig(features=[64])
    with pytest.raises(ValueError, match="divide"):
        LinearAttentionConfig(d_model=30, n_heads=4)
