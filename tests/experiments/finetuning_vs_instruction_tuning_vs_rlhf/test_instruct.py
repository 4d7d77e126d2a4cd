"""The instruction-tuning experiment (finetuning-vs-instruction-tuning-vs-rlhf/2), tiny, seconds."""

import dataclasses
import math

import pytest

from nlpcurriculum.data.synthetic.instructions import TASK_TYPES, InstructionConfig, generate
from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.instruct import (
    InstructConfig,
    Inputs,
    Outputs,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.trainer import TrainerConfig, seed_everything

EOS = 0
CONFIG = MiniFormerConfig(vocab_size=128, d_model=32, n_layers=1, n_heads=2, max_seq_len=96)


def encode(text):
    """ASCII characters as ids (1..127); eos is 0."""
    return [min(ord(c), 127) or 1 for c in text]


def decode(ids):
    return "".join(chr(i) for i in ids if i)


def _inputs():
    seed_everything(0)
    base = build_model(CONFIG)
    cfg = InstructionConfig(n=120, task_types=("count_words", "arithmetic"))
    recs = generate(cfg, seed=0)
    return Inputs(dataclasses.asdict(CONFIG), base.state_dict(),
                  {"train": recs[:80], "val": recs[80:100], "test": recs[100:]}, encode, decode, EOS)


def _cfg(**kw):
    train = TrainerConfig(lr=3e-3, max_steps=8, batch_size=8, warmup_steps=2, eval_every=4,
                          eval_batches=1, progress=False)
    return InstructConfig(unseen_types=["arithmetic"], train=train, eval_per_type=6,
                          max_new_tokens=6, workers=1, **kw)


def test_run_measures_seen_and_unseen_types_for_every_arm():
    outputs = Outputs()
    (result,) = run(_cfg(), _inputs(), outputs, log=lambda _: None)
    m = result.metrics
    assert len(result.findings) == 4
    for arm in ("base", "masked", "unmasked"):
        for group in ("seen", "unseen"):
            assert 0 <= m[f"{arm}.exact_match.{group}"] <= 1
            assert math.isfinite(m[f"{arm}.response_nll.{group}"])
    # only the seen type is trained on: about half of the 80 train records
    assert 20 < m["train_examples"] < 60
    for t in ("first_sentence", "sort_list", "reverse_words", "uppercase"):  # absent types
        assert m[f"eval_examples.{t}"] == 0 and f"base.exact_match.{t}" not in m
    # the unseen type is evaluated on every split (it was never trained on)
    assert m["eval_examples.arithmetic"] == 6
    assert outputs.state is not None and outputs.train.seed == 0
    assert "Samples (greedy)" in result.texts["instruct.txt"]


def test_tuning_lowers_the_response_loss_and_the_masked_arm_trains_only_on_responses():
    (result,) = run(_cfg(), _inputs(), log=lambda _: None)
    m = result.metrics
    # 8 steps of tuning already teach the answers' characters: the response loss falls
    assert m["masked.response_nll.seen"] < m["base.response_nll.seen"] - 0.5
    # the unmasked arm spends its updates on the prompts too: its response loss is higher
    assert m["masked.response_nll.seen"] < m["unmasked.response_nll.seen"]


def test_config_checks():
    with pytest.raises(ValueError, match="proper subset"):
        _cfg().__class__(unseen_types=list(TASK_TYPES))
    with pytest.raises(ValueError, match="proper subset"):
        _cfg().__class__(unseen_types=["summarise"])
    assert _cfg().seen_types == [t for t in TASK_TYPES if t != "arithmetic"]
