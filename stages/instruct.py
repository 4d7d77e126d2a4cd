"""Stage `instruct`: instruction-tune the base LM on the synthetic instruction tasks (the spine).

Reads the instruction records `data/synthetic/instructions/{train,val,test}.jsonl` (written by
the `synthetic` stage: task type, prompt = instruction + input, reference response), the pipeline
tokenizer `models/tokenizer/tokenizer.json`, the base model `models/base/model.pt` and params
`instruct` (`InstructConfig`). Tunes the base model on the seen task types with the loss masked
to the responses (and unmasked, the ablation) on several seeds, holding out `unseen_types`, and
scores greedy exact match and response loss per task type; writes the first seed's masked model
to `models/instruct/model.pt` (+ `.json` sidecar; `models.load_model` rebuilds it), the table
and samples to `reports/instruct/`, figures to `plots/instruct/` and `metrics/instruct.json`.
Item finetuning-vs-instruction-tuning-vs-rlhf/2.
"""

import dataclasses
import functools
import json
import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers import load_tokenizer
from nlpcurriculum.tokenizers.corpus import encode_text, eos_id

STAGE = "instruct"
BASE = "models/base/model.pt"
TOKENIZER = "models/tokenizer/tokenizer.json"
RECORDS = "data/synthetic/instructions"
MODEL = "models/instruct/model.pt"
OUTPUT = "reports/instruct"


def main() -> None:
    started = time.time()
    from nlpcurriculum.adaptation.finetune import save_tuned
    from nlpcurriculum.experiments.finetuning_vs_instruction_tuning_vs_rlhf.instruct import (
        InstructConfig,
        Inputs,
        Outputs,
        run,
    )
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, InstructConfig)
    records = {}
    for split in ("train", "val", "test"):
        with open(f"{RECORDS}/{split}.jsonl", encoding="utf-8") as fh:
            records[split] = [json.loads(line) for line in fh if line.strip()]
    tok = load_tokenizer(TOKENIZER)
    base = load_model(BASE)
    inputs = Inputs(base_config=dataclasses.asdict(base.config), base_state=base.state_dict(),
                    records=records, encode=functools.partial(encode_text, tok),
                    decode=tok.decode, eos=eos_id(tok))
    outputs = Outputs()
    results = run(cfg, inputs, outputs)

    base.load_state_dict(outputs.state)  # the base architecture, given the tuned weights
    save_tuned(MODEL, base, outputs.train, outputs.history,
               extra={"unseen_types": list(cfg.unseen_types), "separator": cfg.separator,
                      "loss": "response-masked"})
    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started,
            artifacts=[f"{OUTPUT}/tables.txt"])
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)
    print(f"{STAGE}: instruction-tuned model (masked, seed {outputs.train.seed}) -> {MODEL}")


if __name__ == "__main__":
    main_guard(main)
