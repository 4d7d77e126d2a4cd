"""The continual-learning loop, its strategies and the forgetting metrics on a tiny model."""

import numpy as np
import pytest
import torch
from torch import nn

from nlpcurriculum.adaptation.continual import (
    ContinualClassifier, EWCStrategy, Isolation, Naive, Replay, Task, TrainConfig, accuracy,
    average_forgetting, final_average_accuracy, forgetting, plasticity, run_sequence, train_joint,
)
from nlpcurriculum.adaptation.ewc import EWC
from nlpcurriculum.adaptation.isolation import TaskEmbedding, TaskHeads
from nlpcurriculum.adaptation.replay import ReservoirBuffer

V, L, C = 8, 5, 16


class _BagTrunk(nn.Module):
    """Embedding -> MLP per position: ``(B, L)`` -> ``(B, L, C)``."""

    def __init__(self, n_ids: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(n_ids, C)
        self.mlp = nn.Sequential(nn.Linear(C, C), nn.ReLU(), nn.Linear(C, C))

    def forward(self, x):
        return self.mlp(self.tok_emb(x))


def _tasks(n: int = 3) -> list[Task]:
    """Task t: label 1 when the sum of the words' task-t signs is positive."""
    g = torch.Generator().manual_seed(0)
    signs = torch.stack([torch.tensor([1.0, -1.0] * (V // 2))[torch.randperm(V, generator=g)] for _ in range(n)])

    def sampler(t):
        def sample(k, gen):
            w = torch.randint(0, V, (k, L), generator=gen)
            return torch.cat([torch.full((k, 1), V + t), w], 1), (signs[t][w].sum(1) > 0).long()
        return sample

    out = []
    for t in range(n):
        x, y = sampler(t)(200, torch.Generator().manual_seed(99 + t))
        out.append(Task(t, sampler(t), x, y))
    return out


def _model(n_tasks: int = 3, isolated: bool = False) -> ContinualClassifier:
    torch.manual_seed(0)
    trunk = _BagTrunk(V + n_tasks)
    if isolated:
        trunk.tok_emb = TaskEmbedding(trunk.tok_emb, n_tasks)
    return ContinualClassifier(trunk, TaskHeads(n_tasks, C, 2, 4 if isolated else 0))


CFG = TrainConfig(steps=40, batch_size=32, lr=0.01)


def test_docstring_example_of_the_metrics():
    R = np.array([[0.9, 0.5], [0.6, 0.8]])
    assert forgetting(R, 0, 1) == pytest.approx(0.3)
    assert average_forgetting(R) == pytest.approx(0.3)
    assert final_average_accuracy(R) == pytest.approx(0.7)
    assert plasticity(R) == pytest.approx(0.85)
    R3 = np.array([[0.7, 0, 0], [0.9, 0.8, 0], [0.6, 0.5, 1.0]])
    assert forgetting(R3, 0, 2) == pytest.approx(0.3)  # from the best, not the first
    with pytest.raises(ValueError):
        forgetting(R3, 2, 2)


def test_naive_learns_each_task_then_forgets_and_isolation_keeps_task_zero_exactly():
    tasks = _tasks()
    naive = run_sequence(_model(), tasks, Naive(), CFG, torch.Generator().manual_seed(1))
    assert naive.shape == (3, 3) and np.diag(naive).min() > 0.8
    iso_model = _model(isolated=True)
    iso = run_sequence(iso_model, tasks, Isolation(), CFG, torch.Generator().manual_seed(1))
    assert np.all(iso[:, 0] == iso[0, 0])  # task 0's path is frozen
    assert iso[1, 1] == iso[2, 1]          # and so is task 1's, after it
    trained = [p for p in iso_model.trunk.parameters() if p.requires_grad]
    assert trained == [iso_model.trunk.tok_emb.deltas[2]]


def test_ewc_with_a_huge_lambda_pins_the_weights_and_zero_lambda_is_naive():
    tasks = _tasks(2)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    naive = run_sequence(_model(2), tasks, Naive(), CFG, gen())
    zero = run_sequence(_model(2), tasks, EWCStrategy(EWC(0.0), samples=20), CFG, gen())
    np.testing.assert_array_equal(zero, naive)  # the Fisher's draws leave the training stream alone
    pinned = _model(2)
    strategy = EWCStrategy(EWC(1e6), samples=20)
    R = run_sequence(pinned, tasks, strategy, CFG, gen())
    free = _model(2)
    run_sequence(free, tasks, Naive(), CFG, gen())
    # the Fisher-weighted distance from task 0's solution, (2 / lambda) x penalty
    assert strategy.ewc.penalty(dict(pinned.named_parameters())) < 0.1 * strategy.ewc.penalty(dict(free.named_parameters()))
    assert forgetting(R, 0, 1) < forgetting(naive, 0, 1)


def test_replay_joins_stored_examples_to_each_batch():
    replay = Replay(ReservoirBuffer(50, seed=0), replay_batch=8)
    x, y, t = torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)
    bx, _, _ = replay.batch(x, y, t)
    assert bx.shape[0] == 4  # the buffer was empty
    bx, by, bt = replay.batch(x + 1, y + 1, t + 1)
    assert bx.shape[0] == 8 and (bt[4:] == 0).all() and (bt[:4] == 1).all()
    assert replay.buffer.seen == 8


def test_replay_forgets_less_than_naive_and_joint_fits_all_tasks():
    tasks = _tasks()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    naive = run_sequence(_model(), tasks, Naive(), CFG, gen())
    replay = run_sequence(_model(), tasks, Replay(ReservoirBuffer(200, 0), 32), CFG, gen())
    assert average_forgetting(replay) < average_forgetting(naive)
    joint = train_joint(_model(), tasks, TrainConfig(120, 32, 0.01), gen())
    assert joint.mean() > final_average_accuracy(naive)
    assert accuracy(_model(), tasks[0]) < 0.8  # untrained: near chance


def test_isolation_needs_a_path_per_task():
    with pytest.raises(ValueError, match="path per task"):
        Isolation().trainable(ContinualClassifier(_BagTrunk(V + 1), TaskHeads(1, C, 2)), 0)
