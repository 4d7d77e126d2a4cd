"""dvc.yaml tells the truth: deps cover the code a stage runs, paths are written once, outputs sit
where the layout puts them (docs/ARCHITECTURE.md, "Stages").

1. **Deps cover the code.** Every stage's ``cmd`` runs ``python stages/<x>.py``. Its deps must
   cover the script and every file of ``src/nlpcurriculum`` that running it executes: the
   transitive closure of the script's imports, read from the source (``tests/source_imports.py``,
   shared with the layer test: imports inside functions count, and so do the package
   ``__init__`` files Python runs on the way and the modules a stage starts as a
   ``python -m`` subprocess). A dep covers a file when it is that file or a folder holding it.
   Otherwise an edit to, say, ``nn/fast/causal_attention.py`` leaves ``dvc repro`` thinking
   every model stage up to date.
2. **Paths are written once.** A path constant of a stage script (a module-level string with a
   ``/``: ``OUTPUT = "models/moe"``) is one of the stage's deps / outs / metrics / plots, or lies
   inside one, so the script and dvc.yaml cannot drift apart unnoticed.
3. **Outputs are uniform.** Data under ``data/``, weights (checkpoints, tokenizers, vectors)
   under ``models/``, tables, text and HTML under ``reports/<stage>/`` (the front page
   ``reports/index.html`` of the ``report`` stage aside), figures under ``plots/<stage>/``,
   metrics in ``metrics/<stage>.json`` (an output with ``cache: false``, not DVC metrics: the
   only DVC metrics is the top-level ``metrics/summary.json`` that the ``report`` stage writes,
   so that ``dvc metrics show`` and ``dvc exp show`` fit a terminal). tests/test_pipeline.py checks after a smoke run that no
   text or HTML file landed in an output under ``models/`` or ``data/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nlpcurriculum import dag
from tests.conftest import REPO
from tests.source_imports import (
    PACKAGE,
    executed_modules,
    file_imports,
    import_graph,
    launched_modules,
    module_files,
)

SCRIPT = re.compile(r"python (stages/\w+\.py)(?:\s|$)")
FRONT_PAGE = ("report", "reports/index.html")  # the one output under reports/ outside reports/<stage>/
SUMMARY = ("report", "metrics/summary.json")  # the only DVC metrics (declared at the top level)


def covers(dep: str, path: str) -> bool:
    """A dep covers ``path`` when it is that path or a folder holding it."""
    return path == dep or path.startswith(dep.rstrip("/") + "/")


class Code:
    """The package under ``root / "src"``, read once: its files, import graph and subprocesses."""

    def __init__(self, root: Path):
        self.root = root
        self.files = module_files(root / "src", PACKAGE)
        self.graph = import_graph(root / "src", PACKAGE)
        self.launches = {m: launched_modules(path, self.files) for m, path in self.files.items()}

    def run_by(self, script: Path) -> list[str]:
        """The script and every package file running it executes, relative to the project root."""
        direct = [e.target for e in file_imports(script, "__main__", self.files)]
        modules = executed_modules(direct + launched_modules(script, self.files), self.graph, self.launches)
        return [str(script.relative_to(self.root))] + sorted(
            str(self.files[m].relative_to(self.root)) for m in modules)


def uncovered_code(root: Path) -> dict[str, list[str]]:
    """Stage -> the code files it runs that none of its deps covers (a stage that runs no
    ``stages/<x>.py`` script cannot be checked and is reported with its ``cmd``)."""
    code, missing = Code(root), {}
    for name, spec in dag.read_stages(root / "dvc.yaml").items():
        match = SCRIPT.fullmatch(spec.get("cmd", "").strip())
        if not match:
            missing[name] = [f"cmd {spec.get('cmd')!r} does not run `python stages/<x>.py`"]
            continue
        deps = dag.entry_paths(spec.get("deps"))
        lost = [f for f in code.run_by(root / match.group(1))
                if not any(covers(d, f) for d in deps)]
        if lost:
            missing[name] = lost
    return missing


def path_constants(script: Path) -> dict[str, list[str]]:
    """Module-level constant name -> the paths in its value (strings holding a ``/``, no spaces;
    also inside tuples, dicts and calls such as ``Path("data/x")``)."""

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else []
        if isinstance(node, ast.JoinedStr):  # an f-string is built from other constants
            return []
        return [s for child in ast.iter_child_nodes(node) for s in strings(child)]

    found = {}
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            name, value = node.target.id, node.value
        else:
            continue
        paths = [s for s in strings(value) if "/" in s and not any(c.isspace() for c in s)]
        if paths:
            found[name] = paths
    return found


def unlisted_paths(root: Path) -> dict[str, list[str]]:
    """Stage -> ``NAME = 'path'`` constants of its script that none of its entries covers."""
    problems = {}
    for name, spec in dag.read_stages(root / "dvc.yaml").items():
        match = SCRIPT.fullmatch(spec.get("cmd", "").strip())
        if not match:
            continue
        entries = dag.entry_paths(spec.get("deps")) + dag.outputs(spec)
        lost = [f"{const} = {path!r}" for const, paths in path_constants(root / match.group(1)).items()
                for path in paths if not any(covers(e, path) for e in entries)]
        if lost:
            problems[name] = lost
    return problems


def misplaced_outputs(stages: dict[str, dict]) -> list[str]:
    """Outputs outside the layout, one line each: ``stage: kind path``."""
    problems = []
    for name, spec in stages.items():
        for out in dag.entry_paths(spec.get("outs")):
            if not (out.startswith(("data/", "models/")) or covers(f"reports/{name}", out)
                    or (name, out) in (FRONT_PAGE, SUMMARY)
                    or out in (f"metrics/{name}.json", f"metrics/timings/{name}.json")):
                problems.append(f"{name}: out {out} (data/, models/, reports/{name}/, "
                                f"metrics/{name}.json or metrics/timings/{name}.json)")
        for path in dag.entry_paths(spec.get("metrics")):
            problems.append(f"{name}: metrics {path} (an out with cache: false; the only DVC "
                            f"metrics is the top-level {SUMMARY[1]})")
        for path in dag.entry_paths(spec.get("plots")):
            if not covers(f"plots/{name}", path):
                problems.append(f"{name}: plots {path} (plots/{name}/)")
    return problems


def _report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{stage}:\n" + "".join(f"    {p}\n" for p in lost) for stage, lost in problems.items())


# ---------------------------------------------------------------------------------------------
# the project


def test_every_stage_deps_cover_the_code_it_runs():
    missing = uncovered_code(REPO)
    assert not missing, "dvc.yaml deps miss code the stage runs (add the file or its package folder):\n" + \
        _report(missing)


def test_every_path_constant_of_a_stage_script_is_in_its_dvc_entries():
    problems = unlisted_paths(REPO)
    assert not problems, "stage script paths that dvc.yaml does not list for the stage:\n" + _report(problems)


def test_outputs_follow_the_layout():
    problems = misplaced_outputs(dag.read_stages(REPO / "dvc.yaml"))
    assert not problems, "outputs outside the layout:\n" + "\n".join(problems)


def test_metrics_files_are_git_tracked_outputs_and_the_summary_is_the_only_dvc_metrics():
    import yaml

    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    assert spec.get("metrics") == [SUMMARY[1]], "dvc.yaml's top-level metrics: only the summary"
    problems = []
    for name, stage in spec["stages"].items():
        outs = {p: opts for entry in stage.get("outs") or []
                for p, opts in (entry.items() if isinstance(entry, dict) else [(entry, {})])}
        wanted = [f"metrics/{name}.json", f"metrics/timings/{name}.json"]
        if name == SUMMARY[0]:
            wanted.append(SUMMARY[1])
        for path in wanted:
            opts = outs.get(path)
            if opts is None or opts.get("cache") is not False or opts.get("persist") is not True:
                problems.append(f"{name}: {path} must be an out with cache: false, persist: true")
    assert not problems, "\n".join(problems)


def test_the_closure_follows_late_imports_package_inits_and_subprocesses():
    # the distributed stage imports its experiment inside main(); that starts torchrun on
    # `-m nlpcurriculum.training.distributed`, whose __main__ runs the worker
    files = Code(REPO).run_by(REPO / "stages/distributed.py")
    for path in ("stages/distributed.py",
                 "src/nlpcurriculum/__init__.py",
                 "src/nlpcurriculum/experiments/__init__.py",
                 "src/nlpcurriculum/experiments/distributed_training.py",
                 "src/nlpcurriculum/training/distributed/__main__.py",
                 "src/nlpcurriculum/nn/fast/causal_attention.py"):
        assert path in files, path


# ---------------------------------------------------------------------------------------------
# the checker on a tiny fake project


def _fake_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FAKE_CODE = {
    "src/nlpcurriculum/__init__.py": "",
    "src/nlpcurriculum/io.py": "",
    "src/nlpcurriculum/nn/__init__.py": "",
    "src/nlpcurriculum/nn/attention.py": "from .fast import kernel\n",
    "src/nlpcurriculum/nn/fast/__init__.py": "",
    "src/nlpcurriculum/nn/fast/kernel.py": "",
    "src/nlpcurriculum/tools/__init__.py": "",
    "src/nlpcurriculum/tools/job.py": "import sys\n\n\ndef go():\n"
                                      "    return [sys.executable, '-m', 'nlpcurriculum.tools.worker']\n",
    "src/nlpcurriculum/tools/worker.py": "from nlpcurriculum import io\n",
    "src/nlpcurriculum/unused.py": "",
    "stages/train.py": 'OUTPUT = "models/train"\nDATA = ("data/a.parquet", "data/b.parquet")\n\n\n'
                       "def main():\n    from nlpcurriculum.nn.attention import x\n"
                       "    from nlpcurriculum.tools import job\n",
}


def _fake_stage(root: Path, deps: list[str], more: str = "") -> Path:
    """The fake project with its ``train`` stage reading ``deps`` (and ``more`` stages)."""
    stage = f"  train:\n    cmd: python stages/train.py\n    deps: {deps}\n    outs: [models/train]\n"
    return _fake_project(root, {**FAKE_CODE, "dvc.yaml": "stages:\n" + stage + more})


def test_checker_names_each_file_no_dep_covers(tmp_path):
    root = _fake_stage(tmp_path, ["stages/train.py", "src/nlpcurriculum/nn/attention.py",
                                  "src/nlpcurriculum/tools/job.py"])
    # a late import pulls in nn/__init__ (run on the way), nn/fast/ (imported by attention);
    # tools/job.py starts tools/worker.py as a subprocess, which imports io
    assert uncovered_code(root) == {"train": [
        "src/nlpcurriculum/__init__.py",
        "src/nlpcurriculum/io.py",
        "src/nlpcurriculum/nn/__init__.py",
        "src/nlpcurriculum/nn/fast/__init__.py",
        "src/nlpcurriculum/nn/fast/kernel.py",
        "src/nlpcurriculum/tools/__init__.py",
        "src/nlpcurriculum/tools/worker.py",
    ]}


def test_checker_accepts_files_or_folders_that_cover_the_code(tmp_path):
    root = _fake_stage(tmp_path, ["stages/train.py", "src/nlpcurriculum/__init__.py", "src/nlpcurriculum/io.py",
                                  "src/nlpcurriculum/nn", "src/nlpcurriculum/tools", "data/a.parquet"],
                       more="  other:\n    cmd: python -m nlpcurriculum.tools.worker\n")
    assert uncovered_code(root) == {
        "other": ["cmd 'python -m nlpcurriculum.tools.worker' does not run `python stages/<x>.py`"]}
    # DATA's second path is neither a dep nor an output of the stage
    assert unlisted_paths(root) == {"train": ["DATA = 'data/b.parquet'"]}


def test_path_constants_reads_module_level_strings_with_a_slash(tmp_path):
    script = tmp_path / "s.py"
    script.write_text('from pathlib import Path\n\nSTAGE = "x"\nA = Path("data/a")\nB = {"k": "models/b"}\n'
                      'C = f"{A}/c"\nD: str = "reports/d/page.html"\nE = "a phrase / not a path"\n\n\n'
                      'def f():\n    g = "data/inside/a/function"\n')
    assert path_constants(script) == {"A": ["data/a"], "B": ["models/b"], "D": ["reports/d/page.html"]}


def test_layout_check_flags_text_outputs_outside_reports_of_the_stage():
    stages = {
        "moe": {"outs": ["models/moe", "reports/moe", "metrics/timings/moe.json",
                         {"metrics/moe.json": {"cache": False}}], "plots": ["plots/moe"]},
        "evaluate": {"outs": ["reports/samples.txt", "metrics/timings/moe.json"], "metrics": ["metrics/evaluate.json"]},
        "report": {"outs": ["reports/index.html", "metrics/summary.json"], "plots": ["plots/other"]},
        "other": {"outs": ["metrics/summary.json"]},
    }
    where = "(data/, models/, reports/{0}/, metrics/{0}.json or metrics/timings/{0}.json)"
    assert misplaced_outputs(stages) == [
        "evaluate: out reports/samples.txt " + where.format("evaluate"),
        "evaluate: out metrics/timings/moe.json " + where.format("evaluate"),
        "evaluate: metrics metrics/evaluate.json (an out with cache: false; the only DVC metrics "
        "is the top-level metrics/summary.json)",
        "report: plots plots/other (plots/report/)",
        "other: out metrics/summary.json " + where.format("other"),
    ]
