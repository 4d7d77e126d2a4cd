"""Curriculum learning and data ordering: difficulty scores, orderings, pacing, domain mixing.

Examples are token sequences (1-D int arrays). Everything here is data plumbing around a
training loop: which examples go into step ``t``'s batch, and from which domain.

Difficulty scores (higher = harder), one number per example:

* :func:`length_scores`: the number of tokens;
* :func:`reference_loss_scores`: the mean next-token loss (nats) of a **reference model** fitted
  on separate reference data (an add-k count bigram, :mod:`nlpcurriculum.models.count_ngram`;
  the "model-based" difficulty of curriculum papers, cheaply);
* :func:`rarity_scores`: the mean ``-log p(token)`` under the reference data's unigram
  frequencies (Platanios et al.'s "word rarity", per token instead of summed, so it is not length
  in disguise).

Orderings (:func:`ordering`): the indices of every step's batch, ``steps`` batches of
``batch_size``:

* ``random``: a shuffled pass over the data (repeated if more batches than data);
* ``easy_to_hard`` / ``hard_to_easy``: one pass over the data sorted by difficulty, ascending /
  descending (ties broken by a shuffle), cut into consecutive batches;
* ``competence``: competence-based pacing (Platanios et al. 2019, "Competence-based Curriculum
  Learning for Neural Machine Translation", arXiv:1903.09848): at step ``t`` the model may see the
  examples whose difficulty CDF is at most ``c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2))``
  (:func:`competence`, the paper's square-root schedule; ``T`` = ``curriculum_steps``), and the
  batch is drawn uniformly from them. Worked example: ``c0 = 0.1``, ``T = 100``: ``c(0) = 0.1``,
  ``c(25) = sqrt(0.25 * 0.99 + 0.01) = 0.507``, ``c(100) = 1``.

Domain mixing (:func:`mixing_weights`): the share of each domain in step ``t``'s batch:
``static`` (fixed proportions ``p``), ``temperature`` (``p_d^(1/T)`` renormalised: T > 1 flattens
towards uniform, as in multilingual sampling), ``shifting`` (linear interpolation from ``p`` to
``end`` over training). :func:`domain_batches` draws each example's domain from them.

:func:`steps_to_target`: the first evaluated step whose loss is at or below a target.

Dimension legend: N examples, B batch, T padded length.

Left out: self-paced learning (difficulty re-scored by the learner during training), teacher-
student curricula, DoReMi-style learned mixtures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from nlpcurriculum.models.count_ngram import CountNgram, fit_count_ngram

__all__ = ["MIXING", "ORDERINGS", "competence", "domain_batches", "fit_reference", "length_scores",
           "mixing_weights", "ordering", "pad_batch", "rarity_scores", "reference_loss_scores",
           "steps_to_target"]

ORDERINGS = ("random", "easy_to_hard", "hard_to_easy", "competence")
MIXING = ("static", "temperature", "shifting")


# ------------------------------------------------------------------------------ difficulty scores

def length_scores(examples: Sequence[np.ndarray]) -> np.ndarray:
    """``(N,)`` tokens per example."""
    return np.array([len(e) for e in examples], dtype=float)


def fit_reference(reference: Sequence[np.ndarray], vocab_size: int, k: float = 0.1
                  ) -> tuple[CountNgram, CountNgram]:
    """The reference models: an add-k bigram and unigram over the reference examples' tokens."""
    stream = np.concatenate([np.asarray(e, dtype=np.int64) for e in reference])
    return (fit_count_ngram(stream, 2, vocab_size, k), fit_count_ngram(stream, 1, vocab_size, k))


def reference_loss_scores(examples: Sequence[np.ndarray], bigram: CountNgram) -> np.ndarray:
    """``(N,)`` mean next-token NLL (nats) of each example under the reference bigram."""
    return np.array([float(bigram.nll(e[:-1], e[1:]).mean()) for e in examples])


def rarity_scores(examples: Sequence[np.ndarray], unigram: CountNgram) -> np.ndarray:
    """``(N,)`` mean ``-log p(token)`` of each example's tokens under the reference unigram."""
    return np.array([float(unigram.nll(e, e).mean()) for e in examples])


# --------------------------------------------------------------------------------------- orderings

def competence(step: int, curriculum_steps: int, c0: float) -> float:
    """Platanios et al.'s square-root competence ``c(t)`` in ``[c0, 1]``."""
    if not 0 < c0 <= 1 or curriculum_steps < 1:
        raise ValueError(f"need 0 < c0 <= 1 and curriculum_steps >= 1, got {c0}, {curriculum_steps}")
    return min(1.0, math.sqrt(step * (1 - c0 ** 2) / curriculum_steps + c0 ** 2))


def ordering(scores: np.ndarray, strategy: str, *, steps: int, batch_size: int, seed: int,
             c0: float = 0.1, curriculum_steps: int | None = None) -> list[np.ndarray]:
    """The example indices of each of ``steps`` batches (see the module docstring).

    Args:
        scores: ``(N,)`` difficulty (ignored by ``random``).
        strategy: one of :data:`ORDERINGS`.
        steps, batch_size: how many batches, of how many examples.
        seed: the shuffles and draws.
        c0, curriculum_steps: competence pacing's initial competence and ramp length (default:
            half the steps).
    """
    if strategy not in ORDERINGS:
        raise ValueError(f"strategy must be one of {ORDERINGS}, got {strategy!r}")
    rng = np.random.default_rng(seed)
    N = len(scores)
    shuffle = rng.permutation(N)
    # stable sort of a shuffled copy: ties in difficulty come out in random order
    by_difficulty = shuffle[np.argsort(np.asarray(scores)[shuffle], kind="stable")]  # (N,) easy first
    if strategy == "competence":
        T = curriculum_steps or max(1, steps // 2)
        out = []
        for t in range(steps):
            allowed = max(batch_size, int(math.ceil(competence(t, T, c0) * N)))
            out.append(by_difficulty[rng.integers(0, min(allowed, N), size=batch_size)])
        return out
    if strategy == "random":
        passes = math.ceil(steps * batch_size / N)
        order = np.concatenate([shuffle] + [rng.permutation(N) for _ in range(passes - 1)])
    else:
        if steps * batch_size > N:
            raise ValueError(f"a sorted pass needs steps * batch_size <= N ({steps * batch_size} > {N})")
        order = by_difficulty if strategy == "easy_to_hard" else by_difficulty[::-1]
    return [order[s * batch_size:(s + 1) * batch_size] for s in range(steps)]


# ---------------------------------------------------------------------------------- domain mixing

def mixing_weights(schedule: str, step: int, steps: int, proportions: Sequence[float], *,
                   temperature: float = 2.0, end: Sequence[float] | None = None) -> np.ndarray:
    """``(D,)`` the domain shares at ``step`` of ``steps`` (sums to 1).

    Example: proportions (0.6, 0.3, 0.1), temperature 3: ``∝ (0.843, 0.669, 0.464)`` =
    (0.427, 0.339, 0.235).
    """
    p = np.asarray(proportions, dtype=float)
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"proportions must be non-negative and not all zero, got {proportions}")
    p = p / p.sum()
    if schedule == "static":
        return p
    if schedule == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        q = p ** (1.0 / temperature)
        return q / q.sum()
    if schedule == "shifting":
        if end is None or len(end) != len(p):
            raise ValueError("the shifting schedule needs end proportions, one per domain")
        e = np.asarray(end, dtype=float) / float(np.sum(end))
        frac = step / max(1, steps - 1)
        return (1 - frac) * p + frac * e
    raise ValueError(f"schedule must be one of {MIXING}, got {schedule!r}")


def domain_batches(schedule: str, *, steps: int, batch_size: int, proportions: Sequence[float],
                   seed: int, temperature: float = 2.0, end: Sequence[float] | None = None
                   ) -> list[np.ndarray]:
    """The domain of every example of every batch: ``steps`` arrays of ``(batch_size,)`` ids."""
    rng = np.random.default_rng(seed)
    D = len(proportions)
    return [rng.choice(D, size=batch_size,
                       p=mixing_weights(schedule, s, steps, proportions, temperature=temperature, end=end))
            for s in range(steps)]


# ------------------------------------------------------------------------------------ LM plumbing

def pad_batch(examples: Sequence[np.ndarray], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Next-token inputs and targets of a batch, right-padded: ``(B, T)`` each, targets -100 past the end."""
    T = max(len(e) for e in examples) - 1
    x = torch.full((len(examples), T), pad_id, dtype=torch.long)
    y = torch.full((len(examples), T), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        e = torch.as_tensor(np.asarray(e), dtype=torch.long)
        x[i, :len(e) - 1] = e[:-1]
        y[i, :len(e) - 1] = e[1:]
    return x, y


def steps_to_target(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first step of ``[(step, loss), ...]`` with ``loss <= target``; ``None`` if never."""
    for step, loss in curve:
        if loss <= target:
            return int(step)
    return None
