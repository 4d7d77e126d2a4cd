"""Stage `dedup_impact`: does deduplication / filtering change what an LM learns?

Reads the raw, deduplicated and filtered documents (`data/interim/{documents,deduped,
filtered}.parquet`, the `documents` contract), the `splits` stage's val and test documents as a
clean held-out set (removed by `doc_id` from the training sets here, and by near-duplicate inside
the experiment), and params `dedup_impact`; trains the same LM on a deduplicated subset, the same
subset with planted duplicated passages, and a filtered subset, at an equal step budget over
several seeds; measures clean held-out loss and the memorisation of the duplicated passages, and
writes `plots/dedup_impact/` and `metrics/dedup_impact.json`. Item
deduplication-and-filtering/3. The dedup and filter stages' outputs are only read.
"""

import time

import pandas as pd

from nlpcurriculum.data.schemas import DOCUMENTS, SPLITS, read_table
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

STAGE = "dedup_impact"
TRAIN_SETS = {
    "raw": "data/interim/documents.parquet",
    "deduped": "data/interim/deduped.parquet",
    "filtered": "data/interim/filtered.parquet",
}
HELDOUT = ("data/processed/splits/val.parquet", "data/processed/splits/test.parquet")


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.deduplication_and_filtering.dedup_impact import (
        DedupImpactConfig,
        Inputs,
        run,
    )

    cfg = load_section(STAGE, DedupImpactConfig)
    heldout = pd.concat([read_table(p, SPLITS) for p in HELDOUT], ignore_index=True)
    held_ids = set(heldout["doc_id"])
    train_sets = {}
    for name, path in TRAIN_SETS.items():
        docs = read_table(path, DOCUMENTS)
        train_sets[name] = list(docs.loc[~docs["doc_id"].isin(held_ids), "text"])
    (result,) = run(cfg, Inputs(train_sets, list(heldout["text"])))
    metrics = {"heldout.documents": len(heldout)}
    publish(STAGE, {STAGE: cfg}, metrics=metrics, results=[result], started=started)
    print(f"{STAGE}:\n{result.texts['results.txt']}" + "; ".join(
        f"{f.metric}={f.value:.3f} {'pass' if f.passed else 'FAIL'}" for f in result.findings))


if __name__ == "__main__":
    main_guard(main)
