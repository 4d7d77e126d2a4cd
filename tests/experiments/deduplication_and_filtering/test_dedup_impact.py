"""The cleaning-level LM experiment (deduplication-and-filtering/3; a tiny budget, seconds)."""

import math

import numpy as np
import pytest
import torch

from nlpcurriculum.data.minhash import MinHashConfig
from nlpcurriculum.experiments.deduplication_and_filtering.dedup_impact import (
    DedupImpactConfig,
    Inputs,
    decontaminate,
    interval,
    memorisation,
    min_detectable_effect,
    plant_duplicates,
    run,
)
from nlpcurriculum.experiments.harness import byte_stream
from nlpcurriculum.results import Finding

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def _doc(i: int, n: int = 60) -> str:
    rng = np.random.default_rng(i)
    return " ".join(rng.choice(WORDS, size=n)) + "."


def test_decontaminate_drops_an_edited_copy_of_a_held_out_document_under_another_id():
    held = _doc(100)
    edited = held.replace("alpha", "ALPHA", 1)  # lowercased shingles: the same document
    train = [_doc(i) for i in range(5)] + [edited, held[: len(held) // 2]]
    kept, worst = decontaminate(train, [held], 0.5, MinHashConfig(hash_fn="fast"))
    assert kept == train[:5]  # the copy and the half copy (Jaccard ~0.5) are gone
    assert worst < 0.5
    kept, worst = decontaminate(train, [held], 1.0, MinHashConfig(hash_fn="fast"))
    assert kept == train[:5] + [train[6]]  # at 1.0 only the same shingle set goes
    assert 0.3 < worst < 1.0  # the half copy, kept


def test_planted_copies_are_byte_exact_and_controls_appear_once():
    docs = [_doc(i, 200) for i in range(6)]
    rng = np.random.default_rng(0)
    mixed, planted, control = plant_duplicates(docs, 4, 64, 3, rng)
    assert len(mixed) == len(docs) + 4 * 3 and len(planted) == len(control) == 4
    stream = bytes(byte_stream(mixed).tolist())
    for p in planted:
        assert len(p) == 64 and stream.count(p) == 1 + 3  # the original and its copies
    for p in control:
        assert stream.count(p) == 1
    assert not set(planted) & set(control)
    with pytest.raises(ValueError, match="dup_passages=100 needs 200"):
        plant_duplicates(docs, 100, 64, 3, rng)


class _NextIsPlusOne(torch.nn.Module):
    """A stub LM whose argmax after byte b is b + 1 (mod 256)."""

    def forward(self, x, targets=None):
        logits = torch.nn.functional.one_hot((x + 1) % 256, 256).float() * 10  # (B, T, 256)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets)

        class Out:
            pass

        out = Out()
        out.logits, out.loss = logits, loss
        return out


def test_exact_continuation_counts_only_the_bytes_after_the_prompt():
    model = _NextIsPlusOne()
    run_up = bytes(range(10, 26))  # 16 bytes, each the last + 1: greedy reproduces it
    broken_late = run_up[:12] + b"\x00" + run_up[13:]  # wrong after the 8-byte prompt
    broken_early = b"\x00" + run_up[1:]  # wrong inside the prompt only: still reproduced
    loss, exact = memorisation(model, [run_up, broken_late, broken_early], prompt_bytes=8)
    assert exact == pytest.approx(2 / 3)
    assert loss > 0


def test_interval_and_minimum_detectable_effect_worked_example():
    f = Finding.compare("x", "x", [0.03, 0.02, 0.04], [0.0, 0.0, 0.0], margin=0.01)
    # effects 0.03, 0.02, 0.04: mean 0.03, SE 0.01 / sqrt(3) = 0.005774
    lo, hi = interval(f)
    half = 4.3027 * 0.005774  # t(0.975, 2)
    assert (lo, hi) == (pytest.approx(0.03 - half, abs=1e-4), pytest.approx(0.03 + half, abs=1e-4))
    assert min_detectable_effect(f, True) == pytest.approx(0.01 + 2.8416 * 0.005774, abs=1e-5)
    g = Finding.compare("y", "y", [1.0, 1.1, 0.9], [1.2, 1.3, 1.1], margin=0.1, higher_is_better=False)
    assert min_detectable_effect(g, False) == pytest.approx(-0.1 - 2.8416 * g.se)
    assert math.isnan(interval(Finding.compare("z", "z", [1.0]))[0])


def test_run_compares_three_arms_over_seeds_with_intervals(tiny_budget):
    docs = [_doc(i, 120) for i in range(40)]
    held = [_doc(1000 + i) for i in range(3)]
    contaminated = held[0].replace("alpha", "Alpha")
    sets = {"raw": docs + [docs[0], contaminated], "deduped": docs + [contaminated],
            "filtered": docs[:30]}
    cfg = DedupImpactConfig(budget=tiny_budget, seeds=[0, 1, 2], epochs=1.0, dup_passages=4,
                            dup_copies=3, passage_bytes=32, prompt_bytes=24)
    (result,) = run(cfg, Inputs(sets, held))
    m = result.metrics
    assert m["deduped.decontaminated_documents"] == 1 and m["filtered.decontaminated_documents"] == 0
    assert m["deduped.train_bytes"] >= cfg.budget.steps * cfg.budget.tokens_per_step / cfg.epochs
    assert m["duplicated.train_bytes"] > m["deduped.train_bytes"]
    kinds = [(f.metric, f.kind, f.n) for f in result.findings]
    assert kinds == [("max_heldout_jaccard_kept", "invariant", None),
                     ("memorisation_gap_dup_minus_dedup", "finding", 3),
                     ("heldout_loss_dup_minus_dedup", "finding", 3),
                     ("heldout_loss_filtered_minus_dedup", "finding", 3)]
    assert result.findings[0].passed
    gaps = [m[f"duplicated.seed{s}.memorisation_gap"] - m[f"deduped.seed{s}.memorisation_gap"]
            for s in range(3)]
    assert m["memorisation_gap_dup_minus_dedup"] == pytest.approx(sum(gaps) / 3)
    for key in ("se", "ci95_low", "ci95_high", "min_detectable_effect"):
        assert math.isfinite(m[f"heldout_loss_dup_minus_dedup.{key}"])
    assert m["heldout_loss_dup_minus_dedup.ci95_low"] < m["heldout_loss_dup_minus_dedup"]
    assert "minimum detectable effect" in result.texts["results.txt"]


def test_config_needs_seeds_and_a_passage_that_fits_the_context():
    with pytest.raises(ValueError, match="seeds"):
        DedupImpactConfig(seeds=[0])
    with pytest.raises(ValueError, match="prompt_bytes < passage_bytes"):
        DedupImpactConfig(passage_bytes=200)
