"""Deterministic train/val/test splits by document, stratified by source.

Each document gets a key ``sha256(seed, doc_id)``; within each source the documents are ordered
by key and cut at the requested fractions. So the split of a document depends only on its id,
the seed and its source's size: re-running gives the same split, and every source is represented
in every split in proportion (a source with fewer documents than splits fills train first).

Small corpora (a user's own, after dedup and filter). Rounding down per source can leave val or
test empty; later stages evaluate on both, so an empty split with a positive fraction takes one
document from train (the train document with the highest key). Fewer than three documents cannot
fill three splits: :class:`~nlpcurriculum.data.errors.CorpusTooSmallError` says so.
:func:`split_warnings` names splits so small that their numbers are noise, with the counts and the
keys to change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.data.schemas import SPLIT_NAMES

#: A val or test split with fewer documents than this gets a warning (its metrics are noise).
MIN_SPLIT_DOCUMENTS = 5


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
    """Return ``docs`` with a ``split`` column, ordered by split, source and key.

    Raises:
        CorpusTooSmallError: fewer documents than the splits that must be non-empty (train,
            plus val and test when their fractions are positive).
    """
    fractions = {"val": cfg.val_fraction, "test": cfg.test_fraction}
    needed = {"train"} | {name for name, f in fractions.items() if f > 0}
    if len(docs) < len(needed):
        raise CorpusTooSmallError(
            f"splits: {len(docs)} document(s) left after dedup and filter, but "
            f"{', '.join(sorted(needed))} need one each: add documents to the corpus (ingest.path), "
            "or see metrics/filter.json and metrics/dedup.json for what was dropped"
        )
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
    for name in sorted(needed - {"train"}):  # a small corpus: no source rounded up to one
        if not (out["split"] == name).any():
            out.loc[out.loc[out["split"] == "train", "_key"].idxmax(), "split"] = name
    rank = {name: i for i, name in enumerate(SPLIT_NAMES)}
    out = out.sort_values(["split", "source", "_key"], key=lambda c: c.map(rank) if c.name == "split" else c)
    return out.drop(columns="_key").reset_index(drop=True)


def split_warnings(split: pd.DataFrame) -> list[str]:
    """One line when val or test has fewer than :data:`MIN_SPLIT_DOCUMENTS` documents.

    The line gives every split's documents and characters and the keys to change.

    Args:
        split: the output of :func:`assign_splits`.
    """
    counts = split["split"].value_counts().to_dict()
    chars = split.groupby("split")["n_chars"].sum().to_dict()
    small = [n for n in ("val", "test") if 0 < counts.get(n, 0) < MIN_SPLIT_DOCUMENTS]
    if not small:
        return []
    sizes = ", ".join(f"{n} {counts.get(n, 0)} ({chars.get(n, 0):,} chars)" for n in SPLIT_NAMES)
    return [f"splits: {' and '.join(small)} under {MIN_SPLIT_DOCUMENTS} documents ({sizes}): their "
            "numbers will be noise; add documents or raise "
            + " / ".join(f"splits.{n}_fraction" for n in small)]
