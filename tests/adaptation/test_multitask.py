"""Shared encoder + heads, task sampling, joint training and the negative-transfer detector."""

import numpy as np
import pytest
import torch

from nlpcurriculum.adaptation.multitask import (
    SharedEncoder,
    build_multitask_model,
    detect_negative_transfer,
    sampling_probs,
    task_schedule,
    train_multitask,
)
from nlpcurriculum.adaptation.task_suite import classification_task, permuted_task, vocabulary
from nlpcurriculum.models.miniformer import MiniFormerConfig


def _cfg(length=8):
    return MiniFormerConfig(vocab_size=len(vocabulary()), d_model=16, n_layers=1, n_heads=2,
                            max_seq_len=length, causal=False)


def test_sampling_probs_worked_example():
    assert sampling_probs([4000, 1000], "proportional").tolist() == pytest.approx([0.8, 0.2])
    assert sampling_probs([4000, 1000], "temperature", 2.0).tolist() == pytest.approx([2 / 3, 1 / 3])
    assert sampling_probs([4000, 1000], "round_robin").tolist() == [0.5, 0.5]
    with pytest.raises(ValueError):
        sampling_probs([1, 2], "uniformish")


def test_task_schedule_round_robin_and_sampled_shares():
    assert task_schedule([10, 1, 1], "round_robin", 6, seed=0) == [0, 1, 2, 0, 1, 2]
    s = np.array(task_schedule([4000, 1000], "proportional", 4000, seed=0))
    assert abs((s == 1).mean() - 0.2) < 0.03


def test_encoder_is_bidirectional_and_rejects_a_causal_config():
    torch.manual_seed(0)
    enc = SharedEncoder(_cfg())
    x = torch.randint(0, 50, (1, 8))
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 50
    # the first position's representation depends on the last token (pooled output changes too)
    h1 = enc.blocks[0](enc.position.embed(enc.tok_emb(x), torch.arange(8)), position=enc.position,
                       positions=torch.arange(8))[0][0, 0]
    h2 = enc.blocks[0](enc.position.embed(enc.tok_emb(y), torch.arange(8)), position=enc.position,
                       positions=torch.arange(8))[0][0, 0]
    assert not torch.allclose(h1, h2)
    assert enc(x).shape == (1, 16)
    with pytest.raises(ValueError):
        SharedEncoder(MiniFormerConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, causal=True))


def test_tasks_sharing_a_head_get_one_head():
    t = classification_task("topic", "topic", n_train=20, n_val=10, length=8, signal=0.3, seed=0)
    s = classification_task("sent", "sentiment", n_train=20, n_val=10, length=8, signal=0.3, seed=1)
    m = build_multitask_model(_cfg(), [t, permuted_task(t, "shifted"), s], seed=0)
    assert set(m.heads) == {"topic", "sent"}


def test_single_task_joint_sum_equals_plain_training():
    """A joint 'sum' run with one task is ordinary training: the same model as loss.backward + Adam."""
    t = classification_task("topic", "topic", n_train=64, n_val=16, length=8, signal=0.3, seed=0)
    a = build_multitask_model(_cfg(), [t], seed=3)
    b = build_multitask_model(_cfg(), [t], seed=3)
    train_multitask(a, [t], method="sum", steps_per_task=5, batch_size=8, lr=1e-2, seed=0, eval_every=5)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    for _ in range(5):
        i = torch.randint(64, (8,), generator=gen)
        loss = torch.nn.functional.cross_entropy(b(t.x_train[i], "topic"), t.y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def _accuracies(tasks, method, seeds, steps=120):
    out = {t.name: [] for t in tasks}
    for seed in seeds:
        m = build_multitask_model(_cfg(), tasks, seed)
        r = train_multitask(m, tasks, method=method, steps_per_task=steps, batch_size=32, lr=3e-3,
                            seed=seed, eval_every=steps)
        for k, v in r.final_accuracy.items():
            out[k].append(v)
    return out, r


def test_detector_flags_the_built_conflict_and_not_the_compatible_pair():
    """Positive control: topic with its label-shifted copy through one head loses accuracy against
    single-task training, and the detector flags it; negative control: topic with sentiment (a
    head each) is not flagged. A detector that never (or always) flags fails one of the two."""
    seeds = [0, 1, 2]
    topic = classification_task("topic", "topic", n_train=600, n_val=200, length=8, signal=0.4, seed=5)
    sent = classification_task("sentiment", "sentiment", n_train=600, n_val=200, length=8, signal=0.4, seed=6)
    shifted = permuted_task(topic, "shifted")
    single = {t.name: _accuracies([t], "sum", seeds)[0][t.name] for t in (topic, sent)}
    conflict, run = _accuracies([topic, shifted], "sum", seeds)
    compatible, _ = _accuracies([topic, sent], "sum", seeds)
    flagged = detect_negative_transfer({"topic": conflict["topic"]}, single, margin=0.05)
    assert flagged["topic"].passed, flagged["topic"]
    clean = detect_negative_transfer(compatible, single, margin=0.05)
    assert not any(f.passed for f in clean.values()), clean
    assert run.cosines["topic|shifted"] < 0  # the conflict's gradients oppose
    # mutation: the detector fed the same numbers for multi and single never flags
    assert not detect_negative_transfer(single, single, margin=0.05)["topic"].passed


@pytest.mark.parametrize("method", ["pcgrad", "gradnorm", "uncertainty"])
def test_balanced_methods_train_and_report_weights(method):
    topic = classification_task("topic", "topic", n_train=200, n_val=50, length=8, signal=0.4, seed=5)
    sent = classification_task("sentiment", "sentiment", n_train=200, n_val=50, length=8, signal=0.4, seed=6)
    m = build_multitask_model(_cfg(), [topic, sent], 0)
    r = train_multitask(m, [topic, sent], method=method, steps_per_task=40, batch_size=16, lr=3e-3,
                        seed=0, eval_every=20)
    assert [s for s, _ in r.curves["topic"]] == [0, 20, 40]
    assert set(r.weights) == {"topic", "sentiment"} and all(w > 0 for w in r.weights.values())
    assert len(r.cosine_curves["topic|sentiment"]) == 2
    if method == "gradnorm":
        assert sum(r.weights.values()) == pytest.approx(2.0, abs=1e-4)
    assert r.final_accuracy["topic"] > 0.3  # above chance (0.2)
