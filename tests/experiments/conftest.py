"""Tiny-dimension torch tests run on one thread: on a shared 2-core machine two OpenMP threads
contending with other processes are up to 40x slower, and tiny matmuls gain nothing from two."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
