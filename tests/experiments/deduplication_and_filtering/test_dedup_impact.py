"""The cleaning-level LM experiment (deduplication-and-filtering/3; a tiny budget, seconds)."""

import pytest

from nlpcurriculum.experiments.deduplication_and_filtering.dedup_impact import (
    DedupImpactConfig,
    Inputs,
    run,
)


def test_dedup_impact_seeds_give_spread_and_findings(tiny_budget):
    docs = [f"Document number {i} says hello to the world again." * 2 for i in range(30)]
    sets = {"raw": docs, "deduped": docs[:25], "filtered": docs[:20]}
    cfg = DedupImpactConfig(budget=tiny_budget, seeds=[0, 1])
    (result,) = run(cfg, Inputs(sets, ["Held out text, the world says hello." * 3]))
    assert result.metrics["raw.heldout_ppl"] > 1
    assert result.metrics["raw.heldout_ppl_spread"] > 0  # different seeds, different models
    m = result.metrics
    # the accuracy finding is the difference of the means, bounded below by the noise band
    assert m["deduped.word_acc_minus_raw"] == pytest.approx(m["deduped.word_acc"] - m["raw.word_acc"])
    assert m["noise.word_acc"] == max(cfg.min_noise, *(m[f"{n}.word_acc_spread"] for n in sets))
    acc = next(f for f in result.findings if f.metric == "deduped.word_acc_minus_raw")
    assert acc.threshold == pytest.approx(-m["noise.word_acc"])
    assert [f.metric for f in result.findings][:2] == ["deduped.ppl_ratio_to_raw",
                                                       "deduped.word_acc_minus_raw"]
