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


def test_buffer_grows_by_doubling_and_keeps_the_history():
    cache = KVCache(n_layers=1, capacity=4)
    ks = [torch.randn(1, 2, 1, 3) for _ in range(9)]
    for k in ks:
        k_all, v_all = cache.update(0, k, -k)
    assert cache.seq_len(0) == 9
    assert torch.equal(k_all, torch.cat(ks, dim=2)) and torch.equal(v_all, -torch.cat(ks, dim=2))
    # 4 -> 8 -> 16 positions allocated; memory_bytes counts the 9 filled ones only
    assert cache.allocated_bytes() == 2 * (2 * 16 * 3) * 4
    assert cache.memory_bytes() == 2 * (2 * 9 * 3) * 4


def test_crop_then_write_overwrites_the_dropped_positions():
    cache = KVCache(n_layers=2, capacity=8)
    for layer in range(2):
        cache.update(layer, torch.zeros(1, 1, 5, 2), torch.zeros(1, 1, 5, 2))
    cache.crop(3)
    assert cache.seq_len(0) == cache.seq_len(1) == 3
    k_all, _ = cache.update(0, torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2))
    assert k_all.shape == (1, 1, 4, 2) and float(k_all[0, 0, 3, 0]) == 1.0
    assert float(k_all[0, 0, :3].abs().sum()) == 0.0
    cache.crop(10)  # past the end: unchanged
    assert cache.seq_len(0) == 4 and cache.seq_len(1) == 3


def test_reorder_selects_and_repeats_batch_rows():
    cache = KVCache(n_layers=1)
    k = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 3, 1).contiguous()  # row b holds b
    cache.update(0, k, k)
    cache.reorder(torch.tensor([1, 1, 0]))
    assert cache.keys[0].shape == (3, 1, 3, 1)
    assert cache.keys[0][:, 0, 0, 0].tolist() == [1.0, 1.0, 0.0]
    k_all, _ = cache.update(0, torch.zeros(3, 1, 1, 1), torch.zeros(3, 1, 1, 1))
    assert k_all.shape == (3, 1, 4, 1)


def test_recording_autograd_concatenates_so_gradients_stay_correct():
    cache = KVCache(n_layers=1, capacity=8)
    k1 = torch.randn(1, 1, 2, 2, requires_grad=True)
    k2 = torch.randn(1, 1, 1, 2, requires_grad=True)
    a, _ = cache.update(0, k1, k1 * 2)
    b, _ = cache.update(0, k2, k2 * 2)  # would overwrite a's storage if written in place
    (a.sum() + 3 * b.sum()).backward()
    assert torch.equal(k1.grad, torch.full_like(k1, 4.0)) and torch.equal(k2.grad, torch.full_like(k2, 3.0))
