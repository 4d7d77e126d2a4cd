"""Stage `long_context`: "Long-Context Tricks: Infini-Attention / Sliding Window" (items 1-3).

Reads the splits `data/processed/splits/{train,val}.parquet` (the `splits` contract, tokenized as
UTF-8 bytes by the experiment: item 3's corpus models train on train; val's documents of at least
16x the training context are the long documents)
and params `long_context` (`LongContextConfig`); the recall task and the decode benchmark are
generated from seeds. Writes the item tables to `reports/long_context/tables.txt`, the figures
to `plots/long_context/`, `metrics/long_context.json`, and the time and memory readings to
`metrics/timings/long_context.json`.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.data.schemas import split_texts

STAGE = "long_context"
OUTPUT = "reports/long_context"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments import long_context_tricks_infini_attention_sliding_window as experiment

    cfg = load_section(STAGE, experiment.LongContextConfig)
    inputs = experiment.Inputs(split_texts("train"), split_texts("val"))
    results = experiment.run(cfg, inputs)
    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started, artifacts=[f"{OUTPUT}/tables.txt"])
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
