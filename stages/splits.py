"""Stage `splits`: deterministic train/val/test split by document, stratified by source.

Reads `data/interim/filtered.parquet` (the `documents` contract) and params `splits`; writes
`data/processed/splits/{train,val,test}.parquet` through `datasets`, and `metrics/splits.json`.
"""

import sys
import time

from nlpcurriculum.data.schemas import DOCUMENTS, SPLIT_NAMES, SPLITS, read_table, validate
from nlpcurriculum.data.splits import SplitConfig, assign_splits, split_warnings
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

INPUT = "data/interim/filtered.parquet"
OUTPUT = "data/processed/splits"


def main() -> None:
    started = time.time()
    cfg = load_section("splits", SplitConfig)
    docs = read_table(INPUT, DOCUMENTS)
    split = validate(assign_splits(docs, cfg), SPLITS, origin="splits output")
    for line in split_warnings(split):
        print(f"warning: {line}", file=sys.stderr)

    import datasets  # heavy import, after the work

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        for name in SPLIT_NAMES:
            part = split[split["split"] == name].reset_index(drop=True)
            datasets.Dataset.from_pandas(part, preserve_index=False).to_parquet(
                str(tmp / f"{name}.parquet")
            )
    metrics = {}
    for name in SPLIT_NAMES:
        part = split[split["split"] == name]
        metrics[f"{name}.documents"] = int(len(part))
        metrics[f"{name}.chars"] = int(part["n_chars"].sum())
    publish("splits", {"splits": cfg}, metrics=metrics, started=started)
    print("splits: " + ", ".join(f"{n} {metrics[f'{n}.documents']}" for n in SPLIT_NAMES))


if __name__ == "__main__":
    main_guard(main)
