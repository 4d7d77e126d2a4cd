"""Stage `attention`: "Self-Attention & Multihead Attention" (items 1-3).

Reads params `attention` and the corpus splits `data/processed/splits/{train,val}.parquet` (the
`splits` contract), tokenized as UTF-8 bytes. Trains a small mini-former, hand-wires one query of
it, plots every head and tests the causal mask; writes the trained model to
`models/attention/miniformer.pt` (+ `.json` sidecar), the item tables to
`reports/attention/tables.txt`, the plots to `plots/attention/` and `metrics/attention.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "attention"
OUTPUT = "models/attention"
REPORTS = "reports/attention"


def main() -> None:
    started = time.time()
    from dataclasses import asdict

    from nlpcurriculum.experiments.self_attention_and_multihead_attention import (
        AttentionConfig,
        Inputs,
        Outputs,
        run,
    )
    from nlpcurriculum.training.checkpoint import save_checkpoint

    cfg = load_section(STAGE, AttentionConfig)
    train, val = split_texts("train"), split_texts("val")
    built = Outputs()
    results = run(cfg, Inputs(train, val), built)
    model = built.model

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        save_checkpoint(tmp / "miniformer.pt", model=model, model_config=asdict(model.config),
                        trainer_config=asdict(cfg.train))
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
