"""Stage `semantic_cache`: "Chunking & Indexing Strategies" item 3 on a BEIR-format benchmark.

Reads params `semantic_cache` (`SemanticCacheConfig`) and the BEIR folder it names (default
`data/beir_scifact`: corpus, test and train claims). Trains the bi-encoder, caches half of each
split's claims, looks up their rewordings and the other claims, chooses the cosine threshold on
the train claims, and measures hit and false-hit rates, latency and invalidation on the test
claims. Writes the table to `reports/semantic_cache/`, the figures to `plots/semantic_cache/`,
`metrics/semantic_cache.json` and the clock readings to `metrics/timings/semantic_cache.json`.

Another BEIR-format folder: set `semantic_cache.data` (DVC tracks the folder named there).
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "semantic_cache"
OUTPUT = "reports/semantic_cache"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.chunking_and_indexing_strategies.semantic_cache import SemanticCacheConfig, load_inputs, run

    cfg = load_section(STAGE, SemanticCacheConfig)
    results = run(cfg, load_inputs(cfg))
    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)


if __name__ == "__main__":
    main_guard(main)
