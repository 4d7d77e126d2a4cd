"""Distillation losses: hand-worked KL, parity with torch's kl_div, the loss mix."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.compression.distill import distill_loss, kl_to_target
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.training.data import TokenBatcher


def lm(seed: int, vocab: int = 50, layers: int = 2, init_std: float = 0.3):
    torch.manual_seed(seed)
    return build_model(llama_like("tiny", vocab_size=vocab, max_seq_len=32, n_layers=layers,
                                  init_std=init_std)).eval()


class _Fixed(torch.nn.Module):
    """A 'model' whose next-token distribution is ``probs`` at every position."""

    def __init__(self, probs):
        super().__init__()
        self.log_probs = torch.tensor(probs).log()

    def forward(self, x, targets=None):
        logits = self.log_probs.expand(*x.shape, -1)  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return type("Out", (), {"logits": logits, "loss": loss})()


def test_kl_to_target_hand_worked_example():
    # p = (1/2, 1/2), q = (3/4, 1/4): KL(p || q) = 1/2 log(4/3) per token (the module docstring)
    target, draft = _Fixed([0.5, 0.5]), _Fixed([0.75, 0.25])
    data = TokenBatcher(torch.tensor([0, 1] * 20), 4, mode="sequential")
    assert kl_to_target(target, draft, data, 2, 3) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert kl_to_target(target, target, data, 2, 3) == pytest.approx(0.0, abs=1e-7)
    # distill_loss at weight 1 is the same KL; at weight w the mix (1 - w) CE + w KL
    x, y = torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long)
    assert float(distill_loss(target, 1.0)(draft, (x, y))) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    ce = -math.log(0.25)  # the draft gives the target id 1 probability 1/4
    assert float(distill_loss(target, 0.25)(draft, (x, y))) == pytest.approx(
        0.75 * ce + 0.25 * 0.5 * math.log(4 / 3), rel=1e-6)


@torch.no_grad()
def test_distill_loss_mixes_cross_entropy_and_kl_and_matches_torch_kl_div():
    target, draft = lm(0), lm(1, layers=1)
    x = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    ce = draft(x, targets=y).loss
    torch.testing.assert_close(distill_loss(target, 0.0)(draft, (x, y)), ce)
    assert float(distill_loss(target, 1.0)(target, (x, y))) == pytest.approx(0.0, abs=1e-5)
    kl = float(distill_loss(target, 1.0)(draft, (x, y)))
    # parity: torch's kl_div on probabilities (not log-targets), mean over the 12 tokens
    p = F.softmax(target(x).logits, -1).flatten(0, 1)  # (12, V)
    q_log = F.log_softmax(draft(x).logits, -1).flatten(0, 1)
    ref = float(F.kl_div(q_log, p, reduction="sum")) / 12
    assert kl > 0 and kl == pytest.approx(ref, rel=1e-5)
    # and the definition, sum_x p (log p - log q), by hand
    assert kl == pytest.approx(float((p * (p.log() - q_log)).sum()) / 12, rel=1e-5)
    assert float(distill_loss(target, 0.25)(draft, (x, y))) == pytest.approx(0.75 * float(ce) + 0.25 * kl, rel=1e-5)


def test_kl_to_target_is_zero_for_the_target_itself():
    target, draft = lm(0), lm(1, layers=1)
    data = TokenBatcher(torch.arange(200) % 50, 8, mode="sequential")
    assert kl_to_target(target, target, data, 4, 2) == pytest.approx(0.0, abs=1e-5)
    assert kl_to_target(target, draft, data, 4, 2) > 0.01
