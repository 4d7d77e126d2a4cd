"""Stage `ingest`: load the configured corpus as one table of documents with provenance.

Reads params `ingest` (see `SourceConfig`); writes `data/interim/documents.parquet` under the
`documents` contract and `metrics/ingest.json`.
"""

import time

from nlpcurriculum.data.schemas import DOCUMENTS, write_table
from nlpcurriculum.data.sources import SourceConfig, load_documents
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

OUTPUT = "data/interim/documents.parquet"


def main() -> None:
    started = time.time()
    cfg = load_section("ingest", SourceConfig)
    docs, stats = load_documents(cfg)
    write_table(docs, OUTPUT, DOCUMENTS)
    per_source = docs.groupby("source")["n_chars"].agg(["count", "sum"])
    metrics = {**stats, "chars": int(docs["n_chars"].sum())}
    for source, row in per_source.iterrows():
        metrics[f"documents.{source}"] = int(row["count"])
        metrics[f"chars.{source}"] = int(row["sum"])
    publish("ingest", {"ingest": cfg}, metrics=metrics, started=started)
    print(f"ingest: {stats['documents']} documents, {metrics['chars']:,} chars -> {OUTPUT}")


if __name__ == "__main__":
    main_guard(main)
