"""Stage `gqa`: "Grouped Query Attention" (items 1-3).

Reads params `gqa` and the corpus splits `data/processed/splits/{train,val}.parquet` (the `splits`
contract), tokenized as UTF-8 bytes. Trains a multi-head mini-former, converts it to grouped-query
layout for every K/V head count (mean-pooled heads), uptrains each briefly, repeats item 1 on
every seed of `gqa.seeds` against an equally uptrained MHA and a GQA trained from scratch, and
times batched cached greedy decoding (one thread; clock readings to `metrics/timings/gqa.json`); writes the tables to `reports/gqa/`, the plots to
`plots/gqa/` and `metrics/gqa.json`.

Reproduce the decode-speed figure: `python -m nlpcurriculum profile default && dvc repro gqa`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "gqa"
OUTPUT = "reports/gqa"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.grouped_query_attention import GQAConfig, Inputs, run

    cfg = load_section(STAGE, GQAConfig)
    train, val = (split_texts(n) for n in ("train", "val"))
    results = run(cfg, Inputs(train, val))

    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
