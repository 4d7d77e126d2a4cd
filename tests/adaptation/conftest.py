"""Tiny torch models in these tests run on one thread (a shared 2-core machine)."""

import pytest

from tests.conftest import one_torch_thread

_one_torch_thread = pytest.fixture(autouse=True)(one_torch_thread)
