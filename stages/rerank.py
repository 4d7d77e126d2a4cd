"""Stage `rerank`: "Cross-Encoder Reranking" (items 1-3) on a BEIR-format benchmark.

Reads params `rerank` (`RerankConfig`) and the BEIR folder it names (default `data/beir_scifact`,
the shipped SciFact copy: corpus, queries, test and train qrels), nothing else. Per seed, trains
the bi-encoder first stage, a cross-encoder and a ColBERT-style late-interaction model on the train
claims, reranks the bi-encoder's top k of every test claim with both, and times the first stage
alone and with each reranker; writes the item tables to `reports/rerank/`, the figures (nDCG@10
with intervals, precision-recall curves, latency by k, quality vs latency) to `plots/rerank/`,
`metrics/rerank.json` and the clock readings to `metrics/timings/rerank.json`.

Another BEIR-format folder: set `rerank.data` (DVC tracks the folder named there).
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "rerank"


def main() -> None:
    from nlpcurriculum.experiments import cross_encoder_reranking as experiment

    run_section(STAGE, experiment, experiment.RerankConfig, separate=True)


if __name__ == "__main__":
    main_guard(main)
