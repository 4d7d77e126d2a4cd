"""The project's own imports, read from the source with :mod:`ast` (nothing is imported or run).

Shared by ``tests/test_layers.py`` (imports run one way) and ``tests/test_dvc_deps.py`` (each
stage's DVC deps cover the code it runs). Every ``import`` / ``from ... import`` counts, at any
depth (inside functions, where heavy modules are imported late; inside ``try`` and ``if``);
relative imports are resolved against the importing module's package. ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg`` itself (its ``__init__``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "nlpcurriculum"


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` at ``line`` of ``path``."""

    source: str  # dotted module name of the importer
    target: str  # dotted module name of what it imports
    path: str  # the importer's file, relative to the source root
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from`` import names (``from ..a import b`` -> ``pkg.a``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def file_imports(path: Path, module: str, files: dict[str, Path], package: str = PACKAGE,
                 label: str | None = None) -> list[Import]:
    """The imports of ``package``'s modules (``files``) that the file ``path`` makes.

    Args:
        path: a ``.py`` file, inside the package or not (a stage script).
        module: its dotted name (``"__main__"`` for a script); relative imports resolve from it.
        files: :func:`module_files` of the package.
        label: the file name the edges carry (default: ``path`` as given).
    """
    rel = label or str(path)
    is_package = path.name == "__init__.py"
    edges: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in files else base)
        for target in targets:
            while target and target not in files:  # `import pkg.a.b` of a name in pkg.a
                target = target.rpartition(".")[0]
            if target.split(".")[0] == package and target != module:
                edges.append(Import(module, target, rel, node.lineno))
    return sorted(set(edges), key=lambda e: (e.line, e.target))


def import_graph(root: Path = SRC, package: str = PACKAGE) -> dict[str, list[Import]]:
    """Module -> the imports of ``package``'s own modules it makes (stdlib and third party left out)."""
    files = module_files(root, package)
    return {module: file_imports(path, module, files, package, label=str(path.relative_to(root)))
            for module, path in files.items()}


def launched_modules(path: Path, files: dict[str, Path]) -> list[str]:
    """Modules of the package that the file starts as a subprocess (``python -m <module>``).

    A string constant ``"-m"`` followed by one that is a module's dotted name, in one list, tuple
    or call (``[sys.executable, "-m", "nlpcurriculum.training.crash_demo", ...]``, torchrun's
    ``-m`` argument), counts; for a package, ``python -m`` also runs its ``__main__`` module.
    """
    launched = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        elements = node.elts if isinstance(node, (ast.List, ast.Tuple)) else \
            node.args if isinstance(node, ast.Call) else []
        values = [e.value if isinstance(e, ast.Constant) else None for e in elements]
        for flag, name in zip(values, values[1:]):
            if flag == "-m" and name in files:
                launched.add(name)
                if f"{name}.__main__" in files:
                    launched.add(f"{name}.__main__")
    return sorted(launched)


def executed_modules(imports: list[str], graph: dict[str, list[Import]],
                     launches: dict[str, list[str]]) -> set[str]:
    """Every module that runs when the modules ``imports`` are imported (the transitive closure).

    Importing ``pkg.a.b`` first runs ``pkg/__init__.py`` and ``pkg/a/__init__.py``, so each
    module brings its enclosing packages; each module's own imports (``graph``) and the modules
    it launches as a subprocess (``launches``: module -> :func:`launched_modules`) are followed
    in turn.
    """
    seen: set[str] = set()
    todo = list(imports)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in graph)
        todo.extend(e.target for e in graph[module])
        todo.extend(launches.get(module, []))
    return seen
