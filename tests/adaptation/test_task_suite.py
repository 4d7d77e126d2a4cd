"""The multi-task suite: shapes, shared vocabulary, and the built conflict."""

import torch

from nlpcurriculum.adaptation.task_suite import classification_task, permuted_task, vocabulary


def test_tasks_are_fixed_length_in_one_vocabulary_and_reproducible():
    a = classification_task("t", "topic", n_train=50, n_val=20, length=8, signal=0.3, seed=1)
    b = classification_task("t", "topic", n_train=50, n_val=20, length=8, signal=0.3, seed=1)
    assert a.x_train.shape == (50, 8) and a.x_val.shape == (20, 8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert int(a.x_train.max()) < len(vocabulary()) and a.n_classes == 5
    assert not torch.equal(a.x_train[:20], a.x_val)  # val documents are fresh


def test_permuted_task_keeps_inputs_and_head_and_moves_every_label():
    t = classification_task("topic", "topic", n_train=100, n_val=30, length=8, signal=0.3, seed=2)
    c = permuted_task(t, "shifted")
    assert c.head == t.head and torch.equal(c.x_train, t.x_train)
    assert (c.y_train != t.y_train).all() and (c.y_val != t.y_val).all()
    assert torch.equal(c.y_train, (t.y_train + 1) % 5)
