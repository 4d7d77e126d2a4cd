"""The allocator reading: a tensor's measured size is its numel * element_size, freed again."""

import torch

from nlpcurriculum.metrics.memory import heap_bytes, heap_source, measured_bytes


def test_a_large_tensor_measures_its_size_and_is_given_back():
    n = 1_000_000  # 4 MB of float32: far above the allocator's bookkeeping (a few KiB)
    before = heap_bytes()
    t, grown = measured_bytes(lambda: torch.empty(n))
    tol = 64 * 1024 if heap_source() == "mallinfo2" else 256 * 1024  # header / page granularity
    assert abs(grown - 4 * n) <= tol, (grown, heap_source())
    del t
    if heap_source() == "mallinfo2":  # resident pages need not go back at once; malloc's do
        assert abs(heap_bytes() - before) <= tol


def test_a_view_costs_nothing():
    base = torch.empty(1_000_000)
    _, grown = measured_bytes(lambda: base[:500_000])  # shares the storage
    assert grown < 16 * 1024
