"""Tiny torch tests run on one thread (tiny matmuls gain nothing from two, and two contend)."""

import pytest

from tests.conftest import one_torch_thread

_one_torch_thread = pytest.fixture(autouse=True)(one_torch_thread)
