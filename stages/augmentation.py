"""Stage `augmentation`: "Data Augmentation for NLP" (items 1-3).

Reads params `augmentation`, the synthetic classification task
`data/synthetic/classification/{train,val,test}.jsonl` (stage `synthetic`) and the word2vec tables
`models/word_embeddings/<table>.npz` (stage `word_embeddings`) for synonym neighbours. Builds the
EDA, embedding-synonym, back-translation (a translator trained here on a rule pseudo-language)
and LM-paraphrase (a byte LM trained here) augmentations of few-label training sets and sweeps
the augmentation ratio; writes the first seed's augmented set to
`data/augmented/train.parquet` (the `augmented` contract), the items' samples and tables to
`reports/augmentation/tables.txt`, the plots to `plots/augmentation/` and
`metrics/augmentation.json`.
"""

import json
import time
from pathlib import Path

from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "augmentation"
TASK = Path("data/synthetic/classification")
VECTORS = Path("models/word_embeddings")
OUTPUT = "data/augmented"
REPORTS = "reports/augmentation"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: input not found (run the `synthetic` stage)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                from nlpcurriculum.data.schemas import ContractError

                raise ContractError(f"{path}:{n}: not a JSON record ({exc})") from None
    return rows


def main() -> None:
    started = time.time()
    import pandas as pd

    from nlpcurriculum.augmentation.model_based import embedding_neighbours
    from nlpcurriculum.data.schemas import AUGMENTED, write_table
    from nlpcurriculum.embeddings.vectors import WordVectors
    from nlpcurriculum.experiments.data_augmentation_for_nlp import (
        AugmentationConfig,
        Inputs,
        Outputs,
        prepare_task,
        run,
    )

    cfg = load_section(STAGE, AugmentationConfig)
    train, val, test = (_read_jsonl(TASK / f"{s}.jsonl") for s in ("train", "val", "test"))
    data = prepare_task(train, val, test, cfg.test_from_pool, cfg.seed)
    tables = [WordVectors.load(VECTORS / f"{name}.npz") for name in cfg.tables]
    neighbours = embedding_neighbours(tables, cfg.neighbours_k, cfg.min_cos, cfg.band)
    built = Outputs()
    results = run(cfg, Inputs(data, neighbours), built)
    rows = built.rows

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        write_table(pd.DataFrame(rows, columns=["text", "label", "op", "parent_id"]),
                    tmp / "train.parquet", AUGMENTED)
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started,
            metrics={"augmented_rows": float(len(rows))})
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
