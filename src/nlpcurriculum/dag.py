"""The pipeline's DAG, read from ``dvc.yaml`` (DVC stays the one owner of the graph).

Stage B depends on stage A when one of B's ``deps`` is one of A's outputs (``outs``, ``metrics``
or ``plots``) or lies inside an output folder of A. Prefect flows use this to order their tasks
and to select everything upstream of the stages a user asks for.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from nlpcurriculum import registry


class DagError(ValueError):
    """dvc.yaml is missing, malformed or names an unknown stage."""


def entry_paths(entries: list | None) -> list[str]:
    """The paths of a stage's ``deps`` / ``outs`` / ``metrics`` / ``plots`` list.

    Entries are plain paths or one-key mappings ``{path: {options}}``.
    """
    out = []
    for entry in entries or []:
        out.extend(entry.keys() if isinstance(entry, dict) else [entry])
    return [str(PurePosixPath(p)) for p in out]


def outputs(spec: dict) -> list[str]:
    """Every path a stage writes: its ``outs``, ``metrics`` and ``plots``."""
    return entry_paths(spec.get("outs")) + entry_paths(spec.get("metrics")) + entry_paths(spec.get("plots"))


def read_stages(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, dict]:
    """dvc.yaml's ``stages`` mapping, ``{stage: {cmd, deps, params, outs, ...}}``, in its order."""
    path = Path(dvc_yaml)
    if not path.exists():
        raise DagError(f"{path}: not found")
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages")
    if not isinstance(stages, dict):
        raise DagError(f"{path}: no 'stages' mapping")
    return stages


def load(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, set[str]]:
    """``{stage: {upstream stages}}`` in dvc.yaml's order."""
    stages = read_stages(dvc_yaml)
    produced: dict[str, str] = {}
    for name, spec in stages.items():
        for out in outputs(spec):
            produced[out] = name
    graph: dict[str, set[str]] = {}
    for name, spec in stages.items():
        upstream = set()
        for dep in entry_paths(spec.get("deps")):
            for out, producer in produced.items():
                if dep == out or dep.startswith(out + "/") or out.startswith(dep + "/"):
                    upstream.add(producer)
        upstream.discard(name)
        graph[name] = upstream
    return graph


def with_upstream(graph: dict[str, set[str]], targets: list[str]) -> list[str]:
    """``targets`` and everything they depend on, in topological order."""
    unknown = [t for t in targets if t not in graph]
    if unknown:
        raise DagError(f"unknown stage(s) {unknown}; dvc.yaml has {sorted(graph)}")
    wanted: set[str] = set()
    todo = list(targets)
    while todo:
        stage = todo.pop()
        if stage not in wanted:
            wanted.add(stage)
            todo.extend(graph[stage])
    return [s for s in topological(graph) if s in wanted]


def topological(graph: dict[str, set[str]]) -> list[str]:
    """Stages ordered so every stage comes after its upstream (dvc.yaml order breaks ties)."""
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(stage: str) -> None:
        if stage in done:
            return
        if stage in visiting:
            raise DagError(f"dvc.yaml has a cycle through stage {stage!r}")
        visiting.add(stage)
        for up in sorted(graph[stage], key=list(graph).index):
            visit(up)
        visiting.discard(stage)
        done.add(stage)
        order.append(stage)

    for stage in graph:
        visit(stage)
    return order


def stages_of_section(graph: dict[str, set[str]], section: str) -> list[str]:
    """The stages that run the items of a section (by id or title), with their upstream."""
    matches = [s for s in registry.sections() if section in (s.id, s.title)]
    if not matches:
        raise DagError(f"unknown section {section!r}; see `python -m nlpcurriculum status`")
    targets = sorted({st for it in matches[0].items for st in it.stages})
    if not targets:
        raise DagError(f"section {section!r} has no implemented items yet")
    return with_upstream(graph, targets)
