"""The pretraining-objectives experiment: equal compute, probes, samples, config errors."""

from dataclasses import replace

import pytest
import torch

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
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.objectives import MASK_ID
from nlpcurriculum.training.trainer import TrainerConfig

TEXT = ["It was the best of times, it was the worst of times. " * 40]


def _tiny() -> PretrainingObjectivesConfig:
    return PretrainingObjectivesConfig(
        model=MiniFormerConfig(vocab_size=257, d_model=16, n_layers=1, n_heads=2, max_seq_len=24),
        train=TrainerConfig(lr=3e-3, max_steps=4, batch_size=4, warmup_steps=1, eval_every=2,
                            eval_batches=1, progress=False),
        seq_len=16, probe_windows=8, cloze_probes=3, cloze_left=6, cloze_right=3,
        sample_prompts=2, prompt_len=6, sample_len=5,
    )


def test_run_trains_three_objectives_at_equal_compute():
    results = run(_tiny(), Inputs(TEXT, TEXT))
    assert [r.item for r in results] == list(ITEMS)
    train, probes, samples = results
    m = train.metrics
    assert m["causal.tokens_seen"] == m["mlm.tokens_seen"] == m["prefix.tokens_seen"] == 4 * 4 * 16
    assert m["causal.params"] == m["mlm.params"] == m["prefix.params"]
    assert all(f.passed for f in train.findings)
    # probe curves: steps 0, 2, 4 for every objective; no continuation loss for the MLM
    assert [s for s, _ in probes.series["mlm.next_byte_acc"]] == [0, 2, 4]
    assert "mlm.continuation_loss" not in probes.series and "prefix.continuation_loss" in probes.series
    for name in ("causal", "mlm", "prefix"):
        assert 0.0 <= probes.metrics[f"{name}.cloze_two_sided_acc"] <= 1.0
    text = samples.texts["samples.txt"]
    for key in ("causal.greedy", "prefix.t0.8", "mlm.unmask", "fill order", "Noted quirks"):
        assert key in text
    assert 0.0 <= samples.metrics["mlm.unmask.out_of_order_rate"] <= 1.0


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
    assert 0 <= acc <= 1 and loss > 0
    # the causal probe is the last position's prediction from the first 8 bytes
    expected = causal(windows[:, :-1]).logits[:, -1, :256].argmax(-1)
    assert acc == float((expected == windows[:, -1]).float().mean())
    mlm = build_model(replace(cfg, causal=False)).eval()
    two, one = cloze_probe(mlm, "mlm", windows, 4)
    two_c, one_c = cloze_probe(causal, "causal", windows, 4)
    assert all(0 <= a <= 1 for a in (two, one, two_c, one_c))
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
