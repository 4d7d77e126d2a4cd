"""Pipeline overheads: `dvc repro` wall time, no-op `dvc repro`, a stage's fixed cost from
process start to its first work, and the Prefect flow's wall time against `dvc repro`'s.

    python benchmarks/bench_pipeline.py                    # smoke profile (a few minutes)
    python benchmarks/bench_pipeline.py --profile default  # the default run, twice (hours)
    python benchmarks/bench_pipeline.py --profile default --flow-only  # the flow alone

Runs in temporary copies of the project, so the working tree is untouched: one copy for
`dvc repro` (then the no-op reruns and the fixed costs), a second fresh copy for the flow
(`flows/pipeline.py run`, its temporary Prefect server included). Run it on a quiet machine: the
two runs follow each other, so load that comes and goes lands on one of them.
"""

from __future__ import annotations

import argparse
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", help="params profile of both runs (default: smoke)")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--no-flow", action="store_true", help="skip the flow run")
    skip.add_argument("--flow-only", action="store_true", help="time the flow run alone")
    args = parser.parse_args()
    if args.flow_only:
        with tempfile.TemporaryDirectory() as tmp:
            flow = timed([sys.executable, "flows/pipeline.py", "run"],
                         make_project_copy(Path(tmp) / "flow", args.profile))
        print(f"{args.profile} Prefect flow (all stages, temporary server): {flow:.1f} s")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project_copy(Path(tmp) / "project", args.profile)
        repro = timed([str(BIN / "dvc"), "repro"], root)
        noop = [timed([str(BIN / "dvc"), "repro"], root) for _ in range(3)]
        overhead = []
        for stage in ("ingest", "splits", "report"):
            start = time.time()
            inner = float(run([sys.executable, "-c", FIRST_WORK.format(stage=stage)], root).stdout)
            overhead.append((stage, inner, time.time() - start))
        if not args.no_flow:
            flow_root = make_project_copy(Path(tmp) / "flow", args.profile)
            flow = timed([sys.executable, "flows/pipeline.py", "run"], flow_root)
    print(f"{args.profile} dvc repro (all stages): {repro:.1f} s")
    if not args.no_flow:
        print(f"{args.profile} Prefect flow (all stages, temporary server): {flow:.1f} s, "
              f"{flow / repro:.2f}x dvc repro's")
    print(f"no-op dvc repro: median {statistics.median(noop):.2f} s (target <= 10 s)")
    for stage, inner, total in overhead:
        print(f"stage {stage}: {total:.2f} s from process start to first work "
              f"(imports {inner:.2f} s; target <= 3 s)")


if __name__ == "__main__":
    main()
