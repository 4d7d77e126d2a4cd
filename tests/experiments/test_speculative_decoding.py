"""The speculative-decoding experiment: the exactness check, the bigram draft, config errors and
one tiny run of the stage's three items (the distillation loss is tested in
tests/compression/test_distill.py)."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from nlpcurriculum.experiments.speculative_decoding import (
    DraftSeed,
    Inputs,
    SpeculativeConfig,
    bigram_draft,
    exactness_check,
    prompt_sets,
    reseeded,
    run,
    train_drafts,
)
from nlpcurriculum.training.trainer import TrainerConfig
from tests.decoding.test_speculative import lm  # the decoding tests' tiny models


def test_exactness_check_on_small_models():
    target, draft = lm(0, init_std=0.5), lm(1, layers=1, init_std=0.5)
    r = exactness_check(target, draft, [1, 2, 3], 1.0, 5000, 8, seed=0)
    assert r["tv_spec_vs_target"] < r["tv_bound"] < r["tv_draft_vs_target"]
    assert abs(r["acceptance_first_position"] - r["expected_acceptance"]) < 0.05


def test_bigram_draft_is_the_normalised_counts():
    stream = np.array([0, 1, 2, 1, 2, 0, 1], dtype=np.int32)
    model = bigram_draft(stream, 3, alpha=0.5)
    probs = torch.softmax(model.table.weight.detach(), -1)
    counts = np.zeros((3, 3))
    for a, b in zip(stream[:-1], stream[1:]):
        counts[a, b] += 1
    expected = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-5)


TRAIN = TrainerConfig(max_steps=3, warmup_steps=1, batch_size=4, eval_every=0, progress=False)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="draft_widths"):
        SpeculativeConfig(train=TRAIN, draft_layers=[1, 2], draft_widths=[32])
    with pytest.raises(ValueError, match="gammas"):
        SpeculativeConfig(train=TRAIN, gammas=[4, 2])
    with pytest.raises(ValueError, match="draft_head_dim"):
        SpeculativeConfig(train=TRAIN, draft_widths=[30, 64, 64])
    with pytest.raises(ValueError, match="temperatures"):
        SpeculativeConfig(train=TRAIN, temperatures=[-1.0])
    with pytest.raises(ValueError, match="distill"):
        SpeculativeConfig(train=TRAIN, distill=1.5)
    with pytest.raises(ValueError, match="lookup_gammas"):
        SpeculativeConfig(train=TRAIN, lookup_gammas=[8, 4])
    with pytest.raises(ValueError, match="min_ngram"):
        SpeculativeConfig(train=TRAIN, min_ngram=4, max_ngram=3)
    with pytest.raises(ValueError, match="table_min_confidence"):
        SpeculativeConfig(train=TRAIN, table_min_confidence=2.0)
    with pytest.raises(ValueError, match="extra_seeds"):
        SpeculativeConfig(train=TRAIN, seed=0, heldout_seed=1, extra_seeds=[2, 1])
    with pytest.raises(ValueError, match="train_threads"):
        SpeculativeConfig(train=TRAIN, train_threads=0)
    with pytest.raises(ValueError, match="no draft"):
        SpeculativeConfig(train=TRAIN, draft_layers=[], draft_widths=[], bigram=False,
                          context_draft=False, table_draft=False)


def _tiny_cfg(**kw) -> SpeculativeConfig:
    return SpeculativeConfig(**{
        "draft_layers": [1], "draft_widths": [16], "train": TRAIN,
        "seq_len": 16, "val_batches": 1, "prompt_tokens": 4, "tuning_prompts": 2, "heldout_prompts": 3,
        "new_tokens": 8, "gammas": [1, 3], "temperatures": [0.0, 1.0], "curve_gamma": 2,
        "exact_samples": 500, "repeats": 1, "heldout_rounds": 2, "cost_calls": 2,
        "table_tokens": 1024, "table_generations_grid": [0, 4], "lookup_gammas": [4, 6], **kw})


def _tiny_inputs():
    target = lm(0, vocab=40, init_std=0.3)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 40, 3000).astype(np.int32)
    val = rng.integers(0, 40, 600).astype(np.int32)
    return Inputs(target, train, val)


def test_run_tiny(tmp_path):
    cfg = _tiny_cfg(extra_seeds=[2])
    results = run(cfg, _tiny_inputs())
    assert [r.item for r in results] == [f"speculative-decoding/{i}" for i in (1, 2, 3)]
    assert results[0].metrics["greedy_runs_different"] == 0
    assert results[0].findings[0].passed
    assert all(r.findings for r in results)
    assert {"bigram.best_speedup", "1L-d16.best_speedup", "context.best_speedup", "table.best_speedup",
            "context-table.best_speedup"} <= set(results[2].timings)
    # the lookup drafts are swept over lookup_gammas, the model drafts over gammas (tuning: timed)
    assert {"context-table.g6.speedup", "1L-d16.g3.speedup"} <= set(results[1].timings)
    assert "1L-d16.g6.speedup" not in results[1].timings
    # ... and on the held-out prompts, untimed: acceptance is a deterministic metric
    assert {"context-table.g6.acceptance_rate", "1L-d16.g3.acceptance_rate"} <= set(results[1].metrics)
    # exactness is checked for a sampled q (the mini-former) and a one-hot q (context-table)
    m = results[0].metrics
    for name in ("1L-d16", "context-table"):
        assert m[f"exact.{name}.tv_spec_vs_target"] < m[f"exact.{name}.tv_bound"]
    assert m["table.generations_chosen"] in (0, 4)
    assert results[2].metrics["table.params"] > 0  # table entries
    # item 3's rank correlations: one per training seed (the bigram is every seed's), mean checked
    size = results[2]
    assert {"seed2.1L-d16.val_loss", "seed2.1L-d16.acceptance_rate"} <= set(size.metrics)
    assert "seed2.bigram.val_loss" not in size.metrics
    quality = next(f for f in size.findings if f.metric == "spearman_quality_acceptance")
    assert quality.n == 2
    assert quality.value == pytest.approx(np.mean([size.metrics["seed0.spearman_quality_acceptance"],
                                                   size.metrics["seed2.spearman_quality_acceptance"]]))
    # held out: one timed finding per family and temperature, n = the held-out prompts
    held = [f for f in results[0].findings if f.metric.startswith("heldout.")]
    assert {f.metric for f in held} >= {f"heldout.{fam}.T{t}.speedup" for fam in ("model", "lookup")
                                        for t in ("0", "1")}
    assert all(f.timed and f.n == cfg.heldout_prompts for f in held)
    # no clock reading among the metrics; every timed finding's number is a timing
    for r in results:
        assert not any(k.endswith(("speedup", "cost_ratio", "predicted")) for k in r.metrics), r.item
        assert all(not f.timed or f.kind == "finding" for f in r.findings)
    for r in results:
        for fig in r.figures.values():
            fig.savefig(tmp_path / "f.png")


def test_prompt_sets_are_disjoint_halves():
    cfg = _tiny_cfg()
    val = np.arange(600)
    tuning, heldout = prompt_sets(val, cfg)
    assert len(tuning) == 2 and len(heldout) == 3
    assert max(max(p) for p in tuning) < 300 <= min(min(p) for p in heldout)


def test_draft_seed_rank_correlations():
    s = DraftSeed(0, val_loss={"a": 5.0, "b": 4.0, "c": 3.0}, kl_to_target={"a": 1.0, "b": 2.0, "c": 3.0},
                  acceptance={"a": 0.2, "b": 0.3, "c": 0.4})
    assert s.quality_spearman == pytest.approx(1.0)  # lower loss, accepted more often
    assert s.agreement_spearman == pytest.approx(-1.0)  # here: further from the target, accepted more


def test_reseeded_drafts_differ_and_repeat():
    """Another seed trains other drafts (the replicates are not copies); the same seed repeats
    them bit for bit (on one machine: float rounding differs between CPUs)."""
    cfg, inputs = _tiny_cfg(), _tiny_inputs()

    def weights(c):
        (d,) = [d for d in train_drafts(inputs.target, inputs.train, inputs.val, c) if d.name != "bigram"]
        return torch.cat([p.detach().flatten() for p in d.model.parameters()])

    first = weights(cfg)
    assert torch.equal(first, weights(cfg))
    other = reseeded(cfg, 2)
    assert (other.seed, other.train.seed, other.bigram) == (2, 2, False)
    assert not torch.allclose(first, weights(other))


def test_deterministic_metrics_repeat_exactly():
    """A rerun gives the same metrics (what metrics/<stage>.json holds), whatever the clock."""
    cfg = _tiny_cfg(bigram=True, exact_samples=200, extra_seeds=[2])
    a, b = (run(cfg, _tiny_inputs()) for _ in range(2))

    def deterministic(results):  # as publish writes them (NaN != NaN, so compare the JSON text)
        return json.dumps([[r.metrics, [asdict(f) for f in r.findings if not f.timed]] for r in results])

    assert deterministic(a) == deterministic(b)


def test_config_requires_a_fresh_heldout_seed():
    with pytest.raises(ValueError, match="heldout_seed"):
        _tiny_cfg(seed=3, heldout_seed=3)
    with pytest.raises(ValueError, match="table_generations_grid"):
        _tiny_cfg(table_generations_grid=[8, 0])
