"""The sampler dashboard: tune temperature / top-k / top-p / min-p / repetition penalty live on the
trained base model and see the sample and, step by step, the token probabilities behind it.

Start it (after ``dvc repro pretrain``, which writes the model and the tokenizer)::

    python -m nlpcurriculum.apps.sampler_dashboard            # http://127.0.0.1:7860
    python -m nlpcurriculum.apps.sampler_dashboard --port 8000 --model models/base/model.pt \\
        --tokenizer models/tokenizer/tokenizer.json

Two layers, so the logic is testable without a browser:

* :func:`sampler_view` (pure: model, tokenizer, text, :class:`SamplerConfig` in, a
  :class:`DashboardView` out) samples with :func:`nlpcurriculum.decoding.samplers.sample` and
  keeps, per generated step, the ``top_n`` most likely tokens with three probabilities: the
  model's own (``softmax(logits)``), *before filtering* (after repetition penalty and
  temperature) and *after filtering* (top-k, top-p, min-p; renormalized: what was sampled
  from), plus the entropies of those distributions and how many ids survived;
  :func:`render_view_html` turns it into an HTML table (also used by the ``sampling`` stage for
  its snapshot).
* :func:`build_app` wires it to Gradio (imported only there): a prompt box, the sliders, seed,
  number of tokens and a Generate button; releasing a slider regenerates with the same seed, so
  the effect of one knob is seen on otherwise identical draws.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlpcurriculum.decoding.samplers import SampleOutput, SamplerConfig, sample
from nlpcurriculum.metrics.stats import entropy

__all__ = ["DashboardView", "StepView", "TokenRow", "build_app", "main", "render_page",
           "render_view_html", "sampler_view"]

DEFAULT_MODEL = "models/base/model.pt"
DEFAULT_TOKENIZER = "models/tokenizer/tokenizer.json"


@dataclass(frozen=True)
class TokenRow:
    """One candidate token of one step."""

    token_id: int
    token: str
    p_model: float  # softmax(logits), temperature 1, no penalty
    p_before: float  # after repetition penalty and temperature, before the truncating filters
    p_after: float  # the final (renormalized) distribution the step sampled from
    chosen: bool


@dataclass(frozen=True)
class StepView:
    """One generated step: what was chosen, the entropies (nats), the candidates."""

    step: int
    token_id: int
    token: str
    entropy_model: float
    entropy_before: float
    entropy_after: float
    kept: int
    rows: list[TokenRow]


@dataclass
class DashboardView:
    """What the dashboard shows for one click: the text and the per-step tables."""

    cfg: SamplerConfig
    seed: int
    prompt_ids: list[int]
    prompt_text: str
    sample_ids: list[int]
    sample_text: str
    steps: list[StepView]
    output: SampleOutput


def _label(tokenizer: Any, token_id: int) -> str:
    return tokenizer.decode([token_id])


def sampler_view(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    cfg: SamplerConfig,
    max_new_tokens: int = 24,
    seed: int = 0,
    top_n: int = 8,
    stop_id: int | None = None,
) -> DashboardView:
    """Sample one continuation of ``prompt`` and tabulate every step (the dashboard's content).

    Args:
        model: a MiniFormer.
        tokenizer: encodes the prompt and labels tokens (``encode`` / ``decode``).
        prompt: text to continue, not empty (an empty one is a ``ValueError`` whose message the
            dashboard shows). A prompt longer than ``max_seq_len - max_new_tokens`` tokens keeps
            its last tokens.
        cfg: the sampler settings.
        max_new_tokens: tokens to generate (``1 .. max_seq_len - 1``).
        seed: seeds the draw (same seed and settings -> same sample).
        top_n: candidates shown per step (the chosen token is added when outside them).
        stop_id: end-of-text id (generation stops after it), or ``None``.
    """
    limit = model.config.max_seq_len
    if not 1 <= max_new_tokens < limit:
        raise ValueError(f"max_new_tokens must be in [1, {limit - 1}] (the model's max_seq_len is "
                         f"{limit}), got {max_new_tokens}")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    ids = tokenizer.encode(prompt) if prompt else []
    if not ids:
        raise ValueError("the prompt is empty: type a few words for the model to continue")
    ids = ids[-(limit - max_new_tokens):]
    gen = torch.Generator().manual_seed(int(seed))
    out = sample(model, ids, max_new_tokens, cfg, generator=gen, stop_id=stop_id,
                 keep_distributions=True)
    new = out.tokens[0]
    steps = []
    for s, chosen in enumerate(new):
        pm, pb, pa = out.model_probs[0, s], out.tempered_probs[0, s], out.sampled_probs[0, s]  # (V,) each
        top = torch.topk(pb, min(top_n, pb.numel())).indices.tolist()
        if chosen not in top:
            top.append(chosen)
        rows = [TokenRow(t, _label(tokenizer, t), float(pm[t]), float(pb[t]), float(pa[t]), t == chosen)
                for t in top]
        steps.append(StepView(s + 1, chosen, _label(tokenizer, chosen), float(entropy(pm)),
                              float(entropy(pb)), float(entropy(pa)), int(out.kept[0, s]), rows))
    return DashboardView(cfg, int(seed), ids, tokenizer.decode(ids), new, tokenizer.decode(new), steps, out)


def _bar(p: float, colour: str) -> str:
    width = max(0.0, min(1.0, p)) * 100
    return (f'<div style="background:{colour};height:8px;width:{width:.1f}%;min-width:{1 if p > 0 else 0}px">'
            "</div>")


def render_view_html(view: DashboardView) -> str:
    """The per-step table as an HTML fragment (``<div class="sampler-view">``)."""
    esc = lambda s: html.escape(repr(s)[1:-1].replace(" ", "\u2423"))  # noqa: E731 - visible whitespace
    out = [f'<div class="sampler-view" data-settings="{html.escape(view.cfg.label())}">',
           f"<p><b>settings:</b> {html.escape(view.cfg.label())}, seed {view.seed}; "
           f"<b>prompt:</b> <code>{html.escape(repr(view.prompt_text)[1:-1])}</code></p>",
           '<table class="sampler-table" style="border-collapse:collapse;font-size:13px">',
           "<thead><tr><th>step</th><th>token</th><th>model p</th><th>p before filter</th><th></th>"
           "<th>p after filter</th><th></th></tr></thead><tbody>"]
    for st in view.steps:
        n = len(st.rows)
        for i, r in enumerate(st.rows):
            style = "background:#fff3c4;font-weight:bold" if r.chosen else ""
            head = ""
            if i == 0:
                head = (f'<td rowspan="{n}" style="vertical-align:top;border-top:2px solid #999;'
                        f'padding:2px 6px"><b>{st.step}</b><br><code>{esc(st.token)}</code><br>'
                        f'<span class="entropy">H before {st.entropy_before:.3f}<br>H after '
                        f'{st.entropy_after:.3f}</span><br>kept {st.kept}</td>')
            border = "border-top:2px solid #999;" if i == 0 else ""
            cell = f'style="{border}padding:1px 6px;font-family:monospace"'
            out.append(
                f'<tr class="cand" style="{style}">{head}<td {cell}>{esc(r.token)}</td>'
                f'<td {cell}>{r.p_model:.4f}</td><td {cell}>{r.p_before:.4f}</td>'
                f'<td style="{border}width:90px">{_bar(r.p_before, "#90a4ae")}</td>'
                f'<td {cell} class="p-after">{r.p_after:.4f}</td>'
                f'<td style="{border}width:90px">{_bar(r.p_after, "#1e88e5")}</td></tr>')
    out.append("</tbody></table>")
    out.append("<p style='font-size:12px;color:#555'>H = entropy in nats; \u2423 = a space. <i>model p</i>: "
               "softmax(logits); <i>before filter</i>: after repetition penalty and temperature; "
               "<i>after filter</i>: after top-k, top-p, min-p, renormalized (the distribution "
               "sampled from; the chosen token is highlighted).</p></div>")
    return "\n".join(out)


def render_page(views: Sequence[DashboardView], title: str = "Sampler dashboard snapshot") -> str:
    """A self-contained HTML page with one section per view (the stage's snapshot)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             "</head><body style='font-family:sans-serif;margin:1.5em'>", f"<h1>{html.escape(title)}</h1>"]
    for v in views:
        parts.append(f"<h2>{html.escape(v.cfg.label())}</h2><p><b>sample:</b> "
                     f"<code>{html.escape(v.sample_text)}</code></p>{render_view_html(v)}")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- Gradio wiring ------------------------------------------------------------------------------


def build_app(model: nn.Module, tokenizer: Any, stop_id: int | None = None,
              default_prompt: str = "The ") -> Any:
    """The Gradio Blocks app around :func:`sampler_view` (gradio is imported here only)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    limit = model.config.max_seq_len

    def run(prompt, temperature, top_k, top_p, min_p, penalty, seed, n_tokens):
        try:
            cfg = SamplerConfig(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                min_p=float(min_p), repetition_penalty=float(penalty))
            view = sampler_view(model, tokenizer, prompt or "", cfg, int(n_tokens), int(seed or 0),
                                stop_id=stop_id)
        except ValueError as exc:  # e.g. an empty prompt: say so where the table goes, keep the text
            return gr.update(), f'<p class="sampler-error" role="alert">{html.escape(str(exc))}</p>'
        return view.prompt_text + view.sample_text, render_view_html(view)

    with gr.Blocks(title="nlpcurriculum sampler dashboard") as app:
        gr.Markdown("## Sampler dashboard\nTune the sampler on the trained base model. Releasing a "
                    "slider regenerates with the same seed; the table shows every step's top "
                    "tokens before and after filtering.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(value=default_prompt, label="prompt", lines=2, elem_id="prompt")
                temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="temperature (0 = argmax)",
                                        elem_id="temperature")
                top_k = gr.Slider(0, 200, value=0, step=1, label="top-k (0 = off)", elem_id="top_k")
                top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="top-p (1 = off)", elem_id="top_p")
                min_p = gr.Slider(0, 1, value=0.0, step=0.01, label="min-p (0 = off)", elem_id="min_p")
                penalty = gr.Slider(0.5, 2, value=1.0, step=0.05, label="repetition penalty (1 = off)",
                                    elem_id="repetition_penalty")
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                n_tokens = gr.Slider(1, min(128, limit - 1), value=min(24, limit - 1), step=1,
                                     label="new tokens", elem_id="n_tokens")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                text = gr.Textbox(label="prompt + sample", lines=4, elem_id="sample", interactive=False)
                table = gr.HTML(elem_id="table")
        inputs = [prompt, temperature, top_k, top_p, min_p, penalty, seed, n_tokens]
        button.click(run, inputs, [text, table])
        for slider in (temperature, top_k, top_p, min_p, penalty, n_tokens):
            slider.release(run, inputs, [text, table])
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m nlpcurriculum.apps.sampler_dashboard [--model P] [--tokenizer P] [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"checkpoint (default {DEFAULT_MODEL})")
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                        help=f"tokenizer file (default {DEFAULT_TOKENIZER})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    for what, path in (("model checkpoint", args.model), ("tokenizer", args.tokenizer)):
        if not Path(path).is_file():
            print(f"error: {what} not found: {path} (run `dvc repro pretrain` first, or pass "
                  f"--{'model' if what.startswith('model') else 'tokenizer'})", file=sys.stderr)
            sys.exit(2)
    from nlpcurriculum.models import load_model
    from nlpcurriculum.tokenizers import eos_id, load_tokenizer

    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    tokenizer = load_tokenizer(args.tokenizer)
    try:
        stop = eos_id(tokenizer)
    except ValueError:
        stop = None
    app = build_app(model, tokenizer, stop)
    print(f"sampler dashboard on http://{args.host}:{args.port}", flush=True)
    app.launch(server_name=args.host, server_port=args.port, ssr_mode=False, mcp_server=False,
               footer_links=[], quiet=True)


if __name__ == "__main__":
    main()
