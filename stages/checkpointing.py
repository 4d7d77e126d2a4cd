"""Stage `checkpointing`: "Checkpointing & Fault Tolerance" (items 1-3).

Reads params `checkpointing` and the train split `data/processed/splits/train.parquet` (the
`splits` contract), tokenized as UTF-8 bytes. Measures activation checkpointing per block (ours
vs torch.utils.checkpoint vs none: exactness, saved bytes, peak RSS, step time), resumes a run
with and without its optimizer / scheduler / RNG / data state, and SIGKILLs a training
subprocess mid-run and restarts it; writes the item tables to `models/checkpointing/tables.txt`,
the plots to `plots/checkpointing/` and `metrics/checkpointing.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

STAGE = "checkpointing"
OUTPUT = "models/checkpointing"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.checkpointing import CheckpointingConfig, run_checkpointing

    cfg = load_section(STAGE, CheckpointingConfig)
    results = run_checkpointing(cfg, split_texts("train"))

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        (tmp / "tables.txt").write_text("".join(
            f"== {r.item} {name}\n{text}\n" for r in results for name, text in r.texts.items()),
            encoding="utf-8")
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    for r in results:
        print(f"{STAGE}: {r.item}: " + "; ".join(
            f"{f.metric}={f.value:.4g} {'pass' if f.passed else 'FAIL'}" for f in r.findings))


if __name__ == "__main__":
    main_guard(main)
