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
from nlpcurriculum.stage import main_guard, publish

STAGE = "attention"
OUTPUT = "models/attention"


def main() -> None:
    started = time.time()
    from dataclasses import asdict

    from nlpcurriculum.experiments.attention import AttentionConfig, run_attention
    from nlpcurriculum.training.checkpoint import save_checkpoint

    cfg = load_section(STAGE, AttentionConfig)
    train, val = split_texts("train"), split_texts("val")
    model, results = run_attention(cfg, train, val)

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        save_checkpoint(tmp / "miniformer.pt", model=model, model_config=asdict(model.config),
                        trainer_config=asdict(cfg.train))
        (tmp / "tables.txt").write_text("".join(
            f"== {r.item} {name}\n{text}\n" for r in results for name, text in r.texts.items()),
            encoding="utf-8")
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    for r in results:
        print(f"{STAGE}: {r.item}: " + "; ".join(
            f"{f.metric}={f.value:.4g} {'pass' if f.passed else 'FAIL'}" for f in r.findings))


if __name__ == "__main__":
    main_guard(main)
