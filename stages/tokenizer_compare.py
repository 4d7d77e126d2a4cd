"""Stage `tokenizer_compare`: WordPiece, BPE, Unigram and SentencePiece across vocabulary sizes.

Items tokenization-and-embeddings/1-4. Reads `data/processed/splits/{train,val}.parquet` and
params `tokenizer_compare` (see `CompareConfig`); trains every tokenizer at every size on the
train split; measures tokens per byte, vocabulary usage and fertility on val per source (and on
synthetic stories, out of domain); checks parity with the reference libraries, the round trip and
the compression trend, and compares WordPiece with BPE under one normaliser and pre-tokeniser
(params `tokenizer_compare.controlled`: equal sizes, disjoint folds of the train split). Writes `models/tokenizer_compare/<kind>.json` (each kind at the largest
size, read by `token_viz`), `plots/tokenizer_compare/` and `metrics/tokenizer_compare.json`.
Needs the `oracles` extra (tiktoken, tokenizers, sentencepiece) for the parity checks.
"""

import time

from nlpcurriculum.data.schemas import SPLITS, read_table
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

SPLITS_DIR = "data/processed/splits"
MODELS = "models/tokenizer_compare"


def main() -> None:
    started = time.time()
    from nlpcurriculum.data.synthetic.stories import generate_stories
    from nlpcurriculum.experiments.tokenization_and_embeddings.tokenizer_compare import (
        CompareConfig,
        Inputs,
        compare_tokenizers,
        run,
    )
    from nlpcurriculum.io import atomic_path

    cfg = load_section("tokenizer_compare", CompareConfig)
    train = read_table(f"{SPLITS_DIR}/train.parquet", SPLITS)["text"].tolist()
    val = read_table(f"{SPLITS_DIR}/val.parquet", SPLITS)
    held_out = {source: part["text"].tolist() for source, part in val.groupby("source", sort=True)}
    extra = {"stories": generate_stories(cfg.n_stories, cfg.story_seed)} if cfg.n_stories else {}
    comparison = compare_tokenizers(cfg, train, held_out, extra)
    with atomic_path(MODELS, is_dir=True) as tmp:
        for kind, tok in comparison.tokenizers.items():
            tok.save(tmp / f"{kind}.json")
    results = run(cfg, Inputs(comparison))
    publish("tokenizer_compare", {"tokenizer_compare": cfg}, results=results, started=started)
    largest = cfg.vocab_sizes[-1]
    print("tokenizer_compare: tokens/byte on val at v%d: " % largest + ", ".join(
        f"{r.item.rsplit('/', 1)[1]}={r.metrics[f'tokens_per_byte.val.v{largest}']:.3f}" for r in results))


if __name__ == "__main__":
    main_guard(main)
