"""What every rank shares: the same global batch, disjoint shards, job checks, the reference run."""

import pytest
import torch

from nlpcurriculum.training.distributed.common import (
    DistJob,
    DistSetup,
    global_batch_starts,
    reference_losses,
    shard_starts,
)

TEXT = "It was the best of times, it was the worst of times. " * 40


def test_shards_are_disjoint_and_cover_the_global_batch():
    starts = global_batch_starts(3, 8, 1000, 16, seed=0)
    assert torch.equal(starts, global_batch_starts(3, 8, 1000, 16, seed=0))  # same on every rank
    assert not torch.equal(starts, global_batch_starts(4, 8, 1000, 16, seed=0))
    shards = [shard_starts(starts, r, 2) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == sorted(starts.tolist())
    assert torch.equal(shards[1], starts[1::2])
    with pytest.raises(ValueError, match="not divisible by world size 3"):
        shard_starts(starts, 0, 3)


def test_job_errors_name_the_key():
    with pytest.raises(ValueError, match="mode must be one of"):
        DistJob("x", "tensor", 3)
    with pytest.raises(ValueError, match="compress must be"):
        DistJob("x", "ddp", 3, compress="int8")


def test_reference_accumulation_matches_one_batch(tmp_path):
    tokens = torch.tensor(list(TEXT.encode()))
    torch.save(tokens, tmp_path / "t.pt")
    setup = DistSetup(model=dict(d_model=16, n_layers=2, n_heads=2, max_seq_len=16),
                      tokens=str(tmp_path / "t.pt"), seq_len=16, global_batch=4)
    one = reference_losses(setup, 3)
    four = reference_losses(setup, 3, micro_batches=4)
    assert max(abs(a - b) for a, b in zip(one, four)) < 1e-5
    assert one[-1] < one[0]
