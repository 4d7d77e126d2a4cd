"""The multi-task experiment at toy sizes: three items, PCGrad parity holds, the controls and
comparisons are built over the seeds, and the config refuses what the findings cannot use."""

import pytest

from nlpcurriculum.experiments.multi_task_learning import (
    ITEMS,
    MultiTaskExperimentConfig,
    run,
)


def _tiny(**kw):
    base = dict(n_topic=200, n_sentiment=60, n_val=60, length=8, d_model=16, steps_per_task=20,
                eval_every=10, seeds=[0, 1, 2], workers=1)
    base.update(kw)
    return MultiTaskExperimentConfig(**base)


def test_run_gives_three_items_with_parity_controls_and_curves():
    results = run(_tiny())
    assert [r.item for r in results] == list(ITEMS)
    balancing = results[1]
    parity = next(f for f in balancing.findings if f.metric == "pcgrad_torchjd_max_abs_diff")
    assert parity.kind == "invariant" and parity.passed and parity.value <= 1e-5
    assert {f.metric for f in balancing.findings} >= {
        "conflict_damage.pcgrad_minus_sum", "conflict_damage.gradnorm_minus_sum",
        "conflict_damage.uncertainty_minus_sum"}
    transfer = results[2]
    assert all(f.n == 3 for f in transfer.findings)
    assert "learning_curves.png" in transfer.figures and "gradient_cosine.png" in transfer.figures
    # curves: evaluated at 0, 10, 20 batches of each task
    assert [s for s, _ in transfer.series["accuracy.single.topic"]] == [0, 10, 20]
    rows = transfer.texts["transfer.txt"].splitlines()[1:]
    assert [r.split()[:2] for r in rows] == [["compatible", "topic"], ["compatible", "sentiment"],
                                             ["conflict", "topic"], ["conflict", "topic_shifted"]]
    assert transfer.metrics["flagged.conflict.topic"] in (0.0, 1.0)
    for r in results:
        assert all(f.n is None or f.n == 3 for f in r.findings)


def test_config_refuses_too_few_seeds_and_equal_task_sizes():
    with pytest.raises(ValueError):
        _tiny(seeds=[0, 1])
    with pytest.raises(ValueError):
        _tiny(n_sentiment=200)
