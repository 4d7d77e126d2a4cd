"""The fused loss against the plain path (F.cross_entropy of the full logits): loss and both gradients."""

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.nn.fast.fused_loss import linear_cross_entropy
from nlpcurriculum.training.trainer import lm_loss


def _reference(h, w, t, ignore_index=-100):
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = F.cross_entropy(h @ w.t(), t, ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk_rows", [None, 7, 64])
def test_loss_and_gradients_match_the_full_logits(chunk_rows):
    torch.manual_seed(0)
    h, w = torch.randn(50, 16), torch.randn(97, 16)
    t = torch.randint(0, 97, (50,))
    t[[3, 20, 49]] = -100  # ignored rows, one of them in the last (partial) chunk
    ref_loss, ref_dh, ref_dw = _reference(h, w, t)
    hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = linear_cross_entropy(hh, ww, t, chunk_rows=chunk_rows)
    (2.5 * loss).backward()  # the incoming gradient is applied
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(hh.grad, 2.5 * ref_dh)
    torch.testing.assert_close(ww.grad, 2.5 * ref_dw)


def test_gradcheck_in_double():
    torch.manual_seed(0)
    h = torch.randn(6, 4, dtype=torch.double, requires_grad=True)
    w = torch.randn(9, 4, dtype=torch.double, requires_grad=True)
    t = torch.tensor([1, 8, -100, 0, 4, 4])
    assert torch.autograd.gradcheck(lambda a, b: linear_cross_entropy(a, b, t, chunk_rows=4), (h, w))


def test_frozen_head_gets_no_gradient_and_no_grad_path_matches():
    torch.manual_seed(0)
    h, w, t = torch.randn(20, 8), torch.randn(30, 8), torch.randint(0, 30, (20,))
    hh = h.clone().requires_grad_()
    linear_cross_entropy(hh, w, t).backward()  # w does not require grad (a frozen head)
    torch.testing.assert_close(hh.grad, _reference(h, w, t)[1])
    expected = _reference(h, w, t)[0]
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, t, chunk_rows=3), expected)
    all_ignored = torch.full((20,), -100)
    assert torch.isnan(linear_cross_entropy(h, w, all_ignored))  # as F.cross_entropy: 0 / 0


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="expected h"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(10, 7), torch.zeros(4, dtype=torch.long))


def test_model_loss_without_logits_trains_like_the_plain_loss():
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=64, max_seq_len=16)).train()
    x, y = torch.randint(0, 64, (3, 16)), torch.randint(0, 64, (3, 16))
    plain = model(x, targets=y)
    plain.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fused = model(x, targets=y, return_logits=False)
    assert fused.logits is None and plain.logits.shape == (3, 16, 64)
    torch.testing.assert_close(fused.loss, plain.loss)
    fused.loss.backward()
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(lm_loss(model, (x, y)), plain.loss)  # the trainer's loss is fused
