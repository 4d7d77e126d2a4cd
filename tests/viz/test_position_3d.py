"""3D position-encoding animation: frames are the schemes' exact math, PCA is a fixed projection,
the GIF is a real animation and the page is self-contained."""

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from nlpcurriculum.nn.positional import RotaryPositions
from nlpcurriculum.viz.position_3d import (
    Panel,
    additive_frames,
    min_same_token_distance,
    pca_3d,
    render_gif,
    render_html,
    rotary_frames,
)


def test_additive_frames_slide_linearly_from_embedding_to_embedding_plus_table():
    rng = np.random.default_rng(0)
    emb, table = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    frames = additive_frames(emb, table, n_frames=3)
    assert frames.shape == (3, 5, 8)
    np.testing.assert_allclose(frames[0], emb)
    np.testing.assert_allclose(frames[1], emb + 0.5 * table)
    np.testing.assert_allclose(frames[2], emb + table)
    with pytest.raises(ValueError, match="n_frames"):
        additive_frames(emb, table, n_frames=1)


def test_rotary_frames_end_exactly_at_the_library_rope_and_keep_lengths():
    torch.manual_seed(0)
    rope = RotaryPositions(head_dim=8, max_seq_len=16)
    q = torch.randn(1, 1, 6, 8)  # (B, nh, T, hs)
    expected, _ = rope.rotate(q, q, torch.arange(6))
    frames = rotary_frames(q[0, 0].double().numpy(), rope.inv_freq.double().numpy(), n_frames=4)
    np.testing.assert_allclose(frames[0], q[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(frames[-1], expected[0, 0].numpy(), atol=1e-5)
    norms = np.linalg.norm(frames, axis=-1)  # (F, T): a rotation never changes a length
    np.testing.assert_allclose(norms, norms[:1].repeat(4, axis=0), atol=1e-9)


def test_pca_3d_keeps_distances_of_points_that_live_in_a_3d_subspace():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(10, 3)))[0]  # (10, 3) orthonormal columns
    frames = (rng.normal(size=(4, 7, 3)) @ basis.T) + 5.0  # (F, T, 10), offset away from 0
    projected = pca_3d(frames)
    assert projected.shape == (4, 7, 3)

    def pairwise(x):
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    np.testing.assert_allclose(
        pairwise(projected.reshape(-1, 3)), pairwise(frames.reshape(-1, 10)), atol=1e-9)


def test_min_same_token_distance_hand_worked_example():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [9.0, 9.0]])
    # "a" at 0 and 2 (distance 1), "b" at 1 and 3 (distance sqrt(36 + 25))
    assert min_same_token_distance(points, ["a", "b", "a", "b"]) == pytest.approx(1.0)
    assert min_same_token_distance(points, ["a", "b", "c", "d"]) == float("inf")


def _panels():
    rng = np.random.default_rng(2)
    return [Panel("add <b>", rng.normal(size=(3, 4, 3)), "caption </script>"),
            Panel("rotate", rng.normal(size=(3, 4, 3)))]


def test_render_gif_is_a_looping_animation_with_every_frame():
    data = render_gif(_panels(), list("abca"), hold_frames=0)
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF" and image.n_frames == 3
    assert image.info.get("loop") == 0


def test_render_html_is_self_contained_and_escapes_text():
    page = render_html(_panels(), list("ab a"), title="T <x>", intro="a & b")
    assert "http" not in page and "<script src" not in page
    assert "T &lt;x&gt;" in page and "a &amp; b" in page
    blob = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert "</" not in blob  # "</script>" inside the data cannot end the element early
    data = json.loads(blob)
    assert len(data["panels"]) == 2 and np.array(data["panels"][0]["frames"]).shape == (3, 4, 3)
    assert data["labels"][2] == "\u2423"  # the space token is drawn visibly
    assert data["colours"][1] != data["colours"][0] and data["colours"][3] == data["colours"][0]
    with pytest.raises(ValueError, match="one label per token"):
        render_html(_panels(), list("abc"))


NODE_HARNESS = r"""
const fs = require("fs");
const page = fs.readFileSync(process.argv[2], "utf8");
const data = page.match(/<script id="data" type="application\/json">([\s\S]*?)<\/script>/)[1];
const code = page.match(/<script>([\s\S]*?)<\/script>/)[1];
let arcs = 0, texts = [];
function el() {
  return {value: "0", textContent: "", innerHTML: "", width: 0, height: 0,
          listeners: {}, addEventListener(k, f) { this.listeners[k] = f; },
          appendChild() {},
          getContext() { return {clearRect() {}, beginPath() {}, moveTo() {}, lineTo() {}, stroke() {},
                                 fill() {}, arc() { arcs += 1; }, fillText(t) { texts.push(t); }}; }};
}
const ids = {data: Object.assign(el(), {textContent: data}), alpha: el(), pct: el(),
             panels: el(), play: el()};
global.document = {getElementById: (id) => ids[id], createElement: () => el()};
global.window = {addEventListener() {}};
eval(code);
const first = arcs;
ids.alpha.value = "2"; ids.alpha.listeners.input();
console.log(JSON.stringify({first, total: arcs, pct: ids.pct.textContent, label: texts[0]}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_render_html_script_runs_and_draws_every_point_of_every_panel(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(render_html(_panels(), list("abca")), encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    out = subprocess.run(["node", str(harness), str(page)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["first"] == 2 * 4  # 2 panels x 4 tokens drawn on load
    assert result["total"] == 2 * 2 * 4  # and again when the slider moves
    assert result["pct"] == "100%"  # frame 2 of 0..2
    assert result["label"][0] in "abc"
