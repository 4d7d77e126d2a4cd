"""Visualisers that turn library objects into HTML or terminal text (no plotting library needed)."""

from nlpcurriculum.viz.token_viz import (
    FunctionTokenizer,
    TokenChunk,
    render_html,
    render_terminal,
    token_chunks,
    token_label,
)

__all__ = ["FunctionTokenizer", "TokenChunk", "render_html", "render_terminal", "token_chunks", "token_label"]
