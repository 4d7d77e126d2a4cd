"""Deterministic train/val/test splits by document, stratified by source.

Each document gets a key ``sha256(seed, doc_id)``; within each source the documents are ordered
by key and cut at the requested fractions. So the split of a document depends only on its id,
the seed and its source's size: re-running gives the same split, and every source is represented
in every split in proportion (a source with fewer documents than splits fills train first).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nlpcurriculum.data.schemas import SPLIT_NAMES


@dataclass
class SplitConfig:
    """The ``splits`` section of params/pipeline.yaml: fractions of documents per split."""

    val_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave documents for train")


def assign_splits(docs: pd.DataFrame, cfg: SplitConfig) -> pd.DataFrame:
    """Return ``docs`` with a ``split`` column, ordered by split, source and key."""
    keys = docs["doc_id"].map(
        lambda d: hashlib.sha256(f"{cfg.seed}:{d}".encode()).hexdigest()
    )
    out = docs.assign(_key=keys, split="train")
    for _, group in out.groupby("source", sort=True):
        order = group.sort_values("_key").index
        n = len(order)
        # Round down for val/test so train keeps the remainder; small sources stay in train.
        n_val, n_test = int(np.floor(n * cfg.val_fraction)), int(np.floor(n * cfg.test_fraction))
        out.loc[order[:n_val], "split"] = "val"
        out.loc[order[n_val : n_val + n_test], "split"] = "test"
    rank = {name: i for i, name in enumerate(SPLIT_NAMES)}
    out = out.sort_values(["split", "source", "_key"], key=lambda c: c.map(rank) if c.name == "split" else c)
    return out.drop(columns="_key").reset_index(drop=True)
