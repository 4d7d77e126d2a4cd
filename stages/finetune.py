"""Stage `finetune`: fine-tune the base LM on a small custom dataset (the spine after `pretrain`).

Reads the custom dataset named by params `finetune.data` (a `.jsonl` or `.csv` file with the text
in `finetune.text_field`; default `data/custom/release_notes.jsonl`, see its SOURCE.md; a missing
file, an unknown format, a missing column or no text fails in one line naming the problem), the
pipeline tokenizer `models/tokenizer/tokenizer.json`, the base model `models/base/model.pt` and
the pipeline's val tokens `data/processed/tokens/` (forgetting). Fine-tunes every parameter of the
base model on the custom train split, trains the same architecture from scratch at the same
budget as the control, on several seeds (`FinetuneConfig`); writes the first seed's fine-tuned
model to `models/finetuned/model.pt` (+ `.json` sidecar; `models.load_model` rebuilds it), the
table to `reports/finetune/`, figures and curves to `plots/finetune/` and `metrics/finetune.json`.
Item finetuning-vs-instruction-tuning-vs-rlhf/1.
"""

import dataclasses
import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers import load_tokenizer
from nlpcurriculum.tokenizers.corpus import encode_documents, load_tokens

STAGE = "finetune"
BASE = "models/base/model.pt"
TOKENIZER = "models/tokenizer/tokenizer.json"
TOKENS = "data/processed/tokens"
MODEL = "models/finetuned/model.pt"
OUTPUT = "reports/finetune"


def main() -> None:
    started = time.time()
    from nlpcurriculum.adaptation.finetune import load_text_dataset, save_tuned, split_texts
    from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.finetune import (
        FinetuneConfig,
        Inputs,
        Outputs,
        run,
    )
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, FinetuneConfig)
    texts = load_text_dataset(cfg.data, cfg.text_field)
    train_texts, val_texts = split_texts(texts, cfg.val_fraction, cfg.split_seed)
    tok = load_tokenizer(TOKENIZER)
    arrays, meta = load_tokens(TOKENS, splits=["val"])
    base = load_model(BASE)
    inputs = Inputs(
        base_config=dataclasses.asdict(base.config), base_state=base.state_dict(),
        train_tokens=encode_documents(tok, train_texts, meta["eos_id"]),
        val_tokens=encode_documents(tok, val_texts, meta["eos_id"]),
        pipeline_val_tokens=arrays["val"],
        n_documents={"train": len(train_texts), "val": len(val_texts)})
    outputs = Outputs()
    results = run(cfg, inputs, outputs)

    base.load_state_dict(outputs.state)  # the base architecture, given the tuned weights
    save_tuned(MODEL, base, outputs.train, outputs.history,
               extra={"data": str(cfg.data), "text_field": cfg.text_field})
    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started,
            artifacts=[f"{OUTPUT}/tables.txt"])
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)
    print(f"{STAGE}: fine-tuned model (seed {outputs.train.seed}) -> {MODEL}")


if __name__ == "__main__":
    main_guard(main)
