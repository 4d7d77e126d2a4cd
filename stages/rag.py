"""Stage `rag`: "Retrieval-Augmented Generation (RAG)" item 3: our LM reading retrieved passages.

Reads params `rag` only: its corpus is a facts world generated from each seed. Trains a
mini-former reader per seed on questions about the train entities, retrieves passages for the
test entities' questions with our BM25 (reranked or not), and scores the reader closed-book,
with the oracle passage, at each k and under each truncation strategy; writes the table to
`reports/rag/rag.txt`, the figures to `plots/rag/`, `metrics/rag.json` and the training times
to `metrics/timings/rag.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "rag"


def main() -> None:
    from nlpcurriculum.experiments.retrieval_augmented_generation import rag as experiment

    run_section(STAGE, experiment, experiment.RagConfig, separate=True)


if __name__ == "__main__":
    main_guard(main)
