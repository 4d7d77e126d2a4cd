"""Tiny-dimension torch tests run on one thread: on a shared 2-core machine two OpenMP threads
contending with other processes are up to 40x slower, and tiny matmuls gain nothing from two."""

import pytest

from tests.conftest import one_torch_thread

_one_torch_thread = pytest.fixture(autouse=True)(one_torch_thread)


@pytest.fixture
def tiny_budget():
    """A byte-level LM budget of a few seconds, for the tests of the experiments that train one."""
    from nlpcurriculum.experiments.harness import LMBudget

    return LMBudget(d_model=16, n_layers=1, n_heads=2, seq_len=32, steps=6, batch_size=4,
                    warmup_steps=1, eval_every=3, eval_batches=1)
