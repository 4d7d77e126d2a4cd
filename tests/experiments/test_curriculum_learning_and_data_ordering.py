"""The curriculum experiment at toy sizes: three items, the share invariant holds, every ordering
has its steps to target with an interval, and the config refuses what the findings cannot use."""

import numpy as np
import pytest

from nlpcurriculum.experiments.curriculum_learning_and_data_ordering import (
    DOMAINS,
    ITEMS,
    CurriculumExperimentConfig,
    make_domain,
    run,
)


def test_domains_are_byte_examples_ended_by_zero_and_capped():
    for d in DOMAINS:
        ex = make_domain(d, 20, seed=0, max_len=32)
        assert all(e[-1] == 0 and 2 <= len(e) <= 32 and e.max() < 256 for e in ex)
        assert [e.tolist() for e in make_domain(d, 20, seed=0, max_len=32)] == [e.tolist() for e in ex]


def test_run_gives_three_items_with_steps_to_target_per_ordering():
    cfg = CurriculumExperimentConfig(steps=12, eval_every=4, n_val=20, n_reference=100, d_model=16,
                                     n_layers=1, target_loss=4.5, workers=1, batch_size=8)
    results = run(cfg)
    assert [r.item for r in results] == list(ITEMS)
    mixing = results[1]
    share = next(f for f in mixing.findings if f.metric == "max_share_z")
    assert share.kind == "invariant" and share.passed, share
    conv = results[2]
    names = [k.removeprefix("steps_to_target.") for k in conv.metrics if k.startswith("steps_to_target.")]
    assert len(names) == 10 and "competence.length" in names and "random" in names
    for n in names:
        v = conv.metrics[f"steps_to_target.{n}"]
        assert 0 < v <= cfg.steps + cfg.eval_every and np.isfinite(conv.metrics[f"steps_to_target_ci95.{n}"])
    assert "convergence.png" in conv.figures and "per_domain_loss.png" in mixing.figures
    assert all(f.n == 3 for f in conv.findings)


def test_config_refuses_too_few_seeds_and_wrong_proportions():
    with pytest.raises(ValueError):
        CurriculumExperimentConfig(seeds=[0, 1])
    with pytest.raises(ValueError):
        CurriculumExperimentConfig(proportions=[0.5, 0.5])


def test_share_invariant_catches_draws_from_another_schedule():
    """The share check can fail: static draws measured against the shifting schedule are far off."""
    from nlpcurriculum.adaptation.curriculum import domain_batches
    from nlpcurriculum.experiments.curriculum_learning_and_data_ordering import _share_error

    cfg = CurriculumExperimentConfig(steps=200)
    static = domain_batches("static", steps=200, batch_size=32, proportions=cfg.proportions, seed=0)
    assert _share_error(cfg, "static", static) <= cfg.checks.max_share_z
    assert _share_error(cfg, "shifting", static) > 10 * cfg.checks.max_share_z
