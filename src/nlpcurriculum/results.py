"""What an experiment hands back to its stage: metrics, curves, figures and checked findings.

Library experiments return an :class:`ItemResult` per curriculum item; the stage script passes it
to :func:`nlpcurriculum.tracking.log_item` (an MLflow child run) and writes its metrics JSON. The
library never talks to MLflow itself (docs/CONVENTIONS.md, convention 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


FINDING = "finding"
INVARIANT = "invariant"
KINDS = (FINDING, INVARIANT)

# A comparison passes only when its mean effect clears the margin by this many standard errors.
STANDARD_ERRORS = 2.0


@dataclass(frozen=True)
class Finding:
    """A checked claim of a curriculum item: a measured number against its bound.

    Two kinds (docs/CONVENTIONS.md, "Findings"):

    * an **invariant** holds by construction when the code is right (parity with a reference
      library, identical outputs, a formula equal to its count, a round trip). Failing one means a
      bug, not a result.
    * a **finding** is an empirical claim about an effect that could come out either way (a
      trained model beats its control, a cache makes decoding faster). Comparisons over seeds
      are built with :meth:`compare`, which records n, the mean effect, its standard error and
      the margin, and passes only when the effect clears the margin by two standard errors.

    Attributes:
        claim: the expected effect in words, e.g. "perturbing future tokens leaves past logits
            exactly unchanged".
        metric: name of the measured number the check is about.
        value: the measured number (for a comparison: the mean effect).
        passed: whether the measurement shows the expected effect.
        threshold: the bound the value was compared against, if any (for a comparison: the
            margin the effect must exceed).
        kind: ``"finding"`` or ``"invariant"``.
        n: number of independent samples behind ``value`` (seeds, prompts, rounds); ``None`` for
            a single measurement.
        se: standard error of ``value``; ``None`` for a single measurement.
        timed: the value is a clock or memory-allocator reading (a speed-up, a peak RSS): it depends
            on the machine and differs from run to run, so the stage writes it to
            ``metrics/timings/<stage>.json`` beside the item's ``timings``, apart from the
            deterministic results. :meth:`timing_ratio` sets it; mark others with :meth:`as_timed`.
    """

    claim: str
    metric: str
    value: float
    passed: bool
    threshold: float | None = None
    kind: str = FINDING
    n: int | None = None
    se: float | None = None
    timed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"finding kind must be one of {KINDS}, got {self.kind!r}")

    def as_timed(self) -> "Finding":
        """The same check, marked as measured with a clock (see ``timed``)."""
        return replace(self, timed=True)

    @classmethod
    def at_least(cls, claim: str, metric: str, value: float, threshold: float,
                 kind: str = FINDING) -> "Finding":
        """A check that passes when ``value >= threshold``."""
        return cls(claim, metric, float(value), bool(value >= threshold), float(threshold), kind)

    @classmethod
    def at_most(cls, claim: str, metric: str, value: float, threshold: float,
                kind: str = FINDING) -> "Finding":
        """A check that passes when ``value <= threshold``."""
        return cls(claim, metric, float(value), bool(value <= threshold), float(threshold), kind)

    @classmethod
    def invariant(cls, claim: str, metric: str, value: float, holds: bool,
                  threshold: float | None = None) -> "Finding":
        """An invariant: ``holds`` says whether the by-construction property held."""
        return cls(claim, metric, float(value), bool(holds),
                   None if threshold is None else float(threshold), INVARIANT)

    @classmethod
    def compare(
        cls,
        claim: str,
        metric: str,
        treatment: Sequence[float],
        control: Sequence[float] | None = None,
        *,
        margin: float = 0.0,
        higher_is_better: bool = True,
        paired: bool = True,
    ) -> "Finding":
        """An effect measured over independent samples, checked against a margin.

        The effect is ``treatment - control`` (per sample when ``paired``, e.g. the same seed and
        data for both arms; otherwise the difference of the two means), or ``treatment`` alone
        when there is no control. ``margin`` is how far the mean effect must go in the expected
        direction (up when ``higher_is_better``, else down); a negative margin states a
        non-inferiority bound. It passes only when the mean effect clears the margin by at least
        two standard errors, and strictly: a tie never passes, and neither does a single sample
        (its standard error is unknown). ``threshold`` records the bound on the mean effect
        (``margin``, or ``-margin`` when lower is better).

        Standard errors: paired, ``sd(d) / sqrt(n)``; unpaired, Welch's
        ``sqrt(var(t)/n_t + var(c)/n_c)``; both with ``ddof = 1``.

        Example: losses of a model without and with a trick on seeds 0-2, lower is better:
        ``compare("trick lowers val loss", "loss_gain", [3.1, 3.0, 3.2], [3.4, 3.35, 3.5],
        margin=0.05, higher_is_better=False)`` has effects -0.3, -0.35, -0.3 (mean -0.317,
        SE 0.017): the mean lies below the bound -0.05 by 0.267, 16 SE, so it passes.
        """
        t = [float(x) for x in treatment]
        if not t:
            raise ValueError(f"finding {metric!r}: no treatment samples")
        if control is None:
            n = len(t)
            mean, se = _mean(t), _sd(t) / math.sqrt(n) if n > 1 else math.nan
        else:
            c = [float(x) for x in control]
            if not c:
                raise ValueError(f"finding {metric!r}: no control samples")
            if paired:
                if len(c) != len(t):
                    raise ValueError(f"finding {metric!r}: paired samples differ in length "
                                     f"({len(t)} treatment, {len(c)} control)")
                effects = [a - b for a, b in zip(t, c)]
                n = len(effects)
                mean, se = _mean(effects), _sd(effects) / math.sqrt(n) if n > 1 else math.nan
            else:
                n = min(len(t), len(c))
                mean = _mean(t) - _mean(c)
                se = (math.sqrt(_sd(t) ** 2 / len(t) + _sd(c) ** 2 / len(c))
                      if n > 1 else math.nan)
        sign = 1.0 if higher_is_better else -1.0
        clearance = sign * mean - margin
        passed = bool(n > 1 and math.isfinite(se) and clearance > 0
                      and clearance >= STANDARD_ERRORS * se)
        return cls(claim, metric, mean, passed, sign * float(margin), FINDING, n, se)


    @classmethod
    def timing_ratio(
        cls,
        claim: str,
        metric: str,
        baseline_s: Sequence[float],
        treatment_s: Sequence[float],
        min_ratio: float,
    ) -> "Finding":
        """A speed-up measured over interleaved rounds: baseline time / treatment time, per round.

        ``baseline_s[i]`` and ``treatment_s[i]`` come from the same round
        (:func:`nlpcurriculum.metrics.timing.interleaved_rounds`). The value is the median of the
        per-round ratios; its standard error is the robust one, ``1.2533 * 1.4826 * MAD /
        sqrt(n)`` (the median's SE for normal data, with the spread from the median absolute
        deviation so that a few disturbed rounds do not inflate it). It passes when the median
        exceeds ``min_ratio`` by at least two of those standard errors, and strictly.

        Example: rounds of 10, 11, 10, 30 ms against 5, 5, 5, 5 ms give ratios 2, 2.2, 2, 6:
        median 2.1, MAD 0.1, SE 0.093; against ``min_ratio=1.5`` it passes (6.4 SE).
        """
        if len(baseline_s) != len(treatment_s) or not baseline_s:
            raise ValueError(f"finding {metric!r}: need paired rounds, got {len(baseline_s)} "
                             f"baseline and {len(treatment_s)} treatment times")
        ratios = [b / t for b, t in zip(baseline_s, treatment_s)]
        n = len(ratios)
        median = _median(ratios)
        mad = _median([abs(r - median) for r in ratios])
        se = 1.2533 * 1.4826 * mad / math.sqrt(n) if n > 1 else math.nan
        clearance = median - min_ratio
        passed = bool(n > 1 and clearance > 0 and clearance >= STANDARD_ERRORS * se)
        return cls(claim, metric, median, passed, float(min_ratio), FINDING, n, se, timed=True)


def _median(xs: Sequence[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _sd(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than two values."""
    if len(xs) < 2:
        return math.nan
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@dataclass
class ItemResult:
    """Everything one curriculum item's experiment produced.

    Attributes:
        item: the registry id of the item, e.g. ``"tokenization-and-embeddings/2"``.
        metrics: final scalar metrics, ``{name: value}``, deterministic for a given seed and data.
        timings: scalars read from a clock or the memory allocator (seconds, tokens per second,
            speed-ups, peak RSS), ``{name: value}``: they vary from run to run and machine to
            machine, so they are written apart (``metrics/timings/<stage>.json``) and the
            committed ``metrics/<stage>.json`` of a rerun diffs clean.
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
    timings: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, value in {**self.metrics, **self.timings}.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"metric {name!r} of item {self.item!r} is not a number: {value!r}")
        both = set(self.metrics) & set(self.timings)
        if both:
            raise ValueError(f"item {self.item!r}: {sorted(both)} are both metrics and timings")
        for name, data in self.files.items():
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"file {name!r} of item {self.item!r} is not bytes: {type(data).__name__}")
