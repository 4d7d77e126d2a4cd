"""The flash / sparse attention experiment at toy sizes: invariants hold, the findings are built
from measurements (n rounds, timed), and the config refuses what the findings cannot use."""

import pytest

from nlpcurriculum.experiments.flash_attention_and_sparse_attention import (
    ITEMS,
    FlashAttentionChecks,
    FlashAttentionConfig,
    plain_attention,
    run,
)


def test_run_gives_three_items_with_invariants_held_and_timed_findings():
    cfg = FlashAttentionConfig(heads=1, head_dim=16, parity_lengths=[64], lengths=[128, 256],
                               memory_length=256, sparse_length=256, sparse_block=32, rounds=2,
                               checks=FlashAttentionChecks())
    results = run(cfg)
    assert [r.item for r in results] == list(ITEMS)
    for r in results:
        invariants = [f for f in r.findings if f.kind == "invariant"]
        assert all(f.passed for f in invariants), [f for f in invariants if not f.passed]
        assert all(f.timed for f in r.findings if f.kind == "finding")
        assert not set(r.metrics) & set(r.timings)
    sparse = results[1]
    assert sparse.metrics["live_tiles.dense"] == 8 * 9 / 2         # 8 blocks, causal
    assert sparse.metrics["live_tiles.local_w1"] == 8 + 7
    speedup = next(f for f in sparse.findings if f.metric.startswith("speedup"))
    assert speedup.n == 2
    bench = results[2]
    assert set(k.split(".")[1] for k in bench.timings if k.startswith("seconds.")) == {
        "plain", "recompute", "tiled", "fused"}


def test_plain_attention_masks_the_future():
    import torch

    q = torch.randn(1, 1, 5, 4)
    v = torch.randn(1, 1, 5, 4)
    out = plain_attention(q, q, v, causal=True)
    assert torch.allclose(out[..., 0, :], v[..., 0, :])  # the first query sees only the first value


@pytest.mark.parametrize("bad, match", [(dict(lengths=[256]), "at least two"),
                                        (dict(rounds=1), "rounds"),
                                        (dict(sparse_length=100, sparse_block=64), "4 blocks")])
def test_config_refuses_what_the_findings_cannot_use(bad, match):
    with pytest.raises(ValueError, match=match):
        FlashAttentionConfig(**bad)
