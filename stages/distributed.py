"""Stage `distributed`: "Distributed Training" (items 1-3).

Reads params `distributed` and the corpus's train split `data/processed/splits/train.parquet`
(UTF-8 bytes). Launches one torchrun run (2 processes, gloo on CPU / nccl on GPU) with every
job: the by-hand all-reduce, DDP and FSDP2 parity runs, the GPipe pipeline at each micro-batch
count, and the communication profiles; runs the single-process reference; writes the item
tables and the per-rank results (`tables.txt`, `rank<r>.json`) to `reports/distributed/`, the plots to `plots/distributed/` and
`metrics/distributed.json` (idle fractions and communication times to
`metrics/timings/distributed.json`).
"""

import json
import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import item_tables, main_guard, print_findings, publish

STAGE = "distributed"
OUTPUT = "reports/distributed"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.distributed_training import DistributedConfig, Inputs, Outputs, run

    cfg = load_section(STAGE, DistributedConfig)
    built = Outputs()
    results = run(cfg, Inputs(split_texts("train")), built)
    ranks = built.ranks

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        (tmp / "tables.txt").write_text(item_tables(results), encoding="utf-8")
        for r in ranks:  # timings differ run to run: an output, not a metric
            (tmp / f"rank{r['rank']}.json").write_text(json.dumps(r))
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
