"""Tiny-dimension torch tests run on one thread: on a shared 2-core machine two OpenMP threads
contending with other processes are up to 40x slower, and tiny matmuls gain nothing from two."""

import pytest

from tests.conftest import one_torch_thread

_one_torch_thread = pytest.fixture(autouse=True)(one_torch_thread)
