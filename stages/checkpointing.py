"""Stage `checkpointing`: "Checkpointing & Fault Tolerance" (items 1-3).

Reads params `checkpointing` and the train split `data/processed/splits/train.parquet` (the
`splits` contract), tokenized as UTF-8 bytes. Measures activation checkpointing per block (ours
vs torch.utils.checkpoint vs none: exactness, saved bytes, peak RSS, step time), resumes a run
with and without its optimizer / scheduler / RNG / data state, and SIGKILLs a training
subprocess mid-run and restarts it; writes the item tables to `reports/checkpointing/tables.txt`,
the plots to `plots/checkpointing/` and `metrics/checkpointing.json` (peak RSS and step times to
`metrics/timings/checkpointing.json`).
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "checkpointing"
OUTPUT = "reports/checkpointing"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.checkpointing_and_fault_tolerance import CheckpointingConfig, Inputs, run

    cfg = load_section(STAGE, CheckpointingConfig)
    results = run(cfg, Inputs(split_texts("train")))

    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
