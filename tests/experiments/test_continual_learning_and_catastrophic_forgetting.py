"""The continual-learning experiment: its tasks, a toy run, and findings that can fail."""

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.continual_learning_and_catastrophic_forgetting import (
    ITEMS, ContinualExperimentConfig, lexicon_tasks, methods_item, run,
)


def test_lexicon_tasks_label_by_the_sum_of_their_own_polarities():
    cfg = ContinualExperimentConfig(n_tasks=3, n_words=8, length=5, eval_examples=400, seeds=[0, 1])
    tasks = lexicon_tasks(cfg, seed=0)
    assert [t.index for t in tasks] == [0, 1, 2]
    for t in tasks:
        assert t.eval_x.shape == (400, 6) and (t.eval_x[:, 0] == 8 + t.index).all()
        assert 0.3 < t.eval_y.float().mean() < 0.7  # roughly balanced
        x, y = t.sample(50, torch.Generator().manual_seed(3))
        assert x.shape == (50, 6) and set(y.tolist()) <= {0, 1}
    # independent rules: task 1's labels agree with task 0's rule about half the time
    words = tasks[1].eval_x[:, 1:]
    x0 = torch.cat([torch.full((400, 1), 8), words], 1)
    agree = (tasks[0].eval_y == tasks[1].eval_y).float().mean()  # different word draws: near 1/2
    assert 0.3 < agree < 0.7 and x0.shape == (400, 6)
    torch.testing.assert_close(lexicon_tasks(cfg, 0)[2].eval_x, tasks[2].eval_x)  # seeded


def _fake_runs(T: int, ewc_drop: float, seeds: int = 3) -> list[dict[str, np.ndarray]]:
    """Accuracy matrices where naive forgets task A from 1.0 to 0.5 and EWC to 1 - ewc_drop."""
    runs = []
    for s in range(seeds):
        def R(drop):
            m = np.full((T, T), 0.5)
            np.fill_diagonal(m, 1.0)
            m[1:, 0] = 1.0 - drop - 0.01 * s
            return m
        runs.append({"naive": R(0.5), "ewc@100": R(ewc_drop), "replay": R(0.1), "isolation": R(0.0),
                     "joint": np.full(T, 0.9)})
        runs[-1]["isolation"][1:, 0] = 1.0
    return runs


def test_the_halving_finding_fails_when_ewc_forgets_as_much_as_naive():
    cfg = ContinualExperimentConfig(n_tasks=3, seeds=[0, 1, 2], ewc_lambda=100.0, ewc_lambdas=[100.0, 1000.0])
    same = {f.metric: f for f in methods_item(cfg, _fake_runs(3, ewc_drop=0.5)).findings}
    assert not same["forgetting_task_a.ewc_minus_ratio_x_naive"].passed
    assert same["forgetting_task_a.replay_minus_ratio_x_naive"].passed
    half = {f.metric: f for f in methods_item(cfg, _fake_runs(3, ewc_drop=0.3)).findings}
    assert not half["forgetting_task_a.ewc_minus_ratio_x_naive"].passed  # 0.3 / 0.5 is not halved
    result = methods_item(cfg, _fake_runs(3, ewc_drop=0.1))
    assert result.metrics["forgetting_ratio.ewc"] == pytest.approx(0.2, abs=0.02)
    assert {f.metric: f for f in result.findings}["isolation_task_a_max_change"].passed


def test_run_at_toy_sizes_gives_three_items():
    cfg = ContinualExperimentConfig(n_tasks=3, n_words=8, length=5, d_model=8, n_layers=1, bottleneck=4,
                                    steps=4, batch_size=8, eval_examples=50, ewc_lambda=10.0,
                                    ewc_lambdas=[10.0, 1000.0], fisher_samples=4, replay_capacity=20,
                                    replay_batch=8, seeds=[0, 1], workers=1)
    results = run(cfg)
    assert [r.item for r in results] == list(ITEMS)
    degradation, methods, curves = results
    assert all(0.0 <= degradation.metrics[k] <= 1.0 for k in degradation.metrics)
    assert {f.metric for f in methods.findings if f.kind == "invariant"} == {"isolation_task_a_max_change"}
    assert all(f.passed for f in methods.findings if f.kind == "invariant")
    assert set(curves.series) == {f"forgetting_task_a.{m}" for m in ("naive", "ewc", "replay", "isolation")}
    assert all(f.n == 2 for r in results for f in r.findings if f.kind == "finding")
    assert {"forgetting_curves.png", "stability_plasticity.png"} <= set(curves.figures)


@pytest.mark.parametrize("bad, match", [(dict(seeds=[1]), "two distinct seeds"), (dict(length=8), "odd"),
                                        (dict(ewc_lambda=5.0), "one of ewc_lambdas"),
                                        (dict(n_tasks=2), "n_tasks"), (dict(fisher="fake"), "fisher")])
def test_config_refuses_what_the_findings_cannot_use(bad, match):
    with pytest.raises(ValueError, match=match):
        ContinualExperimentConfig(**bad)
