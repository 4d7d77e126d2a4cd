"""The recall task: its worked example's layout, distances, targets and determinism."""

import pytest
import torch

from nlpcurriculum.longcontext.recall import IGNORE, RecallTask, recall_batch


def test_layout_targets_and_distances_are_consistent():
    task = RecallTask(length=40, n_pairs=4, n_queries=3, n_keys=6, n_values=5)
    b = recall_batch(task, 16, torch.Generator().manual_seed(0))
    assert b.tokens.shape == b.targets.shape == b.distances.shape == (16, 40)
    first_pair, first_answer = 1 + task.n_keys, 1 + task.n_keys + task.n_keys * task.n_values
    for row in range(16):
        asked = (b.targets[row] != IGNORE).nonzero().flatten()
        assert asked.tolist() == list(range(task.context, 40))
        for p in asked.tolist():
            key = int(b.tokens[row, p]) - 1  # the query's key index
            pair_pos = p - int(b.distances[row, p])
            pair = int(b.tokens[row, pair_pos]) - first_pair
            assert pair // task.n_values == key  # the pair at that distance holds the key
            assert int(b.targets[row, p]) - first_answer == pair % task.n_values  # and the answer
        context = b.tokens[row, :task.context]
        assert int((context != 0).sum()) == task.n_pairs
    assert int(b.tokens.max()) < task.vocab_size


def test_docstring_example_vocabulary():
    task = RecallTask(length=8, n_pairs=2, n_queries=1, n_keys=2, n_values=2)
    assert task.vocab_size == 9
    assert int(task.pair_token(torch.tensor(0), torch.tensor(1))) == 4
    assert int(task.pair_token(torch.tensor(1), torch.tensor(0))) == 5
    assert int(task.answer_token(torch.tensor(1))) == 8


def test_same_generator_same_batch():
    task = RecallTask(length=16, n_pairs=2, n_queries=2, n_keys=4, n_values=4)
    a = recall_batch(task, 4, torch.Generator().manual_seed(3))
    b = recall_batch(task, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.distances, b.distances)


@pytest.mark.parametrize("bad", [dict(n_queries=5, n_pairs=4), dict(n_pairs=9, n_keys=8),
                                 dict(length=10, n_pairs=8, n_queries=4, n_keys=8)])
def test_refuses_impossible_layouts(bad):
    with pytest.raises(ValueError):
        RecallTask(**bad)
