"""Stage `moe`: "Mixture of Experts (MoE)" (items 1-3).

Reads params `moe` and the corpus splits `data/processed/splits/{train,val}.parquet` (the
`splits` contract), tokenized as UTF-8 bytes. Trains MoE mini-formers (the main one, one
without the balancing loss, the `variants`) and a sweep of dense ones, measures routing by byte
kind, expert utilization, FLOPs per token (counted and by hand) and wall time per step; writes
the item tables to `reports/moe/tables.txt`, the plots to `plots/moe/` and `metrics/moe.json`.
Item 3's wall times (`*.ms_per_step`, `wall_ratio*`, `equal_quality.ms_per_step`, the dispatch
overhead, its figure's right panel) differ from run to run and machine to machine: they go to
`metrics/timings/moe.json` with the host, so `metrics/moe.json` is the same on a rerun.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "moe"
OUTPUT = "reports/moe"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.mixture_of_experts import Inputs, MoEExperimentConfig, run

    cfg = load_section(STAGE, MoEExperimentConfig)
    train, val = (split_texts(n) for n in ("train", "val"))
    results = run(cfg, Inputs(train, val))

    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
