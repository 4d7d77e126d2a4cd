"""The launcher: a failing torchrun comes back as an error with its output, and the package's
``-m`` entry point checks its arguments."""

import subprocess
import sys

import pytest

from nlpcurriculum.training.distributed.common import DistJob, DistSetup
from nlpcurriculum.training.distributed.worker import launch


def test_launch_failure_is_reported(tmp_path):
    setup = DistSetup(model=dict(d_model=16, n_layers=2, n_heads=2, max_seq_len=16),
                      tokens=str(tmp_path / "missing.pt"), seq_len=16, global_batch=4,
                      jobs=[DistJob("x", "manual", 1)])
    with pytest.raises(RuntimeError, match="torchrun failed"):
        launch(setup, tmp_path, nproc=1, timeout=120)


def test_module_entry_point_wants_setup_and_out_dir():
    out = subprocess.run([sys.executable, "-m", "nlpcurriculum.training.distributed", "setup.json"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "usage: torchrun ... -m nlpcurriculum.training.distributed SETUP.json OUT_DIR" in out.stderr
