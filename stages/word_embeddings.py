"""Stage `word_embeddings`: CBOW, Skip-gram and one-hot vs learned embeddings (items 5, 6, 8).

Reads params `word_embeddings` and, for the real-corpus neighbour lists, the training split
`data/processed/splits/train.parquet` (the `splits` contract). Generates the stories with known
word relations, trains both word2vec architectures on them and checks the findings (with the
controls of `word_embeddings.controls`: ours vs gensim's Word2Vec vs PPMI-SVD over fresh seeds, on
stories where unrelated words share contexts; needs gensim, the `oracles` extra); writes the
vectors to `models/word_embeddings/` (`cbow.npz`, `skipgram.npz`, `corpus_skipgram.npz`, plus
`vectors.json` describing them), the items' neighbour lists and training times to
`reports/word_embeddings/tables.txt`, the plots to `plots/word_embeddings/` and
`metrics/word_embeddings.json`.
"""

import sys
import time

from nlpcurriculum.data.schemas import SPLITS, read_table
from nlpcurriculum.io import atomic_path, write_json
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish, save_item_texts

STAGE = "word_embeddings"
CORPUS = "data/processed/splits/train.parquet"
OUTPUT = "models/word_embeddings"
REPORTS = "reports/word_embeddings"


def main() -> None:
    started = time.time()
    from nlpcurriculum.embeddings.vocab import simple_word_tokenize
    from nlpcurriculum.experiments.tokenization_and_embeddings.word_embeddings import (
        Inputs,
        Outputs,
        WordEmbeddingsConfig,
        run,
    )

    cfg = load_section(STAGE, WordEmbeddingsConfig)
    corpus = None
    if cfg.corpus_epochs > 0:
        corpus = [simple_word_tokenize(t) for t in read_table(CORPUS, SPLITS)["text"]]
    built = Outputs()
    results = run(cfg, Inputs(corpus), built)
    vectors = built.vectors
    for line in built.warnings:  # settings adapted to a small corpus
        print(f"warning: {line}", file=sys.stderr)

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        for name, table in vectors.items():
            table.save(tmp / f"{name}.npz")
        write_json(tmp / "vectors.json", {  # the human-readable sidecar of the .npz files
            name: {"words": len(table), "dim": table.dim, "load": "WordVectors.load(path)"}
            for name, table in vectors.items()})
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    for r in results:
        print(f"{STAGE}: {r.item}: " + "; ".join(
            f"{f.metric}={f.value:.3f} {'pass' if f.passed else 'FAIL'}" for f in r.findings))


if __name__ == "__main__":
    main_guard(main)
