"""KVCache bookkeeping: appends along time, per layer, counts bytes, rejects misfits."""

import pytest
import torch

from nlpcurriculum.nn.kv_cache import KVCache


def test_update_appends_along_the_time_axis_per_layer():
    cache = KVCache(n_layers=2)
    k1, v1 = torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 3, 4)
    k_all, v_all = cache.update(0, k1, v1)
    assert k_all.shape == (1, 2, 3, 4) and cache.seq_len(0) == 3 and cache.seq_len(1) == 0
    k_all, v_all = cache.update(0, torch.full((1, 2, 1, 4), 5.0), torch.full((1, 2, 1, 4), 6.0))
    assert k_all.shape == (1, 2, 4, 4)
    assert torch.equal(k_all[:, :, :3], k1) and float(k_all[0, 0, 3, 0]) == 5.0
    assert torch.equal(v_all[:, :, :3], v1) and float(v_all[0, 0, 3, 0]) == 6.0


def test_memory_bytes_counts_keys_and_values_and_reset_clears():
    cache = KVCache(n_layers=2)
    for layer in range(2):
        cache.update(layer, torch.zeros(2, 4, 5, 8), torch.zeros(2, 4, 5, 8))
    assert cache.memory_bytes() == 2 * 2 * (2 * 4 * 5 * 8) * 4  # layers x (k, v) x elements x fp32
    cache.reset()
    assert cache.memory_bytes() == 0 and cache.seq_len(0) == 0


def test_update_rejects_misfits():
    cache = KVCache(n_layers=1)
    with pytest.raises(IndexError):
        cache.update(1, torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
    with pytest.raises(ValueError, match="both"):
        cache.update(0, torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 3))
    cache.update(0, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    with pytest.raises(ValueError, match="extend"):
        cache.update(0, torch.zeros(1, 3, 1, 4), torch.zeros(1, 3, 1, 4))
    with pytest.raises(ValueError):
        KVCache(0)
