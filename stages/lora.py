"""Stage `lora`: "Low-Rank Adaptation (LoRA) & PEFT" (items 1-3) on the trained base model.

Reads `models/base/model.pt` (`load_model`), the tokenizer `models/tokenizer/tokenizer.json` (the
classification documents are generated from `lora.data_seed` and tokenized with it) and params
`lora` (`LoRAExperimentConfig`). Adapts the base LM to topic classification with a head only,
full fine-tuning, LoRA at every rank of the sweep, prefix tuning and bottleneck adapters, checks
LoRA and prefix tuning against peft on the same weights; writes the item tables to
`reports/lora/tables.txt`, the plot to `plots/lora/`, `metrics/lora.json` and the seconds per
step to `metrics/timings/lora.json`.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers import load_tokenizer

STAGE = "lora"
MODEL = "models/base/model.pt"
TOKENIZER = "models/tokenizer/tokenizer.json"
REPORT = "reports/lora"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.low_rank_adaptation_and_peft import (
        Inputs,
        LoRAExperimentConfig,
        run,
    )
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, LoRAExperimentConfig)
    tok = load_tokenizer(TOKENIZER)
    results = run(cfg, Inputs(load_model(MODEL), tok.encode))
    save_item_texts(REPORT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
