"""Shared fixtures: a temporary copy of the project for stage, pipeline and flow tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return [f for f in out if f and (REPO / f).is_file()]


def stage_env(root: Path) -> dict[str, str]:
    """The environment a stage or dvc command gets in a project copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_HOME"] = str(root / ".prefect")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["MPLBACKEND"] = "Agg"
    return env


def run(cmd: list[str], root: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, env=kw.pop("env", stage_env(root)),
                          capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def params_copy(dest: Path, profile: str = "default") -> Path:
    """Copy ``params/`` and ``profiles/`` into ``dest`` and apply ``profile`` there; returns ``dest``."""
    from nlpcurriculum.params import apply_profile

    for name in ("params", "profiles"):
        shutil.copytree(REPO / name, dest / name, dirs_exist_ok=True)
    apply_profile(profile, dest)
    return dest


def one_torch_thread():
    """The body of the autouse fixture of the directories of tiny torch tests (their conftest.py
    registers it): one torch thread, since on a shared 2-core machine two OpenMP threads contending
    with other processes are up to 40x slower, and tiny matmuls gain nothing from two."""
    from nlpcurriculum.metrics.timing import torch_threads

    with torch_threads(1):
        yield


# The committed default run (its lock file and results): a fresh copy starts without them.
COMMITTED_RUN = ("dvc.lock", "metrics/")


def make_project_copy(dest: Path, profile: str = "smoke") -> Path:
    """Copy the project into ``dest``, as a fresh git repo without the committed default run's
    results, with ``profile`` applied."""
    for name in project_files():
        if name == COMMITTED_RUN[0] or name.startswith(COMMITTED_RUN[1]):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    run(["git", "init", "-q"], dest)
    run([*git, "add", "-A"], dest)
    run([*git, "commit", "-q", "-m", "copy"], dest)
    run([str(BIN / "python"), "-m", "nlpcurriculum", "profile", profile], dest)
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh smoke-profile copy of the project in ``tmp_path``."""
    return make_project_copy(tmp_path / "project")


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke-profile copy on which `dvc repro` has run once (shared, treat as read-only)."""
    root = make_project_copy(tmp_path_factory.mktemp("reproduced") / "project")
    run([str(BIN / "dvc"), "repro"], root)
    return root
