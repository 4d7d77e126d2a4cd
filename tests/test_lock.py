"""requirements.lock pins every dependency pyproject.toml declares, at a version it allows."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def read_lock(path: Path) -> dict[str, str]:
    """``name -> version`` for every ``name==version`` line of a lock file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "nlpcurriculum"]


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = read_lock(REPO / "requirements.lock")
    problems = []
    for req in declared_requirements():
        name = canonicalize_name(req.name)
        if name == "torch":  # installed first by scripts/setup.sh (the CPU wheel), not locked
            assert "torch" not in pins
            continue
        if name not in pins:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} is outside {req.specifier}")
    assert not problems, "requirements.lock is stale (run scripts/lock.sh): " + "; ".join(problems)


def test_read_lock_rejects_a_loose_requirement(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nnumpy==2.4.6\nmlflow>=3\n")
    with pytest.raises(AssertionError, match="mlflow>=3"):
        read_lock(lock)
