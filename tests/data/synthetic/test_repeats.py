"""The repeated-block toy task: periodicity, distinct blocks, scored targets, reproducibility."""

import pytest
import torch

from nlpcurriculum.data.synthetic.repeats import IGNORE_INDEX, RepeatTask, RepeatTaskConfig


def _period_of(row: torch.Tensor) -> int:
    """Smallest P with row[t] == row[t - P] everywhere."""
    T = row.numel()
    return next(p for p in range(1, T) if torch.equal(row[p:], row[:-p]))


def test_sequences_repeat_a_block_of_distinct_tokens():
    cfg = RepeatTaskConfig(vocab_size=16, seq_len=24, min_period=3, max_period=7)
    x, y = RepeatTask(cfg, seed=0).next_batch(64)
    assert x.shape == y.shape == (64, 24) and x.dtype == torch.int64
    assert int(x.min()) >= 0 and int(x.max()) < 16
    for row in x:
        p = _period_of(row)
        assert 3 <= p <= 7
        assert len(set(row[:p].tolist())) == p  # a block holds distinct tokens


def test_targets_are_the_shifted_input_with_the_first_block_ignored():
    cfg = RepeatTaskConfig(vocab_size=16, seq_len=20, min_period=3, max_period=6)
    x, y = RepeatTask(cfg, seed=1).next_batch(32)
    for row_x, row_y in zip(x, y):
        p = _period_of(row_x)
        assert torch.all(row_y[:p] == IGNORE_INDEX)
        assert torch.equal(row_y[p:-1], row_x[p + 1:])
        # every scored target is what followed the previous occurrence of the current token
        for t in range(p, 20):
            assert int(row_y[t]) == int(row_x[t - p + 1])


def test_eval_batches_are_identical_every_call_and_independent_of_training_draws():
    task = RepeatTask(RepeatTaskConfig(), seed=3)
    first = [x for x, _ in task.eval_batches(8, 3)]
    task.next_batch(8)
    again = [x for x, _ in task.eval_batches(8, 3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_state_dict_resumes_the_exact_batch_sequence():
    a = RepeatTask(RepeatTaskConfig(), seed=5)
    a.next_batch(4)
    state = a.state_dict()
    expected = a.next_batch(4)
    b = RepeatTask(RepeatTaskConfig(), seed=99)
    b.load_state_dict(state)
    assert torch.equal(b.next_batch(4)[0], expected[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_period=1), "min_period must be >= 2"),
        (dict(min_period=5, max_period=4), "max_period=4 < min_period=5"),
        (dict(seq_len=8, max_period=8), "must be < seq_len"),
        (dict(vocab_size=5, max_period=6), "smaller than max_period"),
    ],
)
def test_bad_config_fails_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepeatTaskConfig(**kwargs)
