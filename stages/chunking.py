"""Stage `chunking`: "Chunking & Indexing Strategies" (items 1-2) on a BEIR-format benchmark.

Reads params `chunking` (`ChunkingConfig`) and the BEIR folder it names (default
`data/beir_scifact`, the shipped SciFact copy: corpus, queries, test and train qrels). Indexes the
corpus with our BM25 whole and cut by each chunker (paragraph, sentence, sliding windows with and
without overlap), builds the document -> section -> sentence index (weights picked on the train
claims), and scores every method on the test claims. Writes the whole-document BM25 index to
`models/chunking/bm25.npz` (+ `.json` sidecar; `BM25Index.load` reads it back), the tables to
`reports/chunking/`, the figures to `plots/chunking/` and `metrics/chunking.json`.

Another BEIR-format folder: set `chunking.data` (DVC tracks the folder named there).
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "chunking"
OUTPUT = "reports/chunking"
INDEX = "models/chunking/bm25.npz"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.chunking_and_indexing_strategies.chunking import (ChunkingConfig, Outputs,
                                                                            load_inputs, run)

    cfg = load_section(STAGE, ChunkingConfig)
    inputs = load_inputs(cfg)
    outputs = Outputs()
    results = run(cfg, inputs, outputs)
    outputs.index.save(INDEX)

    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)


if __name__ == "__main__":
    main_guard(main)
