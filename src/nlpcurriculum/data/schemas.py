"""Data contracts: pandera schemas at every stage boundary.

A stage validates what it reads and what it writes. A violation raises :class:`ContractError`
whose message names the contract, the column, the failed check and one failing row, so a user can
find the bad record in their corpus; the stage exits non-zero before writing anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from nlpcurriculum.data.errors import ContractError

SPLIT_NAMES = ("train", "val", "test")


DOCUMENTS = pa.DataFrameSchema(
    {
        "doc_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "text": pa.Column(str, pa.Check.str_length(min_value=1)),
        "source": pa.Column(str, pa.Check.str_length(min_value=1)),
        "provenance": pa.Column(str, pa.Check.str_length(min_value=1)),
        "n_chars": pa.Column(int, pa.Check.ge(1)),
    },
    strict=True,
    name="documents",
    checks=pa.Check(
        lambda df: df["n_chars"] == df["text"].str.len(), name="n_chars_matches_text"
    ),
)

SPLITS = DOCUMENTS.add_columns(
    {"split": pa.Column(str, pa.Check.isin(SPLIT_NAMES))}
).set_name("splits")

DROPPED = pa.DataFrameSchema(
    {
        "doc_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "source": pa.Column(str),
        "provenance": pa.Column(str),
        "n_chars": pa.Column(int, pa.Check.ge(1)),
        "reason": pa.Column(str, pa.Check.str_length(min_value=1)),
        "kept_doc_id": pa.Column(str, nullable=True),
        "similarity": pa.Column(float, nullable=True),
        "perplexity": pa.Column(float, nullable=True),
        "preview": pa.Column(str),
    },
    strict=True,
    name="dropped",
)
"""Rows a cleaning stage dropped: why (``reason``), the survivor of a duplicate cluster
(``kept_doc_id``), the estimated Jaccard or the perplexity, and the text's first characters."""

AUGMENTATION_OPS = ("original", "eda", "synonym", "backtranslation", "lm_paraphrase")

AUGMENTED = pa.DataFrameSchema(
    {
        "text": pa.Column(str, pa.Check.str_length(min_value=1)),
        "label": pa.Column(int, pa.Check.ge(0)),
        "op": pa.Column(str, pa.Check.isin(AUGMENTATION_OPS)),
        "parent_id": pa.Column(str, pa.Check.str_length(min_value=1)),
    },
    strict=True,
    name="augmented",
)
"""A labelled set with its augmentations (stage ``augmentation``): each row's text and label,
the operation that made it (``original`` for the labelled example itself) and the id of the
original it came from."""


def validate(df: pd.DataFrame, schema: pa.DataFrameSchema, origin: str) -> pd.DataFrame:
    """Validate ``df`` against ``schema``; ``origin`` names where the table came from.

    Raises:
        ContractError: naming the column, the check and one failing row.
    """
    try:
        return schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        # Column checks name the culprit best; table-wide checks (uniqueness, n_chars) come after.
        column_cases = cases[cases["schema_context"] == "Column"]
        first = (column_cases if len(column_cases) else cases).iloc[0]
        column, check = first["column"], first["check"]
        where = f"column {column!r}" if first["schema_context"] == "Column" else "table"
        index = first["index"]
        row = ""
        if index is not None and not pd.isna(index) and index in df.index:
            record = {k: _short(v) for k, v in df.loc[index].to_dict().items()}
            row = f"; failing row {index}: {record}"
        else:
            row = f"; failing value: {_short(first['failure_case'])}"
        more = f" ({len(cases) - 1} more failures)" if len(cases) > 1 else ""
        raise ContractError(
            f"{origin}: violates the {schema.name!r} contract: {where} "
            f"failed check {check!r}{row}{more}"
        ) from None


def _short(value: object, limit: int = 80) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def read_table(path: str | Path, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Read a parquet table written by an upstream stage and check its contract.

    Raises:
        FileNotFoundError: naming the path and the stage that should have produced it.
        ContractError: when the file is not readable parquet or breaks the contract.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: input table not found (run the stage that writes it)")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several error types for a damaged file
        raise ContractError(f"{path}: not a readable parquet file ({exc})") from None
    return validate(df, schema, origin=str(path))


def write_table(df: pd.DataFrame, path: str | Path, schema: pa.DataFrameSchema) -> None:
    """Check the contract, then write parquet atomically (nothing is written on a violation)."""
    from nlpcurriculum.io import atomic_path

    validate(df, schema, origin=f"output {path}")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def split_texts(split: str, folder: str | Path = "data/processed/splits") -> list[str]:
    """The ``text`` column of one split written by the ``splits`` stage, contract checked."""
    return read_table(Path(folder) / f"{split}.parquet", SPLITS)["text"].tolist()
