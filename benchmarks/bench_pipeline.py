"""Pipeline overheads (issue: Backbone): smoke `dvc repro` wall time, no-op `dvc repro`, and a
stage's fixed cost from process start to its first work.

    python benchmarks/bench_pipeline.py            # in the project root, with .venv active

Runs in a temporary copy of the project (smoke profile), so the working tree is untouched. The
default-profile time is measured by `time dvc repro` in the project itself (minutes).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import BIN, make_project_copy, run  # noqa: E402

FIRST_WORK = (
    "import time, sys; t0 = time.time(); sys.argv = ['x'];"
    "import runpy; mod = runpy.run_path('stages/{stage}.py', run_name='bench');"
    "from nlpcurriculum.params import read_yaml; read_yaml('params/pipeline.yaml');"
    "print(time.time() - t0)"
)


def timed(cmd: list[str], root: Path) -> float:
    start = time.time()
    run(cmd, root)
    return time.time() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project_copy(Path(tmp) / "project")
        smoke = timed([str(BIN / "dvc"), "repro"], root)
        noop = [timed([str(BIN / "dvc"), "repro"], root) for _ in range(3)]
        overhead = []
        for stage in ("ingest", "splits", "report"):
            start = time.time()
            inner = float(run([sys.executable, "-c", FIRST_WORK.format(stage=stage)], root).stdout)
            overhead.append((stage, inner, time.time() - start))
    print(f"smoke dvc repro (all stages): {smoke:.1f} s")
    print(f"no-op dvc repro: median {statistics.median(noop):.2f} s (target <= 10 s)")
    for stage, inner, total in overhead:
        print(f"stage {stage}: {total:.2f} s from process start to first work "
              f"(imports {inner:.2f} s; target <= 3 s)")


if __name__ == "__main__":
    main()
