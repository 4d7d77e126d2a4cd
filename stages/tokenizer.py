"""Stage `tokenizer`: train the pipeline's tokenizer and encode every split into token ids.

Reads `data/processed/splits/{train,val,test}.parquet` (the `splits` contract) and params
`tokenizer` (see `TokenizerSpec`: kind, vocab_size, ...); writes `models/tokenizer/tokenizer.json`
(+ its `.vocab` sidecar), `data/processed/tokens/{train,val,test}.npy` + `meta.json` (read them
with `nlpcurriculum.tokenizers.corpus.load_tokens`) and `metrics/tokenizer.json`. Serves no
curriculum item: its MLflow experiment is `Pipeline`.
"""

import sys
import time

import numpy as np

from nlpcurriculum.data.schemas import SPLIT_NAMES, split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish
from nlpcurriculum.tokenizers.compression import corpus_compression_stats
from nlpcurriculum.tokenizers.corpus import TokenizerSpec, encode_documents, eos_id, save_tokens, train_tokenizer

MODEL = "models/tokenizer/tokenizer.json"
TOKENS = "data/processed/tokens"


def main() -> None:
    started = time.time()
    spec = load_section("tokenizer", TokenizerSpec)
    texts = {name: split_texts(name) for name in SPLIT_NAMES}
    tok = train_tokenizer(spec, texts["train"])
    if tok.vocab_size < spec.vocab_size:  # a small corpus: fewer merges/pieces than asked for
        print(f"warning: tokenizer: the train split ({sum(map(len, texts['train'])):,} chars) "
              f"supports {tok.vocab_size} of tokenizer.vocab_size {spec.vocab_size} ids; lower "
              "tokenizer.vocab_size or add documents", file=sys.stderr)
    eos = eos_id(tok)
    arrays = {name: encode_documents(tok, docs, eos) for name, docs in texts.items()}
    tok.save(MODEL)
    meta = save_tokens(TOKENS, arrays, kind=tok.kind, vocab_size=tok.vocab_size, eos_id=eos)

    val = corpus_compression_stats(tok, texts["val"])
    train_ids = arrays["train"][arrays["train"] != eos]
    metrics = {
        "vocab_size": tok.vocab_size,
        "eos_id": eos,
        "tokens_per_byte.val": val.tokens_per_byte,
        "fertility.val": val.fertility,
        "vocab_usage.val": val.vocab_usage,
        "vocab_usage.train": len(np.unique(train_ids)) / tok.vocab_size,
        **{f"n_tokens.{name}": n for name, n in meta["n_tokens"].items()},
        **{f"documents.{name}": len(docs) for name, docs in texts.items()},
    }
    publish("tokenizer", {"tokenizer": spec}, metrics=metrics, started=started)
    print(f"tokenizer: {spec.kind} v{tok.vocab_size}, {val.tokens_per_byte:.3f} tokens/byte on val, "
          f"{meta['n_tokens']['train']:,} train tokens -> {TOKENS}")


if __name__ == "__main__":
    main_guard(main)
