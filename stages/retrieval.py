"""Stage `retrieval`: "Retrieval-Augmented Generation (RAG)" items 1-2 on a BEIR-format benchmark.

Reads params `retrieval` (`RetrievalConfig`) and the BEIR folder it names (default
`data/beir_scifact`: corpus, test and train qrels). Trains the bi-encoder once per seed (pairs
from the corpus and the train claims), puts its passages into FAISS (flat, IVF, HNSW) and fuses
it with our BM25; scores everything on the test claims. Writes the seed-0 flat FAISS index
`models/retrieval/passages.faiss` (`faiss.read_index`) and the encoder's weights
`models/retrieval/encoder.pt`, the tables to `reports/retrieval/`, the figures to
`plots/retrieval/` and `metrics/retrieval.json`.

Another BEIR-format folder: set `retrieval.data` (DVC tracks the folder named there).
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "retrieval"
OUTPUT = "reports/retrieval"
MODELS = "models/retrieval"


def main() -> None:
    started = time.time()
    import faiss
    import torch

    from nlpcurriculum.experiments.retrieval_augmented_generation.retrieval import (
        Outputs, RetrievalConfig, load_inputs, run)
    from nlpcurriculum.io import atomic_path

    cfg = load_section(STAGE, RetrievalConfig)
    outputs = Outputs()
    results = run(cfg, load_inputs(cfg), outputs)
    with atomic_path(MODELS, is_dir=True) as tmp:
        faiss.write_index(outputs.faiss_index, str(tmp / "passages.faiss"))
        torch.save(outputs.encoder_state, tmp / "encoder.pt")

    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)


if __name__ == "__main__":
    main_guard(main)
