"""RecomputeBlock: same loss and gradients as no checkpointing and as torch.utils.checkpoint."""

import pytest
import torch

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.activation_checkpointing import (
    RecomputeBlock,
    checkpoint_blocks,
    peak_rss_delta,
    recompute,
    saved_tensor_bytes,
)
from nlpcurriculum.training.trainer import seed_everything

CFG = MiniFormerConfig(d_model=16, n_layers=3, n_heads=2, max_seq_len=32, dropout=0.2)


def _run(impl, cfg=CFG, which=None):
    seed_everything(0)
    model = checkpoint_blocks(build_model(cfg), impl, which).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 32), generator=g)
    torch.manual_seed(7)
    with saved_tensor_bytes(model.parameters()) as saved:
        loss = model(x, targets=x).loss
    loss.backward()
    after = torch.rand(1)  # the global RNG must be where the plain run leaves it
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()], saved, after


@pytest.mark.parametrize("impl", ["ours", "torch"])
def test_loss_and_gradients_equal_no_checkpointing_with_dropout(impl):
    loss0, grads0, saved0, after0 = _run(None)
    loss1, grads1, saved1, after1 = _run(impl)
    assert loss1 == loss0
    for a, b in zip(grads0, grads1):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(after0, after1)  # fork_rng: the replay leaves the generator untouched
    assert saved1.activation_bytes < 0.5 * saved0.activation_bytes


def test_ours_equals_torch_checkpoint_and_some_blocks_only():
    _, ours, _, _ = _run("ours", which=[0, 2])
    _, ref, _, _ = _run("torch", which=[0, 2])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_function_gradients_match_autograd_on_a_plain_function():
    lin = torch.nn.Linear(5, 5)
    x = torch.randn(4, 5, requires_grad=True)
    fn = lambda t: torch.tanh(lin(t)) * t  # noqa: E731
    y = recompute(fn, x, lin.parameters())
    gx, gw, gb = torch.autograd.grad(y.sum(), (x, lin.weight, lin.bias))
    ex, ew, eb = torch.autograd.grad(fn(x).sum(), (x, lin.weight, lin.bias))
    for a, b in ((gx, ex), (gw, ew), (gb, eb)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(
        lambda t: RecomputeBlock.apply(lambda u: torch.sin(u) * u, t),
        (torch.randn(3, dtype=torch.float64, requires_grad=True),))


def test_only_the_block_input_is_saved():
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8, requires_grad=True)
    with saved_tensor_bytes(lin.parameters()) as saved:
        recompute(lambda t: torch.relu(lin(t)), x, lin.parameters())
    assert saved.n_tensors == 1 and saved.activation_bytes == x.numel() * 4


def test_eval_and_no_grad_use_the_plain_path_and_off_restores():
    model = checkpoint_blocks(build_model(CFG), "ours").eval()
    x = torch.randint(0, 256, (1, 8))
    with torch.no_grad():
        a = model(x).logits
    checkpoint_blocks(model, None)
    assert "forward" not in model.blocks[0].__dict__
    with torch.no_grad():
        assert torch.equal(a, model(x).logits)
    assert list(model.state_dict()) == list(build_model(CFG).state_dict())


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="impl must be one of"):
        checkpoint_blocks(build_model(CFG), "magic")
    with pytest.raises(ValueError, match="out of range"):
        checkpoint_blocks(build_model(CFG), "ours", which=[5])
    with pytest.raises(ValueError, match="blocks"):
        checkpoint_blocks(torch.nn.Linear(2, 2), "ours")


def test_peak_rss_delta_sees_an_allocation():
    delta = peak_rss_delta(lambda: torch.ones(8_000_000).sum())  # 32 MB
    assert delta is not None, "peak RSS needs Linux's /proc/self/clear_refs"
    assert delta > 16e6
