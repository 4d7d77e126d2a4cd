"""The default run is versioned with the code (issue 17.9): git holds its ``dvc.lock`` and
``metrics/*.json``, every implemented item has results there, and they were produced from the
params the repository has now.

Read from git's index (what is committed, or staged to be), not from the working tree: a local
smoke run rewrites ``dvc.lock`` and ``metrics/`` without changing what the repository claims.
The params are the working tree's ``params/*.yaml``: edit a knob and this test fails until the
default run is redone and committed (``dvc status`` would call those stages changed).

The checkers run on fabricated projects below; the three tests on the real repository pass once
the default run's ``dvc.lock`` and ``metrics/`` are committed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlpcurriculum import registry
from nlpcurriculum.params import flatten
from tests.conftest import REPO

HOW = ("run the default profile end to end (`dvc repro`), then commit dvc.lock and metrics/ "
       "(and `python -m nlpcurriculum readme`'s README)")


def git_show(root: Path, path: str) -> bytes | None:
    """The bytes git's index holds for ``path``, or None when it holds none."""
    done = subprocess.run(["git", "show", f":{path}"], cwd=root, capture_output=True)
    return done.stdout if done.returncode == 0 else None


def committed_lock(root: Path) -> dict[str, Any]:
    """The committed ``dvc.lock``; fails the test, saying what to do, when git holds none."""
    data = git_show(root, "dvc.lock")
    if data is None:
        pytest.fail(f"git holds no dvc.lock in {root}: the default run is not versioned; {HOW}")
    return yaml.safe_load(data) or {}


def _value_at(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return KeyError
        data = data[key]
    return data


def _same(old: Any, new: Any) -> bool:
    """Equal values, reading a number written as text as the number: DVC writes ``1.0e-06`` into
    dvc.lock as ``1e-06``, which PyYAML (YAML 1.1) reads back as a string."""
    if old == new:
        return True
    numbers = [v for v in (old, new) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == 1:
        text = old if isinstance(old, str) else new
        try:
            return float(text) == float(numbers[0])
        except (TypeError, ValueError):
            return False
    return False


def param_drift(lock: dict[str, Any], root: Path) -> list[str]:
    """Each param whose value ``dvc.lock`` recorded differs from ``root``'s params file now.

    One line per differing leaf: ``stage: file key: committed run <old>, params now <new>``.
    """
    problems = []
    for stage, spec in (lock.get("stages") or {}).items():
        for file, recorded in (spec.get("params") or {}).items():
            path = root / file
            if not path.exists():
                problems.append(f"{stage}: {file} no longer exists")
                continue
            current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for key, value in recorded.items():
                now = _value_at(current, key)
                old_flat = flatten(value, f"{key}.") if isinstance(value, dict) else {key: value}
                new_flat = (flatten(now, f"{key}.") if isinstance(now, dict)
                            else {} if now is KeyError else {key: now})
                for leaf in sorted(set(old_flat) | set(new_flat)):
                    old, new = old_flat.get(leaf, "(absent)"), new_flat.get(leaf, "(absent)")
                    if not _same(old, new):
                        problems.append(f"{stage}: {file} {leaf}: committed run {old!r}, params now {new!r}")
    return problems


def stages_not_in_lock(lock: dict[str, Any], dvc_yaml: Path) -> list[str]:
    """The stages of ``dvc.yaml`` that the committed run did not run."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return sorted(set(stages) - set(lock.get("stages") or {}))


def metrics_unlike_lock(lock: dict[str, Any], root: Path) -> list[str]:
    """Each ``metrics/`` output whose committed bytes are not the ones ``dvc.lock`` recorded."""
    problems = []
    for stage, spec in (lock.get("stages") or {}).items():
        for out in spec.get("outs") or []:
            path = out.get("path", "")
            if not path.startswith("metrics/"):
                continue
            data = git_show(root, path)
            if data is None:
                problems.append(f"{stage}: {path} is in dvc.lock but not committed")
            elif hashlib.md5(data).hexdigest() != out.get("md5"):
                problems.append(f"{stage}: the committed {path} is not the one dvc.lock recorded")
    return problems


def items_without_results(root: Path) -> list[str]:
    """Each implemented item none of whose stages' committed ``metrics/<stage>.json`` lists it."""
    missing = []
    files: dict[str, dict[str, Any]] = {}
    for it in registry.items():
        if it.status != registry.IMPLEMENTED:
            continue
        for stage in it.stages:
            if stage not in files:
                data = git_show(root, f"metrics/{stage}.json")
                files[stage] = json.loads(data) if data else {}
        if not any(it.id in (files[s].get("items") or {}) for s in it.stages):
            where = ", ".join(f"metrics/{s}.json" for s in it.stages)
            missing.append(f"{it.id}: no results in the committed {where}")
    return missing


# -- the repository (these pass once the default run's dvc.lock and metrics/ are committed) -----


def test_committed_run_used_the_params_of_the_repository():
    lock = committed_lock(REPO)
    drift = param_drift(lock, REPO)
    assert not drift, ("dvc.lock's params differ from params/ (the committed results are older "
                       f"than the params; {HOW}):\n" + "\n".join(drift))
    missing = stages_not_in_lock(lock, REPO / "dvc.yaml")
    assert not missing, f"stages the committed run did not run: {missing}; {HOW}"


def test_committed_metrics_are_the_ones_dvc_lock_recorded():
    problems = metrics_unlike_lock(committed_lock(REPO), REPO)
    assert not problems, f"{HOW}:\n" + "\n".join(problems)


def test_every_implemented_item_has_committed_results():
    missing = items_without_results(REPO)
    assert not missing, f"implemented items without committed results ({HOW}):\n" + "\n".join(missing)


# -- the checkers, on fabricated projects -------------------------------------------------------


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _project(root: Path, lock: dict[str, Any] | None, metrics: dict[str, bytes]) -> Path:
    """A git repository with params, a dvc.yaml, and ``lock`` / ``metrics`` staged."""
    (root / "params").mkdir(parents=True)
    (root / "params" / "kv_cache.yaml").write_text(
        "kv_cache:\n  prompt_tokens: 8\n  new_tokens: [32, 64]\n  checks:\n    min_speedup: 1.1\n")
    (root / "params" / "pipeline.yaml").write_text("report:\n  title: t\n")
    (root / "dvc.yaml").write_text("stages:\n  kv_cache: {cmd: x}\n  report: {cmd: y}\n")
    _git(root, "init", "-q")
    if lock is not None:
        (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    for path, data in metrics.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    _git(root, "add", "-A")
    return root


def _lock(kv_params: dict[str, Any], kv_md5: str) -> dict[str, Any]:
    return {"schema": "2.0", "stages": {
        "kv_cache": {"cmd": "x", "params": {"params/kv_cache.yaml": {"kv_cache": kv_params}},
                     "outs": [{"path": "metrics/kv_cache.json", "md5": kv_md5, "size": 1}]},
        "report": {"cmd": "y", "params": {"params/pipeline.yaml": {"report.title": "t"}}}}}


KV_PARAMS = {"prompt_tokens": 8, "new_tokens": [32, 64], "checks": {"min_speedup": 1.1}}
KV_METRICS = json.dumps({"stage": "kv_cache", "items": {"kv-cache/1": {}, "kv-cache/2": {}}}).encode()


def test_checkers_accept_a_committed_run_that_matches(tmp_path):
    root = _project(tmp_path, _lock(KV_PARAMS, hashlib.md5(KV_METRICS).hexdigest()),
                    {"metrics/kv_cache.json": KV_METRICS})
    lock = committed_lock(root)
    assert param_drift(lock, root) == []
    assert stages_not_in_lock(lock, root / "dvc.yaml") == []
    assert metrics_unlike_lock(lock, root) == []
    missing = items_without_results(root)
    assert "kv-cache/3: no results in the committed metrics/kv_cache.json" in missing
    assert not any(m.startswith(("kv-cache/1:", "kv-cache/2:")) for m in missing)


def test_checkers_name_each_param_changed_since_the_committed_run(tmp_path):
    old = {**KV_PARAMS, "prompt_tokens": 16, "checks": {"min_speedup": 1.5}, "gone": 1}
    assert _same("1e-06", 1.0e-06) and _same(1.1, "1.1") and not _same("1e-06", 1.0e-05)
    assert not _same("abc", 1.0) and not _same(True, "1.0")
    root = _project(tmp_path, _lock(old, "0" * 32), {})
    lock = committed_lock(root)
    assert param_drift(lock, root) == [
        "kv_cache: params/kv_cache.yaml kv_cache.checks.min_speedup: committed run 1.5, params now 1.1",
        "kv_cache: params/kv_cache.yaml kv_cache.gone: committed run 1, params now '(absent)'",
        "kv_cache: params/kv_cache.yaml kv_cache.prompt_tokens: committed run 16, params now 8",
    ]
    # a committed metrics file that dvc.lock does not describe, or none at all
    assert metrics_unlike_lock(lock, root) == [
        "kv_cache: metrics/kv_cache.json is in dvc.lock but not committed"]
    (root / "metrics").mkdir()
    (root / "metrics" / "kv_cache.json").write_bytes(KV_METRICS)
    _git(root, "add", "-A")
    assert metrics_unlike_lock(lock, root) == [
        "kv_cache: the committed metrics/kv_cache.json is not the one dvc.lock recorded"]
    assert items_without_results(root)[0].startswith("tokenization-and-embeddings/1: no results")


def test_checkers_read_git_not_the_working_tree(tmp_path):
    """A smoke run's files in the working tree do not count; a stage missing from the lock does."""
    lock = _lock(KV_PARAMS, hashlib.md5(KV_METRICS).hexdigest())
    del lock["stages"]["report"]
    root = _project(tmp_path, lock, {"metrics/kv_cache.json": KV_METRICS})
    (root / "metrics" / "kv_cache.json").write_text("{}")  # the working tree: a later smoke run
    (root / "dvc.lock").write_text("stages: {}\n")
    lock = committed_lock(root)
    assert metrics_unlike_lock(lock, root) == []
    assert stages_not_in_lock(lock, root / "dvc.yaml") == ["report"]
    assert not any(m.startswith("kv-cache/1:") for m in items_without_results(root))


def test_a_repository_without_a_committed_lock_fails_saying_what_to_do(tmp_path):
    root = _project(tmp_path, None, {})
    with pytest.raises(pytest.fail.Exception, match=r"git holds no dvc.lock .* run the default profile"):
        committed_lock(root)
