"""The one-hot vs learned figures: distance heatmaps and the PCA relation plot."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from nlpcurriculum.embeddings import cosine_distance_matrix, one_hot_vectors, random_vectors
from nlpcurriculum.embeddings.plots import (
    plot_cosine_distance_heatmaps,
    plot_loss_curves,
    plot_pca_relations,
)


def test_heatmaps_side_by_side(tmp_path):
    words = ["king", "queen", "cat"]
    fig = plot_cosine_distance_heatmaps(
        words, {"one-hot": cosine_distance_matrix(one_hot_vectors(words), words),
                "random": cosine_distance_matrix(random_vectors(words, 8), words)})
    assert isinstance(fig, Figure)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    np.testing.assert_array_equal(images[0].get_array(), 1 - np.eye(3))
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["one-hot", "random"]
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_heatmaps_reject_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        plot_cosine_distance_heatmaps(["a", "b"], {"x": np.zeros((3, 3))})


def test_pca_plot_has_one_arrow_per_pair():
    wv = random_vectors(["king", "queen", "man", "woman"], 5)
    fig = plot_pca_relations(wv, [("king", "queen"), ("man", "woman")])
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if t.arrow_patch is not None]
    labels = {t.get_text() for t in ax.texts if t.arrow_patch is None}
    assert len(arrows) == 2 and labels == {"king", "queen", "man", "woman"}


def test_loss_curves_one_line_per_run():
    fig = plot_loss_curves({"CBOW": [(1, 4.0), (2, 3.0)], "skip-gram": [(1, 4.1), (2, 2.5), (3, 2.0)]})
    lines = fig.axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines] == [2, 3]
    assert fig.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="non-empty"):
        plot_loss_curves({"empty": []})
