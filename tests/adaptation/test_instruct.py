"""Instruction tuning: the example layout, response masking (no gradient through the prompt's
targets), padded batches that change nothing, response loss and batched greedy decoding."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from nlpcurriculum.adaptation.instruct import (
    IGNORE,
    InstructionBatcher,
    InstructionExample,
    encode_example,
    greedy_responses,
    response_nll,
    shifted,
)
from nlpcurriculum.decoding.generate import generate
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.trainer import lm_loss, seed_everything

V, EOS = 40, 0


def _model(T=32):
    seed_everything(0)
    return build_model(MiniFormerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2,
                                        max_seq_len=T)).eval()


def _examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = rng.integers(1, V, size=int(rng.integers(3, 9))).tolist()
        r = rng.integers(1, V, size=int(rng.integers(1, 5))).tolist()
        out.append(InstructionExample(tuple(p + r + [EOS]), len(p)))
    return out


def test_the_worked_example():
    codes = {"P\n\n": [5, 6, 7], "R": [8, 9]}
    ex = encode_example(lambda text: codes[text], "P", "R", eos=0)
    assert ex.ids == (5, 6, 7, 8, 9, 0) and ex.n_prompt == 3 and ex.prompt == [5, 6, 7]
    assert shifted(ex, masked=True) == ([5, 6, 7, 8, 9], [IGNORE, IGNORE, 8, 9, 0])
    assert shifted(ex, masked=False) == ([5, 6, 7, 8, 9], [6, 7, 8, 9, 0])
    with pytest.raises(ValueError, match="n_prompt"):
        InstructionExample((1, 2), 2)  # no response


def test_masked_positions_get_no_gradient_and_the_loss_is_the_mean_over_response_tokens():
    model = _model().train()
    x, y = InstructionBatcher(_examples(), masked=True, pad_id=EOS).eval_batches(6, 1).__next__()
    out = model(x, targets=y)  # the logits path, to read the gradient at every position
    out.logits.retain_grad()
    out.loss.backward()
    grad = out.logits.grad  # (B, L, V)
    scored = y != IGNORE  # (B, L): response targets only
    assert scored.any() and (~scored).any()
    assert torch.all(grad[~scored] == 0)  # prompt and padding positions: exactly no gradient
    assert torch.all(grad[scored].abs().sum(-1) > 0)
    by_hand = F.cross_entropy(out.logits.detach()[scored], y[scored])  # mean over response tokens
    assert math.isclose(float(out.loss.detach()), float(by_hand), rel_tol=1e-6)


def test_the_trainers_fused_loss_gives_the_response_only_gradient_and_unmasked_differs():
    """The trainer's loss (fused head + cross-entropy) on masked targets has the same parameter
    gradients as the loss computed by hand on the response positions alone (1e-5)."""
    model = _model().train()
    exs = _examples()
    masked = next(InstructionBatcher(exs, True, EOS).eval_batches(6, 1))
    unmasked = next(InstructionBatcher(exs, False, EOS).eval_batches(6, 1))
    assert torch.equal(masked[0], unmasked[0])  # the same inputs, only the targets differ

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    x, y = masked
    g_trainer = grads(lm_loss(model, masked))
    logits = model(x).logits
    keep = y != IGNORE
    g_hand = grads(F.cross_entropy(logits[keep], y[keep]))
    torch.testing.assert_close(g_trainer, g_hand, atol=1e-5, rtol=1e-4)
    g_unmasked = grads(lm_loss(model, unmasked))
    assert (g_unmasked - g_trainer).abs().max() > 1e-3  # the ablation trains on the prompts too


def test_padding_changes_no_real_position_and_the_batcher_resumes_exactly():
    model = _model()
    exs = _examples()
    x, y = next(InstructionBatcher(exs, True, EOS).eval_batches(6, 1))  # (6, L), padded
    logits = model(x).logits
    for i, ex in enumerate(exs):
        xi, yi = shifted(ex, True)
        alone = model(torch.tensor([xi])).logits[0]
        torch.testing.assert_close(logits[i, : len(xi)], alone, atol=1e-5, rtol=1e-5)
        assert y[i, : len(yi)].tolist() == yi and torch.all(y[i, len(yi):] == IGNORE)
    a = InstructionBatcher(exs, True, EOS, seed=3)
    a.next_batch(4)
    b = InstructionBatcher(exs, True, EOS, seed=99)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(u, v) for u, v in zip(a.next_batch(4), b.next_batch(4)))
    with pytest.raises(ValueError, match="batcher state"):
        InstructionBatcher(exs, False, EOS).load_state_dict(a.state_dict())


def test_response_nll_is_the_mean_loss_over_each_examples_response_tokens():
    model = _model()
    exs = _examples()
    got = response_nll(model, exs, EOS, batch_size=4)  # two batches, padded differently
    for value, ex in zip(got, exs):
        xi, yi = shifted(ex, True)
        logits = model(torch.tensor([xi])).logits[0]
        keep = torch.tensor(yi) != IGNORE
        want = F.cross_entropy(logits[keep], torch.tensor(yi)[keep])
        assert math.isclose(value, float(want), rel_tol=1e-5)


def test_greedy_responses_equal_one_prompt_at_a_time_and_stop_before_eos():
    model = _model(T=16)
    prompts = [e.prompt for e in _examples(8, seed=1)] + [list(range(1, 17))]  # the last fills the window
    got = greedy_responses(model, prompts, max_new_tokens=5, eos=EOS)
    assert got[-1] == []  # no room left to answer
    for p, g in zip(prompts[:-1], got[:-1]):
        budget = min(5, 16 - len(p))
        one = generate(model, p, budget, stop_id=EOS)
        assert g == (one[:-1] if one and one[-1] == EOS else one)
        assert EOS not in g
    # an eos the model produces at once gives the empty response (eos itself is not returned)
    first = generate(model, prompts[0], 1)[0]
    assert greedy_responses(model, prompts[:1], 5, eos=first) == [[]]
