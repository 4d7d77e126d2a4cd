"""What an experiment hands back to its stage: metrics, curves, figures and checked findings.

Library experiments return an :class:`ItemResult` per curriculum item; the stage script passes it
to :func:`nlpcurriculum.tracking.log_item` (an MLflow child run) and writes its metrics JSON. The
library never talks to MLflow itself (DESIGN.md, convention 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """An expected finding of a curriculum item, checked against a measured number.

    Attributes:
        claim: the expected effect in words, e.g. "perturbing future tokens leaves past logits
            exactly unchanged".
        metric: name of the measured number the check is about.
        value: the measured number.
        passed: whether the measurement shows the expected effect.
        threshold: the bound the value was compared against, if any (for the report).
    """

    claim: str
    metric: str
    value: float
    passed: bool
    threshold: float | None = None

    @classmethod
    def at_least(cls, claim: str, metric: str, value: float, threshold: float) -> "Finding":
        """A finding that passes when ``value >= threshold``."""
        return cls(claim, metric, float(value), bool(value >= threshold), float(threshold))

    @classmethod
    def at_most(cls, claim: str, metric: str, value: float, threshold: float) -> "Finding":
        """A finding that passes when ``value <= threshold``."""
        return cls(claim, metric, float(value), bool(value <= threshold), float(threshold))


@dataclass
class ItemResult:
    """Everything one curriculum item's experiment produced.

    Attributes:
        item: the registry id of the item, e.g. ``"tokenization-and-embeddings/2"``.
        metrics: final scalar metrics, ``{name: value}``.
        series: step curves, ``{name: [(step, value), ...]}``.
        figures: matplotlib figures by file name (``"loss.png"``).
        texts: text artifacts by file name (``"samples.txt"``, ``"viz.html"``).
        files: binary artifacts by file name (``"encoding.gif"``): the stage's ``publish`` writes
            them to ``plots/<stage>/`` beside the figures and logs them to the item's MLflow run,
            so use a format ``dvc plots`` can show (``.gif``, ``.png``, ``.jpg``, ``.svg``).
        findings: the item's expected findings, checked.
    """

    item: str
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, value in self.metrics.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"metric {name!r} of item {self.item!r} is not a number: {value!r}")
        for name, data in self.files.items():
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"file {name!r} of item {self.item!r} is not bytes: {type(data).__name__}")
