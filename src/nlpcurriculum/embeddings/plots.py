"""Figures for the "one-hot vs learned embeddings: plot cosine distances" item.

* :func:`plot_cosine_distance_heatmaps`: one heatmap of pairwise cosine distances per embedding,
  side by side on one colour scale. The one-hot panel is uniform (1 everywhere off the diagonal);
  the learned panel shows blocks: related words (king/queen, cat/cats) are close.
* :func:`plot_loss_curves`: training loss against optimiser step, one line per run.
* :func:`plot_pca_relations`: the chosen words projected on their first two principal components,
  with an arrow from each ``a`` to its ``b``. When the embedding has learned a relation the arrows
  are roughly parallel and of similar length: the offset ``b - a`` is a direction (arXiv:1310.4546
  figure 2 shows country -> capital this way).

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot), so no global figure
state and no display backend is involved; callers save or log them.

Left out: interactive (plotly) versions and t-SNE/UMAP projections.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from nlpcurriculum.embeddings.vectors import WordVectors, pca_2d

__all__ = ["plot_cosine_distance_heatmaps", "plot_pca_relations", "plot_loss_curves"]


def plot_cosine_distance_heatmaps(
    words: Sequence[str], matrices: dict[str, np.ndarray], title: str | None = None
) -> Figure:
    """Heatmaps of cosine-distance matrices, one panel per entry, sharing one colour bar.

    Args:
        words: labels of the rows/columns, length ``n``.
        matrices: ``{panel title: (n, n) distance matrix}``, e.g. ``{"one-hot": ..., "skip-gram": ...}``.
        title: optional figure title.

    Returns:
        The figure (``len(matrices)`` panels in a row).
    """
    if not matrices:
        raise ValueError("need at least one matrix")
    n = len(words)
    for name, m in matrices.items():
        if np.shape(m) != (n, n):
            raise ValueError(f"matrix {name!r} has shape {np.shape(m)}, expected ({n}, {n})")
    side = max(4.0, 0.28 * n + 1.5)
    fig = Figure(figsize=(side * len(matrices) + 1.0, side), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    vmax = max(1.0, max(float(np.max(m)) for m in matrices.values()))
    image = None
    for ax, (name, m) in zip(axes, matrices.items()):
        image = ax.imshow(m, vmin=0.0, vmax=vmax, cmap="viridis")
        ax.set_title(name)
        ax.set_xticks(range(n), labels=list(words), rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels=list(words), fontsize=7)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine distance (1 - cos)")
    if title:
        fig.suptitle(title)
    return fig


def plot_pca_relations(
    vectors: WordVectors, pairs: Sequence[tuple[str, str]], title: str | None = None
) -> Figure:
    """2-D PCA of the words of ``pairs`` with an arrow ``a -> b`` for each pair.

    The PCA is fitted on these words only, so the axes show how *they* vary.

    Raises:
        KeyError: a word is not in ``vectors``.
    """
    if not pairs:
        raise ValueError("need at least one pair")
    words = list(dict.fromkeys(w for pair in pairs for w in pair))  # unique, in order
    xy = pca_2d(np.stack([vectors[w] for w in words]))  # (n, 2)
    pos = {w: xy[i] for i, w in enumerate(words)}
    fig = Figure(figsize=(6.5, 6.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(xy[:, 0], xy[:, 1], s=12, color="black")
    for a, b in pairs:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:blue", alpha=0.7))
    for w, (x, y) in pos.items():
        ax.annotate(w, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "PCA of word vectors; arrows a -> b")
    return fig


def plot_loss_curves(curves: dict[str, Sequence[tuple[int, float]]], title: str | None = None) -> Figure:
    """Loss against optimiser step, one line per entry of ``curves``.

    Args:
        curves: ``{label: [(step, loss), ...]}``, e.g. ``{"skip-gram": log.losses}``.
        title: optional axes title.
    """
    if not curves or not any(curves.values()):
        raise ValueError("need at least one non-empty curve")
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for label, points in curves.items():
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("negative-sampling loss per example")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    ax.set_title(title or "training loss")
    return fig
