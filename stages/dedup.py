"""Stage `dedup`: exact and MinHash-LSH near-duplicate removal, one document kept per cluster.

Reads `data/interim/documents.parquet` and params `dedup` (see `DedupStageConfig`); writes
`data/interim/deduped.parquet` (the `documents` contract), `data/interim/dedup_dropped.parquet`
(every dropped row with its reason and the doc_id it duplicates), `plots/dedup/` and
`metrics/dedup.json`. Item deduplication-and-filtering/1: planted-duplicate benchmark,
datasketch agreement and the LSH S-curve.
"""

import time

from nlpcurriculum.data.schemas import DOCUMENTS, DROPPED, read_table, write_table
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

INPUT = "data/interim/documents.parquet"
OUTPUT = "data/interim/deduped.parquet"
DROPPED_OUTPUT = "data/interim/dedup_dropped.parquet"


def main() -> None:
    started = time.time()
    from nlpcurriculum.data.cleaning import dedup_documents
    from nlpcurriculum.experiments.deduplication_and_filtering.dedup import DedupStageConfig, Inputs, run

    cfg = load_section("dedup", DedupStageConfig)
    docs = read_table(INPUT, DOCUMENTS)
    tables = dedup_documents(docs, cfg.lsh)
    write_table(tables.dropped, DROPPED_OUTPUT, DROPPED)
    write_table(tables.kept, OUTPUT, DOCUMENTS)
    results = run(cfg, Inputs(tables))
    metrics = {"documents_in": len(docs), **tables.counts}
    publish("dedup", {"dedup": cfg}, metrics=metrics, results=results, started=started)
    note = f" ({tables.counts['clusters_collapsed']} clusters collapsed to one document each)"
    print(f"dedup: kept {tables.counts['kept']} of {len(docs)}{note} -> {OUTPUT}")


if __name__ == "__main__":
    main_guard(main)
