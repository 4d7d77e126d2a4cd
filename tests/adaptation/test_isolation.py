"""Per-task adapters, embedding deltas and heads: identity at the start, routed by task id."""

import torch
from torch import nn

from nlpcurriculum.adaptation.isolation import TaskAdapter, TaskEmbedding, TaskHeads, freeze, task_parameters


def test_a_new_adapter_is_the_identity_and_learns_away_from_it():
    torch.manual_seed(0)
    adapter = TaskAdapter(8, 4)
    h = torch.randn(5, 8)
    torch.testing.assert_close(adapter(h), h)
    adapter.up.weight.data.normal_()
    assert (adapter(h) - h).abs().max() > 1e-3
    torch.testing.assert_close(TaskAdapter(8, 0)(h), h)


def test_task_embedding_adds_the_chosen_tasks_delta_only():
    torch.manual_seed(0)
    base = nn.Embedding(6, 4)
    emb = TaskEmbedding(base, n_tasks=3)
    ids = torch.tensor([[0, 5, 2]])
    torch.testing.assert_close(emb(ids), base(ids))  # deltas start at zero
    emb.deltas[1].data[5] = 1.0
    emb.task = 1
    torch.testing.assert_close(emb(ids)[0, 1], base(ids)[0, 1] + 1.0)
    torch.testing.assert_close(emb(ids)[0, [0, 2]], base(ids)[0, [0, 2]])
    emb.task = 2
    torch.testing.assert_close(emb(ids), base(ids))


def test_heads_route_each_row_to_its_task_path():
    torch.manual_seed(0)
    heads = TaskHeads(3, 4, 2, bottleneck=2)
    h = torch.randn(6, 4)
    tasks = torch.tensor([0, 2, 1, 2, 0, 1])
    out = heads(h, tasks)
    for i, t in enumerate(tasks.tolist()):
        torch.testing.assert_close(out[i], heads.paths[t](h[i:i + 1])[0])
    shared = TaskHeads(1, 4, 2)
    torch.testing.assert_close(shared(h, tasks), shared.paths[0](h))


def test_task_parameters_and_freeze():
    model = nn.ModuleDict({"emb": TaskEmbedding(nn.Embedding(5, 3), 2), "heads": TaskHeads(2, 3, 2, 2)})
    own = task_parameters(model, 1)
    assert own[0] is model["emb"].deltas[1]
    assert {id(p) for p in own[1:]} == {id(p) for p in model["heads"].paths[1].parameters()}
    freeze(model)
    assert not any(p.requires_grad for p in model.parameters())
