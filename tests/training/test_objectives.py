"""Pretraining objectives: the BERT corruption's statistics, the prefix-LM mask, the losses."""

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.objectives import (
    MASK_ID,
    mlm_corrupt,
    mlm_loss,
    objective_loss,
    prefix_lm_loss,
    prefix_lm_mask,
    sample_prefix_lengths,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mlm_corruption_is_15_percent_then_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (200, 500), generator=g)
    c = mlm_corrupt(ids, g)
    n = c.selected.sum().item()
    assert abs(n / ids.numel() - 0.15) < 0.005
    shares = [((c.kind == k).sum().item() / n) for k in (1, 2, 3)]
    assert abs(shares[0] - 0.8) < 0.01 and abs(shares[1] - 0.1) < 0.01 and abs(shares[2] - 0.1) < 0.01
    # loss only on selected positions, the original token as target
    assert torch.equal(c.targets[c.selected], ids[c.selected])
    assert (c.targets[~c.selected] == -100).all()
    # [MASK] exactly at kind 1; unselected and "unchanged" positions keep their token
    assert torch.equal(c.inputs == MASK_ID, c.kind == 1)
    keep = (c.kind == 0) | (c.kind == 3)
    assert torch.equal(c.inputs[keep], ids[keep])
    assert (c.inputs[c.kind == 2] < 256).all()


def test_mlm_corruption_selects_at_least_one_position_per_window():
    g = torch.Generator().manual_seed(1)
    c = mlm_corrupt(torch.zeros(50, 3, dtype=torch.long), g, mask_prob=0.01)
    assert c.selected.any(dim=1).all()


def test_mlm_corruption_rejects_bad_rates():
    g = torch.Generator()
    with pytest.raises(ValueError, match="mask_prob"):
        mlm_corrupt(torch.zeros(2, 4, dtype=torch.long), g, mask_prob=0.0)
    with pytest.raises(ValueError, match="p_mask"):
        mlm_corrupt(torch.zeros(2, 4, dtype=torch.long), g, p_mask=0.9, p_random=0.2)


def test_prefix_mask_worked_example():
    m = prefix_lm_mask(torch.tensor([2, 0]), 4)
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(m[0], expected)
    assert torch.equal(m[1], torch.ones(4, 4, dtype=torch.bool).tril())  # P = 0: causal


def _model(**kw):
    torch.manual_seed(0)
    return build_model(MiniFormerConfig(vocab_size=257, d_model=16, n_layers=2, n_heads=2,
                                        max_seq_len=16, **kw)).eval()


@pytest.mark.parametrize("position", ["learned", "rope", "alibi"])
def test_prefix_lm_is_bidirectional_inside_the_prefix_and_causal_after(position):
    model = _model(position=position)
    T, P = 10, 4
    x = torch.randint(0, 256, (1, T), generator=torch.Generator().manual_seed(2))
    mask = prefix_lm_mask(torch.tensor([P]), T)
    base = model(x, attn_mask=mask).logits[0]
    # a change after the prefix (position 7) leaves every earlier output unchanged
    x2 = x.clone()
    x2[0, 7] = (x2[0, 7] + 1) % 256
    out = model(x2, attn_mask=mask).logits[0]
    assert torch.allclose(out[:7], base[:7], atol=1e-6)
    assert not torch.allclose(out[7], base[7], atol=1e-4)
    # a change at the prefix's last position (3) reaches position 0: bidirectional
    x3 = x.clone()
    x3[0, 3] = (x3[0, 3] + 1) % 256
    out = model(x3, attn_mask=mask).logits[0]
    assert not torch.allclose(out[0], base[0], atol=1e-4)
    # ... which a plain causal model would not allow
    assert torch.allclose(model(x3).logits[0, :3], model(x).logits[0, :3], atol=1e-6)


def test_prefix_mask_with_no_prefix_equals_the_causal_default():
    model = _model()
    x = torch.randint(0, 256, (3, 12))
    masked = model(x, attn_mask=prefix_lm_mask(torch.zeros(3, dtype=torch.long), 12)).logits
    assert torch.allclose(masked, model(x).logits, atol=1e-5)


def test_prefix_lm_loss_scores_only_the_continuation():
    model = _model()
    x = torch.randint(0, 256, (2, 8))
    y = torch.randint(0, 256, (2, 8))
    P = torch.tensor([3, 5])
    loss = prefix_lm_loss(model, x, y, P)
    logits = model(x, attn_mask=prefix_lm_mask(P, 8)).logits
    parts = [F.cross_entropy(logits[b, P[b] - 1:], y[b, P[b] - 1:], reduction="sum") for b in range(2)]
    n = sum(8 - (int(p) - 1) for p in P)
    assert torch.allclose(loss, sum(parts) / n, atol=1e-5)


def test_prefix_lengths_leave_a_prefix_and_a_continuation():
    p = sample_prefix_lengths(1000, 6, torch.Generator().manual_seed(0))
    assert p.min() == 1 and p.max() == 5
    with pytest.raises(ValueError, match="T=1"):
        sample_prefix_lengths(2, 1, torch.Generator())


def test_mlm_loss_is_finite_and_objectives_are_checked():
    model = _model(causal=False)
    x = torch.randint(0, 256, (4, 12))
    assert torch.isfinite(mlm_loss(model, x, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="objective"):
        objective_loss("span", torch.Generator())
