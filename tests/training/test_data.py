"""TokenBatcher: windows and targets, both modes, determinism, resumable state, validation."""

import pytest
import torch

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.training.data import TokenBatcher


def test_sequential_hand_worked_example_and_epoch_wrap():
    b = TokenBatcher(torch.arange(11), seq_len=4, mode="sequential")
    assert b.n_windows == 2
    x, y = b.next_batch(1)
    assert x.tolist() == [[0, 1, 2, 3]] and y.tolist() == [[1, 2, 3, 4]]
    x, _ = b.next_batch(2)  # window 1, then wraps to window 0
    assert x.tolist() == [[4, 5, 6, 7], [0, 1, 2, 3]] and b.epoch == 1


def test_random_windows_are_in_bounds_shifted_by_one_and_seeded():
    tokens = torch.arange(100)
    x, y = TokenBatcher(tokens, 8, seed=3).next_batch(64)
    assert x.shape == (64, 8) and x.dtype == torch.int64
    assert torch.equal(y, x + 1) and int(y.max()) <= 99 and int(x.min()) >= 0
    x2, _ = TokenBatcher(tokens, 8, seed=3).next_batch(64)
    x3, _ = TokenBatcher(tokens, 8, seed=4).next_batch(64)
    assert torch.equal(x, x2) and not torch.equal(x, x3)


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_state_dict_resumes_the_exact_batch_sequence(mode):
    tokens = torch.randint(0, 50, (500,), generator=torch.Generator().manual_seed(0))
    a = TokenBatcher(tokens, 16, mode=mode, seed=1)
    for _ in range(3):
        a.next_batch(4)
    state = a.state_dict()
    expected = [a.next_batch(4)[0] for _ in range(5)]
    b = TokenBatcher(tokens, 16, mode=mode, seed=99)  # a different seed: the state must win
    b.load_state_dict(state)
    assert all(torch.equal(e, b.next_batch(4)[0]) for e in expected)


def test_eval_batches_are_fixed_and_leave_the_state_alone():
    b = TokenBatcher(torch.arange(50), 4)
    state = b.state_dict()
    first = [x for x, _ in b.eval_batches(3, 2)]
    assert [x[:, 0].tolist() for x in first] == [[0, 4, 8], [12, 16, 20]]
    assert all(torch.equal(p, q) for p, (q, _) in zip(first, b.eval_batches(3, 2)))
    assert torch.equal(b.state_dict()["generator"], state["generator"])
    assert sum(len(x) for x, _ in b.eval_batches(5, 100)) == b.n_windows  # no window twice


def test_rejects_bad_inputs_and_mismatched_state():
    with pytest.raises(ValueError, match="1-D integer"):
        TokenBatcher(torch.zeros(10), 4)
    # A user's small corpus: a one-line stage error (main_guard handles ContractError) naming keys.
    with pytest.raises(CorpusTooSmallError, match=r"too short for seq_len=4 .*splits.val_fraction"):
        TokenBatcher(torch.arange(4), 4)
    with pytest.raises(ValueError, match="mode"):
        TokenBatcher(torch.arange(40), 4, mode="shuffled")
    state = TokenBatcher(torch.arange(40), 4).state_dict()
    with pytest.raises(ValueError, match="batcher state"):
        TokenBatcher(torch.arange(41), 4).load_state_dict(state)
