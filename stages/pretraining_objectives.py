"""Stage `pretraining_objectives`: "Pretraining Objectives" (items 1-3).

Reads params `pretraining_objectives` and the corpus splits
`data/processed/splits/{train,val,test}.parquet` (the `splits` contract), tokenized as UTF-8 bytes.
Trains a masked LM, a causal LM and a prefix LM of the same shape on the same windows for the same
steps, once per seed, probes them on held-out text (next-byte accuracy, continuation loss,
two-sided cloze) and samples from each; re-measures the MLM's position scheme on fresh seeds and
the test split; writes the tables and samples
to `reports/pretraining_objectives/`, the plots to `plots/pretraining_objectives/` and
`metrics/pretraining_objectives.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "pretraining_objectives"
OUTPUT = "reports/pretraining_objectives"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.pretraining_objectives import Inputs, PretrainingObjectivesConfig, run

    cfg = load_section(STAGE, PretrainingObjectivesConfig)
    train, val, test = (split_texts(n) for n in ("train", "val", "test"))
    results = run(cfg, Inputs(train, val, test))

    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
