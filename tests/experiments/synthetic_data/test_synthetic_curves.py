"""The real vs synthetic learning-curves experiment (synthetic-data/2; a tiny budget, seconds)."""

import numpy as np

from nlpcurriculum.experiments.synthetic_data.synthetic_curves import (
    Inputs,
    SyntheticCurvesConfig,
    run,
)


def test_synthetic_curves_reports_cross_eval_and_findings(tiny_budget):
    real = {"train": [f"The quick brown fox {i} jumps over the lazy dog." * 3 for i in range(20)],
            "val": ["A different sentence about foxes and dogs." * 3] * 2}
    syn = {"train": ["Tom had a cat. The cat was red. " * 3] * 20,
           "val": ["Ann had a dog. The dog was big. " * 3] * 2}
    (result,) = run(SyntheticCurvesConfig(budget=tiny_budget, seeds=[0, 1]), Inputs(real, syn))
    for trained_on in ("real", "synthetic", "mix"):
        for ev in ("real", "synthetic"):
            loss = result.metrics[f"{trained_on}_model.{ev}_val_loss"]
            assert 0 < loss < np.log(256) + 0.5
    assert [(f.n, f.kind) for f in result.findings] == [(2, "finding")] * 3
    assert result.metrics["seeds"] == 2
    assert len(result.series["real_model_real_val"]) == 3  # steps 0, 3, 6
    assert result.metrics["tokens_per_run"] == 6 * 4 * 32


def test_synthetic_curves_needs_two_distinct_seeds():
    import pytest

    with pytest.raises(ValueError, match="two distinct seeds"):
        SyntheticCurvesConfig(seeds=[3, 3])
