"""Stage `scaling_laws`: "Scaling Laws & Model Capacity" (items 1-3).

Reads params `scaling_laws` and the corpus splits `data/processed/splits/{train,val}.parquet`
(the `splits` contract), tokenized as UTF-8 bytes. Trains a ladder of mini-former sizes at one
token budget, fits L(N) = E + A N^-alpha, benchmarks time / throughput / memory per size, and
predicts and verifies the smallest size that reaches a target loss; writes the item tables to
`reports/scaling_laws/tables.txt`, the plots to `plots/scaling_laws/` and
`metrics/scaling_laws.json` (wall times, tokens/s and peak RSS to
`metrics/timings/scaling_laws.json`).
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "scaling_laws"
OUTPUT = "reports/scaling_laws"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.scaling_laws_and_model_capacity import Inputs, ScalingConfig, run

    cfg = load_section(STAGE, ScalingConfig)
    results = run(cfg, Inputs(split_texts("train"), split_texts("val")))

    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
