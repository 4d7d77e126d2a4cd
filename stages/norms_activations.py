"""Stage `norms_activations`: "Normalization & Activations" (items 1-3).

Reads params `norms_activations` and the corpus splits `data/processed/splits/{train,val,test}.parquet`
(the `splits` contract), tokenized as UTF-8 bytes. Checks the by-hand norms and activations
against torch, trains one mini-former per norm and per activation on each of `seeds` (side by
side), and records their activations
layer by layer; writes the item tables to `reports/norms_activations/tables.txt`, the plots to
`plots/norms_activations/` and `metrics/norms_activations.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "norms_activations"
OUTPUT = "reports/norms_activations"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.normalization_and_activations import Inputs, NormsActivationsConfig, run

    cfg = load_section(STAGE, NormsActivationsConfig)
    train, val, test = (split_texts(n) for n in ("train", "val", "test"))
    results = run(cfg, Inputs(train, val, test))

    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
