"""The pretraining-objectives experiment: equal compute, probes, samples, config errors."""

import ast
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.experiments.pretraining_objectives import (
    ITEMS,
    Inputs,
    PretrainingObjectivesConfig,
    cloze_probe,
    mlm_unmask,
    next_byte_probe,
    quirks,
    run,
    samples_item,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.objectives import MASK_ID
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def _tiny() -> PretrainingObjectivesConfig:
    return PretrainingObjectivesConfig(
        model=MiniFormerConfig(vocab_size=257, d_model=16, n_layers=1, n_heads=2, max_seq_len=24,
                               position="rope"),
        train=TrainerConfig(lr=3e-3, max_steps=4, batch_size=4, warmup_steps=1, eval_every=2,
                            eval_batches=1, progress=False),
        seq_len=16, probe_windows=8, cloze_probes=3, cloze_left=6, cloze_right=3,
        sample_prompts=2, prompt_len=6, sample_len=5,
    )


def test_run_trains_three_objectives_at_equal_compute():
    results = run(_tiny(), Inputs(TEXT, TEXT, TEXT))
    assert [r.item for r in results] == list(ITEMS)
    train, probes, samples = results
    m = train.metrics
    assert m["causal.tokens_seen"] == m["mlm.tokens_seen"] == m["prefix.tokens_seen"] == 4 * 4 * 16
    assert m["causal.params"] == m["mlm.params"] == m["prefix.params"]
    assert all(f.passed for f in train.findings if f.kind == "invariant")
    # the finding: prefix minus causal continuation loss, paired over the 3 default seeds; seed 0's
    # values are the main runs' last continuation probe
    diff = next(f for f in train.findings if f.metric == "prefix_minus_causal_continuation_loss")
    assert diff.kind == "finding" and diff.metric == "prefix_minus_causal_continuation_loss" and diff.n == 3
    per_seed = [m[f"prefix.seed{s}.continuation_loss"] - m[f"causal.seed{s}.continuation_loss"]
                for s in range(3)]
    assert diff.value == pytest.approx(sum(per_seed) / 3)
    assert m["causal.seed0.continuation_loss"] == probes.series["causal.continuation_loss"][-1][1]
    # the re-check of the MLM's RoPE on fresh seeds and the test split, against learned positions
    fresh = {f.metric: f for f in train.findings if f.metric.startswith("fresh.")}
    assert set(fresh) == {"fresh.mlm_rope_gain_over_unigram", "fresh.mlm_rope_minus_learned_acc"}
    assert all(f.n == 3 and f.kind == "finding" for f in fresh.values())
    assert {"fresh.seed10.mlm_rope.next_byte_acc", "fresh.seed12.mlm_learned.next_byte_acc"} <= set(m)
    # item 2's comparisons pair the 3 seeds; the untrained control is the probe at step 0
    pf = {f.metric: f for f in probes.findings}
    assert set(pf) == {"causal_minus_mlm_auc", "mlm_right_context_gain_over_untrained",
                       "worst_gain_over_unigram"} and all(f.n == 3 for f in pf.values())
    assert probes.series["mlm.next_byte_acc"][0][1] == probes.metrics["seed0.mlm.untrained_next_byte_acc"]
    (loops,) = samples.findings
    assert loops.metric == "causal_greedy_minus_sampled_repeat" and loops.n == 3
    # probe curves: steps 0, 2, 4 for every objective; no continuation loss for the MLM
    assert [s for s, _ in probes.series["mlm.next_byte_acc"]] == [0, 2, 4]
    assert "mlm.continuation_loss" not in probes.series and "prefix.continuation_loss" in probes.series
    pm = probes.metrics
    gain = pm["mlm.cloze_two_sided_acc"] - pm["mlm.cloze_left_only_acc"]
    assert pm["mlm_right_context_gain"] == pytest.approx(gain)
    text = samples.texts["samples.txt"]
    for key in ("causal.greedy", "prefix.t0.8", "mlm.unmask", "fill order", "Noted quirks"):
        assert key in text
    # the out-of-order rate counts fills made while a position to their left was still masked
    orders = [ast.literal_eval(line.split(":", 1)[1]) for line in text.splitlines()
              if line.strip().startswith("fill order:")]
    late = sum(o != min(set(range(len(order))) - set(order[:i]))
               for order in orders for i, o in enumerate(order))
    assert len(orders) == 2 and samples.metrics["mlm.unmask.out_of_order_rate"] == late / (2 * 5)


def test_a_val_split_too_short_for_the_probes_fails_in_one_line_naming_keys():
    with pytest.raises(CorpusTooSmallError, match=r"the val split \(12 bytes\) is too short for "
                       r"windows of 16 bytes: add documents or raise splits.val_fraction"):
        run(_tiny(), Inputs(TEXT, ["Short val set"[:12]]))


def test_probes_read_the_context_the_way_each_objective_was_trained():
    torch.manual_seed(0)
    cfg = MiniFormerConfig(vocab_size=257, d_model=16, n_layers=1, n_heads=2, max_seq_len=16)
    windows = torch.randint(0, 256, (5, 9))
    causal = build_model(cfg).eval()
    acc, loss = next_byte_probe(causal, "causal", windows)
    # the causal probe is the last position's prediction from the first 8 bytes
    logits = causal(windows[:, :-1]).logits[:, -1, :256].detach()
    assert acc == float((logits.argmax(-1) == windows[:, -1]).float().mean())
    assert loss == pytest.approx(float(F.cross_entropy(logits, windows[:, -1])))
    mlm = build_model(replace(cfg, causal=False)).eval()
    two, one = cloze_probe(mlm, "mlm", windows, 4)
    two_c, one_c = cloze_probe(causal, "causal", windows, 4)
    # left-only: the top byte after the 4 bytes of left context (the MLM with [MASK] in place)
    masked = windows.clone()
    masked[:, 4] = MASK_ID
    assert one == float((mlm(masked[:, :5]).logits[:, 4, :256].argmax(-1) == windows[:, 4]).float().mean())
    assert two == float((mlm(masked).logits[:, 4, :256].argmax(-1) == windows[:, 4]).float().mean())
    left_c = causal(windows[:, :4]).logits[:, -1, :256].argmax(-1)
    assert one_c == float((left_c == windows[:, 4]).float().mean())
    filled, order = mlm_unmask(mlm, windows[0, :4], 5)
    assert sorted(order) == list(range(5)) and MASK_ID not in filled and len(filled) == 5


def test_quirks_on_known_strings():
    q = quirks([b"abababab", b"\xff\xfe ok"])
    assert q["repeat_4gram_rate"] == pytest.approx(1 - 4 / 7)  # 7 4-grams: abab, baba + 2 distinct
    assert q["invalid_utf8_per_byte"] == pytest.approx(2 / 13)
    assert q["longest_run"] == 1.0


def test_config_errors_name_the_key():
    ok = _tiny()
    with pytest.raises(ValueError, match="vocab_size"):
        replace(ok, model=MiniFormerConfig(vocab_size=256))
    with pytest.raises(ValueError, match="mask_prob"):
        replace(ok, mask_prob=1.5)
    with pytest.raises(ValueError, match="seq_len"):
        replace(ok, seq_len=1000)
    with pytest.raises(ValueError, match="prompt_len"):
        replace(ok, prompt_len=60, sample_len=30)


def test_the_comparisons_fail_on_a_tie_and_on_the_untrained_control():
    """Mutations: a sampler whose temperature changes nothing, an MLM that ignores its right
    context as much as its random initialisation does, seeds whose objectives tie."""
    cfg = _tiny()
    per_seed = {s: {"causal.greedy.repeat_4gram_rate": 0.3 + s / 100,
                    "causal.sampled.repeat_4gram_rate": 0.3 + s / 100} for s in range(3)}
    (loops,) = samples_item(cfg, {}, torch.zeros(0, 6, dtype=torch.long), per_seed).findings
    assert loops.value == 0.0 and not loops.passed
    for s in range(3):
        per_seed[s]["causal.sampled.repeat_4gram_rate"] -= 0.2 + s / 200  # greedy loops: passes
    (loops,) = samples_item(cfg, {}, torch.zeros(0, 6, dtype=torch.long), per_seed).findings
    assert loops.passed and loops.value == pytest.approx(0.205, abs=1e-9)


def test_fresh_seeds_need_a_test_split_and_differ_from_the_compare_seeds():
    with pytest.raises(CorpusTooSmallError, match="fresh_seeds .* the test split, which is empty"):
        run(_tiny(), Inputs(TEXT, TEXT))
    with pytest.raises(ValueError, match="fresh_seeds must be"):
        replace(_tiny(), fresh_seeds=[1, 5])
    with pytest.raises(ValueError, match="learned"):
        replace(_tiny(), model=MiniFormerConfig(vocab_size=257, d_model=16, n_layers=1, n_heads=2,
                                                max_seq_len=24, position="learned"))
    assert replace(_tiny(), fresh_seeds=[]).fresh_seeds == []
