"""Stage `mixed_precision`: "Mixed Precision & Gradient Accumulation" (items 1-3).

Reads params `mixed_precision` and the corpus's train split `data/processed/splits/train.parquet`
(UTF-8 bytes). Checks our dynamic loss scaler against torch.amp.GradScaler, trains fp32 / bf16 /
fp16 autocast, proves gradient accumulation equal to one big batch, and measures throughput and
saved-activation memory on this CPU; writes the tables to `reports/mixed_precision/tables.txt`,
the plots to `plots/mixed_precision/` and `metrics/mixed_precision.json` (tokens/s, speed-ups and
the CPU's native-bf16 flag to `metrics/timings/mixed_precision.json`).
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "mixed_precision"
OUTPUT = "reports/mixed_precision"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.mixed_precision_and_gradient_accumulation import (
        Inputs,
        MixedPrecisionConfig,
        run,
    )

    cfg = load_section(STAGE, MixedPrecisionConfig)
    results = run(cfg, Inputs(split_texts("train")))

    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
