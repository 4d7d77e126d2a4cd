"""Figures of the "Positional Embeddings" experiments (:mod:`.positional_embeddings`).

Each function takes plain data (tensors, dicts of curves) and returns a matplotlib figure; the
stage's ``publish`` saves it. Kept apart from the experiment so the measurements read without the
plotting code in between.

Dimension legend: T positions (or the training context), C = d_model, L layers, nh heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from nlpcurriculum.viz.position_3d import Panel

__all__ = [
    "COLOURS",
    "plot_attention_entropy",
    "plot_attention_heatmaps",
    "plot_before_after",
    "plot_comparison",
    "plot_learned_similarity",
    "plot_loss_by_position",
    "plot_rope_shift",
    "plot_sinusoidal_table",
]

#: One colour per scheme, the same in every figure.
COLOURS = {"none": "#7f7f7f", "sinusoidal": "#1f77b4", "learned": "#2ca02c",
            "rope": "#d62728", "alibi": "#9467bd"}


def plot_comparison(
    curves: dict[str, list[tuple[int, float]]],
    losses: dict[str, dict[int, float | None]],
    highlight: str,
    T: int,
):
    """Val-loss curves and loss vs context length of every scheme, ``highlight`` in bold.

    Args:
        curves: ``{scheme: [(step, val loss), ...]}``.
        losses: ``{scheme: {context length: val loss or None (cannot run there)}}``.
        highlight: the scheme drawn bold.
        T: the training context.
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for scheme, by_length in losses.items():
        bold = scheme == highlight
        style = dict(color=COLOURS.get(scheme), lw=2.4 if bold else 1.0, alpha=1.0 if bold else 0.6)
        curve = curves[scheme]
        left.plot([s for s, _ in curve], [v for _, v in curve], label=scheme, **style)
        xs = [L for L, v in by_length.items() if v is not None]
        right.plot([L / T for L in xs], [by_length[L] for L in xs], marker="o", label=scheme, **style)
        if len(xs) < len(by_length):
            right.annotate(f"{scheme}: n/a beyond {T}", (xs[-1] / T, by_length[xs[-1]]),
                           textcoords="offset points", xytext=(8, 8), fontsize=8,
                           color=COLOURS.get(scheme))
    left.set(xlabel="step", ylabel="val loss (nats/byte)", title="validation loss while training")
    right.set(xlabel="eval context / train context", ylabel="val loss (nats/byte)",
              title="length extrapolation (same val bytes)")
    right.set_xscale("log", base=2)
    right.minorticks_off()
    right.set_xticks([L / T for L in next(iter(losses.values()))])
    right.get_xaxis().set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}x"))
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sinusoidal_table(table: Tensor, max_offset: int):
    """The table as a heatmap, and ``PE(p) . PE(p+k)`` against k for several p (one curve)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    im = a.imshow(table.T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    a.set(xlabel="position p", ylabel="dimension", title="sinusoidal table PE(p)")
    fig.colorbar(im, ax=a)
    P = table.size(0)
    K = max_offset
    for p in (0, P // 4, P // 2, P - K - 1):
        dots = (table[p][None] * table[p : p + K + 1]).sum(-1)  # (K+1,)
        b.plot(range(K + 1), dots.numpy(), lw=1, marker=".", label=f"p = {p}")
    b.set(xlabel="offset k", ylabel="PE(p) . PE(p+k)", title="dot product depends only on k")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learned_similarity(weight: Tensor):
    """Cosine similarity between every pair of learned position vectors, ``weight`` ``(T, C)``."""
    import matplotlib.pyplot as plt

    w = F.normalize(weight.detach().float(), dim=-1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow((w @ w.T).numpy(), cmap="viridis", vmin=-1, vmax=1)  # (T, T) cosine similarity
    ax.set(xlabel="position", ylabel="position", title="learned positions: cosine similarity")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_rope_shift(scores0: Tensor, scores_s: Tensor, shift: int):
    """``(T, T)`` scores at positions ``0..T-1``, at ``shift..shift+T-1``, and their difference."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    vmax = float(scores0.abs().max())
    for ax, mat, title in zip(
        axes,
        (scores0, scores_s, scores_s - scores0),
        ("scores, positions 0..T-1", f"same q, k at positions {shift}..{shift}+T-1", "difference"),
    ):
        lim = vmax if title != "difference" else max(float(mat.abs().max()), 1e-12)
        im = ax.imshow(mat.numpy(), cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set(title=title, xlabel="key position", ylabel="query position")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_loss_by_position(per_position: dict[str, Tensor], T: int, highlight: str = "alibi"):
    """Val loss at each position of the longest windows, per scheme; a line at the train context."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for scheme, losses in per_position.items():
        kernel = np.ones(8) / 8  # smooth: single-position losses are noisy
        ax.plot(np.convolve(losses.numpy(), kernel, mode="valid"), color=COLOURS.get(scheme),
                label=scheme, lw=2.2 if scheme == highlight else 1.0)
    ax.axvline(T, color="k", ls="--", lw=0.8)
    ax.text(T, ax.get_ylim()[1], " train context", va="top", fontsize=8)
    ax.set(xlabel="position in the window", ylabel="val loss (nats/byte, 8-pos mean)",
           title="loss by position at the longest context")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_before_after(panels: Sequence[Panel], labels: Sequence[str]):
    """First (not encoded) and last (encoded) frame of each animation panel, as static 3D plots."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 9))
    for row, panel in enumerate(panels):
        for col, (f, when) in enumerate(((0, "before"), (-1, "after"))):
            ax = fig.add_subplot(2, 2, 2 * row + col + 1, projection="3d")
            pts = panel.frames[f]  # (T, 3)
            ax.plot(*pts.T, color="#bbbbbb", lw=0.8)
            distinct = list(dict.fromkeys(labels))  # one colour per distinct token, stable order
            ax.scatter(*pts.T, c=[distinct.index(lab) % 10 for lab in labels], cmap="tab10",
                       vmin=0, vmax=9, s=30)
            for p, xyz in enumerate(pts):
                ax.text(*xyz, f"{'_' if labels[p] == ' ' else labels[p]}{p}", fontsize=7)
            ax.set_title(f"{panel.title}: {when}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_attention_heatmaps(attentions: dict[str, list[Tensor]], lag: int):
    """Every layer's and head's attention on the first sequence, one row per (model, layer).

    Args:
        attentions: ``{model name: per layer (B, nh, T, T) weights}``.
        lag: the task's copy offset (for the title).
    """
    import matplotlib.pyplot as plt

    n_layers, n_heads = len(next(iter(attentions.values()))), next(iter(attentions.values()))[0].size(1)
    rows = [(arm, layer) for arm in attentions for layer in range(n_layers)]
    fig, axes = plt.subplots(len(rows), n_heads, figsize=(2.6 * n_heads, 2.5 * len(rows)), squeeze=False)
    for r, (arm, layer) in enumerate(rows):
        for h in range(n_heads):
            ax = axes[r][h]
            ax.imshow(attentions[arm][layer][0, h].numpy(), cmap="magma", vmin=0, vmax=1)  # (T, T)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{arm} L{layer} H{h}", fontsize=8)
    fig.suptitle(f"attention on one lag-{lag} copy sequence (row = query, col = key)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_attention_entropy(entropies: dict[str, Tensor], series: dict[str, list[tuple[int, float]]]):
    """Normalised attention entropy by query position (per layer), and the held-out loss curves.

    Args:
        entropies: ``{model name: (L, nh, T-1)}`` from ``attention_entropy``.
        series: ``{"<model name>.val_loss": [(step, loss), ...]}``.
    """
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, ent in entropies.items():
        for layer, styles in zip(range(ent.size(0)), ("-", "--", ":", "-.") * ent.size(0)):
            per_query = ent[layer].mean(dim=0).numpy()  # (T-1,): mean over heads
            a.plot(range(1, per_query.size + 1), per_query, styles, label=f"{arm} layer {layer}",
                   color=COLOURS.get(arm))
    a.axhline(1.0, color="k", ls="--", lw=0.8)
    a.set(xlabel="query position t", ylabel="H_t / log(t+1)", ylim=(0, 1.05),
          title="attention entropy (1 = uniform over prefix)")
    a.legend(fontsize=8)
    for name, points in series.items():
        arm = name.split(".")[0]
        b.plot([s for s, _ in points], [v for _, v in points], label=arm, color=COLOURS.get(arm))
    b.set(xlabel="step", ylabel="held-out loss (nats)", title="lag-copy loss")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig
