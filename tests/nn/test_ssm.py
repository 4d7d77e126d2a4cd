"""The selective SSM: parallel scan = recurrence = step-by-step generation, and = mambapy's
MambaBlock given the same weights."""

import pytest
import torch

from nlpcurriculum.nn.ssm import SelectiveSSM, SSMConfig, parallel_scan, sequential_scan


@pytest.mark.parametrize("L", [1, 2, 7, 64, 100])
def test_parallel_scan_equals_the_recurrence(L):
    g = torch.Generator().manual_seed(L)
    a = torch.rand(2, L, 3, 4, generator=g, dtype=torch.float64)
    b = torch.randn(2, L, 3, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(parallel_scan(a, b), sequential_scan(a, b), atol=1e-12)


def test_the_scan_forms_of_the_layer_agree_and_steps_reproduce_the_sequence():
    torch.manual_seed(0)
    layer = SelectiveSSM(SSMConfig(d_model=16, d_state=8, d_conv=4))
    u = torch.randn(2, 50, 16)
    with torch.no_grad():
        parallel = layer(u)
        sequential = layer(u, scan=sequential_scan)
        state = layer.initial_state(2)
        steps = []
        for t in range(u.shape[1]):
            y, state = layer.step(u[:, t], state)
            steps.append(y)
    assert (parallel - sequential).abs().max().item() < 1e-5
    assert (torch.stack(steps, dim=1) - sequential).abs().max().item() < 1e-5


def test_a_token_changes_only_later_outputs():
    torch.manual_seed(1)
    layer = SelectiveSSM(SSMConfig(d_model=8, d_state=4))
    u = torch.randn(1, 20, 8)
    v = u.clone()
    v[:, 10] += 1.0
    with torch.no_grad():
        a, b = layer(u), layer(v)
    assert torch.equal(a[:, :10], b[:, :10])
    assert (a[:, 10:] - b[:, 10:]).abs().max() > 1e-4


def test_equals_mambapy_given_the_same_weights():
    from mambapy import mamba
    torch.manual_seed(2)
    ours = SelectiveSSM(SSMConfig(d_model=32, d_state=16, expand=2, d_conv=4))
    theirs = mamba.MambaBlock(mamba.MambaConfig(d_model=32, n_layers=1, d_state=16, expand_factor=2, d_conv=4))
    theirs.load_state_dict(ours.state_dict())
    u = torch.randn(2, 40, 32)
    with torch.no_grad():
        assert (ours(u) - theirs(u)).abs().max().item() < 1e-5
        state = ours.initial_state(2)
        cache = (None, torch.zeros(2, 64, 3))
        y_ours, _ = ours.step(u[:, 0], state)
        y_theirs, _ = theirs.step(u[:, 0], cache)
        assert (y_ours - y_theirs).abs().max().item() < 1e-5


def test_the_time_invariant_ablation_uses_one_delta_b_c_for_every_position():
    torch.manual_seed(3)
    layer = SelectiveSSM(SSMConfig(d_model=8, d_state=4, selective=False))
    x = torch.randn(2, 5, 16)
    delta, B, C = layer._selection(x)
    assert torch.equal(delta[0, 0], delta[1, 4]) and torch.equal(B[0, 1], B[1, 3])
    u = torch.randn(1, 30, 8)
    with torch.no_grad():
        state, steps = layer.initial_state(1), []
        for t in range(30):
            y, state = layer.step(u[:, t], state)
            steps.append(y)
        assert (torch.stack(steps, 1) - layer(u)).abs().max().item() < 1e-5
