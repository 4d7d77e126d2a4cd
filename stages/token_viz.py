"""Stage `token_viz`: which chunk of a text became which id, under each of our tokenizers.

Item tokenization-and-embeddings/7. Reads the four tokenizers `tokenizer_compare` saved
(`models/tokenizer_compare/<kind>.json`), sample paragraphs of `data/processed/splits/val.parquet`
and params `token_viz`; renders them side by side (plus a `tiktoken.Encoding` built from our BPE
ranks, which must show the same ids), writes the self-contained page `reports/token_viz/token_viz.html`,
logs it and the terminal rendering to MLflow, and writes `metrics/token_viz.json`.
"""

import time

from nlpcurriculum.data.schemas import SPLITS, read_table
from nlpcurriculum.io import write_text
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish
from nlpcurriculum.tokenizers import load_tokenizer

VAL = "data/processed/splits/val.parquet"
MODELS = "models/tokenizer_compare"
OUTPUT = "reports/token_viz/token_viz.html"
NAMES = {"wordpiece": "WordPiece", "bpe": "BPE", "unigram": "Unigram", "sentencepiece": "SentencePiece"}


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.tokenization_and_embeddings.token_viz import (
        Inputs,
        TokenVizConfig,
        run,
        sample_paragraphs,
    )
    from nlpcurriculum.experiments.tokenization_and_embeddings.tokenizer_compare import tiktoken_encoding

    cfg = load_section("token_viz", TokenVizConfig)
    tokenizers = {name: load_tokenizer(f"{MODELS}/{kind}.json") for kind, name in NAMES.items()}
    if cfg.include_tiktoken:
        tokenizers["tiktoken with our BPE ranks"] = tiktoken_encoding(tokenizers["BPE"])
    val = read_table(VAL, SPLITS)
    groups = {source: part["text"].tolist() for source, part in val.groupby("source", sort=True)}
    samples = sample_paragraphs(groups, cfg.n_samples, cfg.max_chars)
    text = "\n\n".join(samples + ([cfg.extra_text] if cfg.extra_text else []))
    (result,) = run(cfg, Inputs(text, tokenizers))
    write_text(OUTPUT, result.texts["token_viz.html"])
    publish("token_viz", {"token_viz": cfg}, results=[result], started=started)
    print(f"token_viz: {len(samples)} samples, {len(text)} chars, {len(tokenizers)} tokenizers -> {OUTPUT}")


if __name__ == "__main__":
    main_guard(main)
