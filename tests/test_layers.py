"""Imports run one way: the layer table of docs/ARCHITECTURE.md, checked from the source.

The checker reads every ``.py`` file under ``src/nlpcurriculum`` with :mod:`ast` (nothing is
imported or run) and builds the graph module -> imported module (``tests/source_imports.py``,
shared with the DVC deps test: also imports inside functions, relative imports resolved).

Two rules:

1. **No upward import.** Every top-level package or module has a rank in ``LAYERS``; a module
   may import its own top-level unit and any unit of the same or a lower rank, never a higher one.
2. **No cycle** between modules (``a.py -> b.py -> a.py``, at any distance, across any layers).

A top-level unit missing from ``LAYERS`` fails too: a new package gets its rank when it lands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.source_imports import PACKAGE, SRC, Import, import_graph

# The layers, bottom to top. A unit may import units of its own rank or below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # cross-cutting base: result records, atomic files, params, measurement, the registry
    ("base", ("__init__", "results", "io", "params", "metrics", "registry")),
    # parts: corpora and their processing, tokenizers, the network's modules by hand
    ("parts", ("data", "tokenizers", "nn")),
    # what is built from the parts: word vectors, the language models
    ("models", ("embeddings", "models")),
    # what is done with a model: train it, decode from it, look inside it, draw it
    ("methods", ("training", "decoding", "interpret", "viz", "longcontext")),
    # task layers, one per later part of the curriculum
    ("tasks", ("augmentation", "adaptation", "alignment", "compression", "export", "retrieval",
               "reasoning", "fairness", "multimodal")),
    # pipeline plumbing: stage helpers, MLflow, the HTML report, the DVC graph
    ("pipeline", ("stage", "section_stage", "tracking", "report", "dag")),
    # the curriculum's experiments, the apps and the command line
    ("top", ("experiments", "apps", "__main__")),
]
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
LAYER_NAME = {unit: name for name, units in LAYERS for unit in units}


def unit_of(module: str) -> str:
    """The top-level package or module a module belongs to (``pkg.nn.attention`` -> ``nn``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph: dict[str, list[Import]]) -> list[str]:
    """Every upward import, one line each, naming file, line, importer and target."""
    problems = []
    for module, edges in graph.items():
        src = unit_of(module)
        for e in edges:
            dst = unit_of(e.target)
            if src == dst or src not in RANK or dst not in RANK:  # unranked: see unranked_units
                continue
            if RANK[dst] > RANK[src]:
                problems.append(f"{e} (upward: {src} is in layer {LAYER_NAME[src]!r}, "
                                f"{dst} in the higher layer {LAYER_NAME[dst]!r})")
    return problems


def unranked_units(graph: dict[str, list[Import]]) -> list[str]:
    """Top-level units that have no rank in ``LAYERS``."""
    return sorted({unit_of(m) for m in graph} - set(RANK))


def import_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle per strongly connected group of modules, as the list of its import edges.

    Tarjan's algorithm finds the groups of modules that can all reach each other; within each, a
    breadth-first search from its first module back to itself gives a shortest cycle to report.
    """
    adj = {m: [e for e in edges if e.target in graph] for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # recursive Tarjan; the module graph is shallow enough
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in adj[v]:
            w = e.target
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(adj):
        if v not in index:
            connect(v)

    cycles = []
    for group in groups:
        members, start = set(group), group[0]
        came_by: dict[str, Import] = {}
        frontier, seen, closing = [start], {start}, None
        while frontier and closing is None:
            nxt = []
            for v in frontier:
                for e in adj[v]:
                    if e.target == start:
                        closing = e
                        break
                    if e.target in members and e.target not in seen:
                        seen.add(e.target)
                        came_by[e.target] = e
                        nxt.append(e.target)
                if closing is not None:
                    break
            frontier = nxt
        path = [closing]
        while path[0].source != start:
            path.insert(0, came_by[path[0].source])
        cycles.append(path)
    return cycles


def format_cycle(cycle: list[Import]) -> str:
    """``a -> b -> a`` followed by the import line of each step."""
    names = " -> ".join([cycle[0].source] + [e.target for e in cycle])
    return names + "".join(f"\n    {e}" for e in cycle)


# ---------------------------------------------------------------------------------------------
# the project


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(SRC)


def test_every_top_level_unit_has_a_layer(graph):
    assert unranked_units(graph) == [], "give each new package a rank in LAYERS (and ARCHITECTURE.md)"


def test_nn_sits_below_what_uses_it():
    # the modules by hand know nothing of the models, training or plots built on them
    assert all(RANK[unit] > RANK["nn"] for unit in ("models", "training", "viz"))


def test_no_upward_import(graph):
    problems = layer_violations(graph)
    assert not problems, "imports that run against the layers:\n" + "\n".join(problems)


def test_no_import_cycle(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(format_cycle(c) for c in cycles)


def test_the_graph_sees_late_and_relative_imports(graph):
    # the stage helpers import the data contracts inside main_guard (a late import); a package
    # __init__ re-exports its modules
    assert any(e.target == f"{PACKAGE}.data.schemas" for e in graph[f"{PACKAGE}.stage"])
    assert any(e.target == f"{PACKAGE}.nn.attention" for e in graph[f"{PACKAGE}.nn"])


# ---------------------------------------------------------------------------------------------
# the checker on a tiny fake package


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_flags_an_upward_import_naming_file_line_and_target(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "nn/__init__.py": "",
        "nn/block.py": "import math\n\n\ndef f():\n    from ..training import trainer\n",
        "training/__init__.py": "",
        "training/trainer.py": "from nlpcurriculum.nn.block import f\n",
    })
    problems = layer_violations(import_graph(root))
    assert len(problems) == 1
    assert problems[0].startswith(
        "nlpcurriculum/nn/block.py:5: nlpcurriculum.nn.block imports nlpcurriculum.training.trainer")
    assert "upward" in problems[0]


def test_checker_allows_same_and_lower_layers_and_flags_an_unranked_unit(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "nn/__init__.py": "from nlpcurriculum.tokenizers import bpe\nfrom nlpcurriculum import io\n",
        "tokenizers/__init__.py": "",
        "tokenizers/bpe.py": "",
        "io.py": "",
        "gadgets.py": "from nlpcurriculum.experiments import x\n",
        "experiments/__init__.py": "",
        "experiments/x.py": "",
    })
    graph = import_graph(root)
    assert layer_violations(graph) == []
    assert unranked_units(graph) == ["gadgets"]


def test_checker_flags_a_cycle_across_layers(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "from . import b\n",
        "data/b.py": "x = 1\n\n\ndef g():\n    import nlpcurriculum.models.c\n",
        "models/__init__.py": "",
        "models/c.py": "from ..data.a import name\n",
        "models/d.py": "from nlpcurriculum.models import c\n",  # reaches the cycle, not in it
    })
    graph = import_graph(root)
    cycles = import_cycles(graph)
    assert len(cycles) == 1
    text = format_cycle(cycles[0])
    assert text.splitlines()[0] == ("nlpcurriculum.data.a -> nlpcurriculum.data.b -> "
                                    "nlpcurriculum.models.c -> nlpcurriculum.data.a")
    assert "nlpcurriculum/data/b.py:5: nlpcurriculum.data.b imports nlpcurriculum.models.c" in text


def test_checker_resolves_relative_imports_from_a_package_init(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "nn/__init__.py": "from .attention import MultiHeadAttention\nfrom . import norms\n",
        "nn/attention.py": "",
        "nn/norms.py": "",
    })
    targets = {e.target for e in import_graph(root)["nlpcurriculum.nn"]}
    assert targets == {"nlpcurriculum.nn.attention", "nlpcurriculum.nn.norms"}
