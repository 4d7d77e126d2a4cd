"""Stage `attention`: "Self-Attention & Multihead Attention" (items 1-3).

Reads params `attention` and the corpus splits `data/processed/splits/{train,val}.parquet` (the
`splits` contract), tokenized as UTF-8 bytes. Trains a small mini-former, hand-wires one query of
it, plots every head and tests the causal mask; writes the trained model to
`models/attention/miniformer.pt` (+ `.json` sidecar) with the item tables in
`models/attention/tables.txt`, the plots to `plots/attention/` and `metrics/attention.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import item_tables, main_guard, print_findings, publish

STAGE = "attention"
OUTPUT = "models/attention"


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
        (tmp / "tables.txt").write_text(item_tables(results), encoding="utf-8")
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
