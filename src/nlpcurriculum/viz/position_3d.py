"""A toy sequence being position-encoded, animated in 3D: an animated GIF and an interactive page.

The curriculum item "animating a toy sequence being position-encoded in 3D". Take a short text in
which some tokens repeat (``"to be or not to be"``: ``t``, ``o``, ``b``, ``e`` and the space each
occur several times). Before any position is added, the two ``o`` tokens are the *same vector*:
attention cannot tell them apart. The animation moves every token from its bare embedding to its
position-encoded vector in small steps, for two schemes side by side:

- **additive sinusoidal** (Vaswani et al. 2017, arXiv:1706.03762, section 3.5): frame ``a`` (from 0
  to 1) shows ``x_p + a * PE(p)``; each token slides along a straight line to its encoded point.
- **rotary** (RoPE, Su et al. 2021, arXiv:2104.09864): frame ``a`` shows the query ``q_p`` rotated by
  the angles ``a * p * theta_i``; each token travels along arcs, and identical tokens fan out on the
  same circles, at angles set by their positions. Nothing is added, so lengths never change.

The high-dimensional frames are projected to 3D with one PCA fitted on every frame of a panel (one
fixed projection, so motion on screen is motion in the model's space, not a changing camera).

Two renderers, both pure (objects in, bytes or text out):

- :func:`render_gif`: matplotlib 3D axes drawn frame by frame and encoded with Pillow, the same
  steps matplotlib's ``PillowWriter`` takes, but into memory rather than a file, with a slowly
  turning camera so depth is visible.
- :func:`render_html`: a self-contained page (inline JavaScript, no CDN, no external file): each
  panel is a ``<canvas>`` that redraws the 3D points; drag to rotate, a slider scrubs the encoding
  from 0 to 1, a button plays it.

:func:`min_same_token_distance` is the number behind the picture: the smallest distance between
two occurrences of the same token, 0 before encoding and > 0 after.

Dimension legend: F frames, T tokens of the toy sequence, C vector size (d_model, or hs for RoPE).

Left out: learned and ALiBi panels (a learned table is arbitrary vectors; ALiBi never touches the
vectors, it biases attention scores), and camera paths beyond a slow turn.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Panel",
    "additive_frames",
    "min_same_token_distance",
    "pca_3d",
    "render_gif",
    "render_html",
    "rotary_frames",
]

# one colour per distinct token (the Tableau 10 palette, as matplotlib's "tab10")
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


@dataclass
class Panel:
    """One animated 3D scatter: a scheme encoding the toy sequence.

    Attributes:
        title: shown above the panel ("sinusoidal (added)").
        frames: ``(F, T, 3)`` projected points, frame 0 = before encoding, frame F-1 = after.
        caption: one line explaining what moves.
    """

    title: str
    frames: np.ndarray
    caption: str = ""

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.float64)
        if self.frames.ndim != 3 or self.frames.shape[-1] != 3 or self.frames.shape[0] < 2:
            raise ValueError(f"frames must be (F>=2, T, 3), got {self.frames.shape}")


def _alphas(n_frames: int) -> np.ndarray:
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    return np.linspace(0.0, 1.0, n_frames)  # (F,)


def additive_frames(embeddings: np.ndarray, table: np.ndarray, n_frames: int) -> np.ndarray:
    """Frames of ``x_p + a * PE(p)`` for ``a`` from 0 to 1 (an additive position scheme).

    Args:
        embeddings: token embeddings of the sequence, ``(T, C)``.
        table: the position vectors of positions ``0..T-1``, ``(T, C)``.
        n_frames: F >= 2.

    Returns:
        ``(F, T, C)``.
    """
    x, pe = np.asarray(embeddings, np.float64), np.asarray(table, np.float64)
    if x.shape != pe.shape or x.ndim != 2:
        raise ValueError(f"embeddings and table must both be (T, C), got {x.shape} and {pe.shape}")
    a = _alphas(n_frames)
    return x[None] + a[:, None, None] * pe[None]  # (1, T, C) + (F, 1, 1) * (1, T, C) -> (F, T, C)


def rotary_frames(q: np.ndarray, inv_freq: np.ndarray, n_frames: int) -> np.ndarray:
    """Frames of RoPE's rotation applied gradually: token ``p`` turned by ``a * p * theta_i``.

    Uses the rotate-half layout of :class:`~nlpcurriculum.nn.positional.RotaryPositions`: pair
    ``(i, i + hs/2)`` turns by ``a * p * inv_freq[i]``. At ``a = 1`` the result equals
    ``RotaryPositions.rotate`` at positions ``0..T-1``.

    Args:
        q: the unrotated vectors of the sequence (queries of one head), ``(T, hs)``, hs even.
        inv_freq: ``(hs/2,)`` angular frequencies theta_i.
        n_frames: F >= 2.

    Returns:
        ``(F, T, hs)``.
    """
    q = np.asarray(q, np.float64)
    inv_freq = np.asarray(inv_freq, np.float64)
    T, hs = q.shape
    if hs % 2 or inv_freq.shape != (hs // 2,):
        raise ValueError(
            f"q must be (T, even hs) with inv_freq (hs/2,), got {q.shape}, {inv_freq.shape}"
        )
    a = _alphas(n_frames)
    angles = a[:, None, None] * np.arange(T)[None, :, None] * inv_freq[None, None, :]  # (F, T, hs/2)
    angles = np.concatenate([angles, angles], axis=-1)  # (F, T, hs): pair i and i+hs/2 share one
    half = hs // 2
    rotated_half = np.concatenate([-q[:, half:], q[:, :half]], axis=-1)  # (T, hs): [-x2, x1]
    return q[None] * np.cos(angles) + rotated_half[None] * np.sin(angles)  # (F, T, hs)


def pca_3d(frames: np.ndarray) -> np.ndarray:
    """Project every frame with one PCA (top 3 components of all frames' points pooled).

    Args:
        frames: ``(F, T, C)`` with C >= 3.

    Returns:
        ``(F, T, 3)``: the points in the fixed 3D basis, centred on the pooled mean.
    """
    frames = np.asarray(frames, np.float64)
    F, T, C = frames.shape
    if C < 3:
        raise ValueError(f"need at least 3 dimensions to project to 3D, got {C}")
    pooled = frames.reshape(F * T, C)  # (F*T, C)
    mean = pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)  # rows of vt: principal axes
    return ((pooled - mean) @ vt[:3].T).reshape(F, T, 3)  # (F*T, 3) -> (F, T, 3)


def min_same_token_distance(points: np.ndarray, labels: Sequence[str]) -> float:
    """The smallest distance between two occurrences of the same token (``inf`` if none repeats).

    Args:
        points: ``(T, D)`` one vector per token of the sequence.
        labels: the T tokens; positions with equal labels are compared.
    """
    points = np.asarray(points, np.float64)
    if len(labels) != len(points):
        raise ValueError(f"{len(labels)} labels for {len(points)} points")
    best = float("inf")
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] == labels[j]:
                best = min(best, float(np.linalg.norm(points[i] - points[j])))
    return best


def _colour_map(labels: Sequence[str]) -> list[str]:
    distinct = list(dict.fromkeys(labels))
    return [_COLOURS[distinct.index(lab) % len(_COLOURS)] for lab in labels]


def _shown(label: str) -> str:
    return "\u2423" if label == " " else label  # an open box, so a space token is visible


def render_gif(
    panels: Sequence[Panel],
    labels: Sequence[str],
    *,
    fps: int = 12,
    hold_frames: int = 12,
    size: tuple[float, float] = (4.5, 4.5),
    dpi: int = 80,
) -> bytes:
    """Animate the panels side by side as a looping GIF.

    Args:
        panels: one or more :class:`Panel` with the same number of frames and tokens.
        labels: the T token strings (points of equal label share a colour).
        fps: frames per second of the animation.
        hold_frames: repeat the final (encoded) frame this many times before looping.
        size: inches per panel (width, height).
        dpi: resolution.

    Returns:
        The GIF file's bytes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image

    if not panels:
        raise ValueError("need at least one panel")
    n_frames, n_tokens = panels[0].frames.shape[:2]
    if any(p.frames.shape[:2] != (n_frames, n_tokens) for p in panels) or len(labels) != n_tokens:
        raise ValueError("every panel needs the same (F, T) and one label per token")
    colours = _colour_map(labels)
    fig = plt.figure(figsize=(size[0] * len(panels), size[1]), dpi=dpi)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.9, wspace=0.0)
    axes = [fig.add_subplot(1, len(panels), i + 1, projection="3d") for i in range(len(panels))]
    limits = []  # fixed per-axis limits over every frame: the camera never rescales
    for p in panels:
        lo, hi = p.frames.min(axis=(0, 1)), p.frames.max(axis=(0, 1))  # (3,) each
        pad = 0.05 * (hi - lo).max()
        limits.append(list(zip(lo - pad, hi + pad)))
    images = []
    for f in range(n_frames):
        for ax, panel, lim in zip(axes, panels, limits):
            ax.cla()
            pts = panel.frames[f]  # (T, 3)
            ax.plot(pts[:, 0], pts[:, 1], pts[:, 2], color="#bbbbbb", lw=0.8)  # sequence order
            ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=colours, s=36, depthshade=False)
            for p, (x, y, z) in enumerate(pts):
                ax.text(x, y, z, f"{_shown(labels[p])}{p}", fontsize=7)
            ax.set(xlim=lim[0], ylim=lim[1], zlim=lim[2],
                   xticklabels=[], yticklabels=[], zticklabels=[])
            ax.set_title(f"{panel.title}\nencoding {f / (n_frames - 1):.0%}", fontsize=9)
            ax.view_init(elev=20, azim=-60 + 60 * f / max(1, n_frames - 1))  # slow turn: depth cue
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())  # (H, W, 4) uint8
        images.append(Image.fromarray(rgba[..., :3].copy()))
    plt.close(fig)
    # one shared palette, so colours do not flicker between frames
    palette = images[-1].quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    frames += [frames[-1]] * hold_frames
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=int(1000 / fps), loop=0)
    return buffer.getvalue()


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
.row{display:flex;gap:1.5em;flex-wrap:wrap}
figure{margin:0} canvas{border:1px solid #ddd;cursor:grab;background:#fff}
figcaption{max-width:420px;color:#555;font-size:13px}
.controls{margin:1em 0;display:flex;gap:1em;align-items:center}
</style></head><body>
<h1>%(title)s</h1>
<p>%(intro)s</p>
<div class="controls"><button id="play">play</button>
<label>encoding <input id="alpha" type="range" min="0" max="%(last)d" value="0"></label>
<span id="pct">0%%</span><span>drag a panel to rotate</span></div>
<div class="row" id="panels"></div>
<script id="data" type="application/json">%(data)s</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const slider = document.getElementById("alpha"), pct = document.getElementById("pct");
let yaw = -0.9, pitch = 0.35, timer = null;
const views = D.panels.map(function (p) {
  const fig = document.createElement("figure");
  const c = document.createElement("canvas"); c.width = 420; c.height = 420;
  const cap = document.createElement("figcaption");
  cap.innerHTML = "<b>" + p.title + "</b><br>" + p.caption;
  fig.appendChild(c); fig.appendChild(cap);
  document.getElementById("panels").appendChild(fig);
  let r = 0;
  p.frames.forEach(function (f) {
    f.forEach(function (v) { r = Math.max(r, Math.hypot(v[0], v[1], v[2])); });
  });
  let drag = null;
  c.addEventListener("mousedown", function (e) { drag = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    yaw += (e.clientX - drag[0]) * 0.01;
    pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - drag[1]) * 0.01));
    drag = [e.clientX, e.clientY]; drawAll();
  });
  return {panel: p, canvas: c, radius: r || 1};
});
function project(v, radius) {
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const x = cy * v[0] + sy * v[1], y0 = -sy * v[0] + cy * v[1];
  const y = cp * v[2] - sp * y0, z = sp * v[2] + cp * y0;
  const s = 180 / radius;
  return [210 + s * x, 210 - s * y, z];
}
function draw(view, f) {
  const ctx = view.canvas.getContext("2d"), pts = view.panel.frames[f];
  ctx.clearRect(0, 0, 420, 420);
  const xy = pts.map(function (v) { return project(v, view.radius); });
  ctx.strokeStyle = "#bbb"; ctx.beginPath();
  xy.forEach(function (q, i) { if (i) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]); });
  ctx.stroke();
  // painter's order along the depth axis
  const order = xy.map(function (q, i) { return i; })
    .sort(function (a, b) { return xy[a][2] - xy[b][2]; });
  order.forEach(function (i) {
    ctx.fillStyle = D.colours[i]; ctx.beginPath();
    ctx.arc(xy[i][0], xy[i][1], 6, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#222"; ctx.font = "12px monospace";
    ctx.fillText(D.labels[i] + i, xy[i][0] + 8, xy[i][1] - 6);
  });
}
function drawAll() {
  const f = +slider.value;
  pct.textContent = Math.round(100 * f / %(last)d) + "%%";
  views.forEach(function (v) { draw(v, f); });
}
slider.addEventListener("input", drawAll);
document.getElementById("play").addEventListener("click", function () {
  if (timer) { clearInterval(timer); timer = null; return; }
  slider.value = 0;
  timer = setInterval(function () {
    if (+slider.value >= %(last)d) { clearInterval(timer); timer = null; return; }
    slider.value = +slider.value + 1; drawAll();
  }, 80);
});
drawAll();
</script>
</body></html>
"""


def render_html(
    panels: Sequence[Panel],
    labels: Sequence[str],
    *,
    title: str = "A toy sequence being position-encoded",
    intro: str = "",
    decimals: int = 4,
) -> str:
    """A self-contained interactive page: drag to rotate, slide to encode.

    The points of every frame are embedded as JSON in the page (a ``<script
    type="application/json">`` block, ``</`` escaped) and drawn by a small inline script on one
    ``<canvas>`` per panel: no library, no network access, works from a file.

    Args:
        panels: one or more :class:`Panel` with the same number of frames and tokens.
        labels: the T token strings.
        title: the page title.
        intro: a paragraph of plain text under the title (HTML-escaped).
        decimals: rounding of the embedded coordinates (keeps the page small).

    Returns:
        The page as a string.
    """
    if not panels:
        raise ValueError("need at least one panel")
    n_frames, n_tokens = panels[0].frames.shape[:2]
    if any(p.frames.shape[:2] != (n_frames, n_tokens) for p in panels) or len(labels) != n_tokens:
        raise ValueError("every panel needs the same (F, T) and one label per token")
    data = {
        "labels": [_shown(lab) for lab in labels],
        "colours": _colour_map(labels),
        "panels": [
            {
                "title": html.escape(p.title),
                "caption": html.escape(p.caption),
                "frames": np.round(p.frames, decimals).tolist(),
            }
            for p in panels
        ],
    }
    # JSON inside <script>: "</" would close the element early, so escape it
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")
    return _PAGE % {
        "title": html.escape(title),
        "intro": html.escape(intro),
        "last": n_frames - 1,
        "data": payload,
    }
