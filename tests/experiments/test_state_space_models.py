"""The SSM experiment at toy sizes: the task, the arms, the findings' shape."""

import pytest
import torch

from nlpcurriculum.experiments.state_space_models import ITEMS, SSMExperimentConfig, run


def test_run_at_toy_sizes_gives_three_items_with_invariants_held():
    cfg = SSMExperimentConfig(context=8, n_data=2, d_model=8, d_state=4, steps=3, batch_size=4,
                              seeds=[0, 1], eval_lengths=[8, 32], eval_sequences=4,
                              bench_lengths=[64, 128], decode_positions=[16, 64], rounds=2)
    results = run(cfg)
    assert [r.item for r in results] == list(ITEMS)
    layer, long, cost = results
    assert all(f.passed for f in layer.findings if f.kind == "invariant")
    assert [f.n for f in layer.findings if f.kind == "finding"] == [2]
    assert set(long.metrics) == {f"accuracy.{a}.L{L}" for a in ("selective", "time_invariant", "attention")
                                 for L in (8, 32)}
    assert all(0.0 <= v <= 1.0 for v in long.metrics.values())
    assert all(f.timed for f in cost.findings) and not cost.metrics.keys() & cost.timings.keys()


@pytest.mark.parametrize("bad, match", [(dict(eval_lengths=[64, 128]), "start at the training context"),
                                        (dict(seeds=[1]), "two distinct seeds"),
                                        (dict(n_data=40), "below context")])
def test_config_refuses_what_the_findings_cannot_use(bad, match):
    with pytest.raises(ValueError, match=match):
        SSMExperimentConfig(**bad)
