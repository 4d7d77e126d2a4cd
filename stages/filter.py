"""Stage `filter`: Gopher/C4 heuristic quality rules, then a Kneser-Ney perplexity filter.

Reads `data/interim/deduped.parquet` and params `filter` (see `FilterStageConfig`); writes
`data/interim/filtered.parquet` (the `documents` contract), `data/interim/filter_dropped.parquet`
(every dropped row with its reason code and perplexity), `plots/filter/` and
`metrics/filter.json` (drop counts per reason). Item deduplication-and-filtering/2: injected
junk benchmark (perplexity rank AUC, drop rates, clean keep rate).
"""

import sys
import time

from nlpcurriculum.data.schemas import DOCUMENTS, DROPPED, read_table, write_table
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

INPUT = "data/interim/deduped.parquet"
OUTPUT = "data/interim/filtered.parquet"
DROPPED_OUTPUT = "data/interim/filter_dropped.parquet"


def main() -> None:
    started = time.time()
    from nlpcurriculum.data.cleaning import filter_documents
    from nlpcurriculum.experiments.deduplication_and_filtering.filter import FilterStageConfig, Inputs, run

    cfg = load_section("filter", FilterStageConfig)
    docs = read_table(INPUT, DOCUMENTS)
    tables = filter_documents(docs, cfg.quality, cfg.perplexity)
    write_table(tables.dropped, DROPPED_OUTPUT, DROPPED)
    write_table(tables.kept, OUTPUT, DOCUMENTS)
    results = run(cfg, Inputs(docs["text"].tolist(), docs["source"].tolist(), tables))
    for line in tables.warnings:  # defaults written for the built-in corpus, adapted to this one
        print(f"warning: {line}", file=sys.stderr)
    metrics = {"documents_in": len(docs), "perplexity_threshold": tables.threshold,
               **{f"dropped.{k}" if k != "kept" else k: v for k, v in tables.counts.items()}}
    publish("filter", {"filter": cfg}, metrics=metrics, results=results, started=started)
    drops = ", ".join(f"{k} {v}" for k, v in tables.counts.items() if k != "kept")
    print(f"filter: kept {tables.counts['kept']} of {len(docs)} ({drops}) -> {OUTPUT}")


if __name__ == "__main__":
    main_guard(main)
