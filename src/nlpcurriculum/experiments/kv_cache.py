"""The curriculum experiments of section "KV Cache (Fast Inference)" (items kv-cache/1-3).

* ``kv-cache/1`` (:func:`speed_item`): greedy decoding of the trained model with and without the
  cache (:mod:`nlpcurriculum.decoding.kv_decode`) at several lengths; the outputs must agree
  token for token, and the cache must be faster, increasingly so with length (without it, step
  ``t`` re-projects all ``T + t`` earlier tokens). The baseline is fair: it applies the output
  head to the last position only, as the cached decoder does, so the speed-up is what the cache
  saves, not the logits of positions nobody reads. The arms alternate over ``repeats``
  interleaved rounds per length, and the finding is the median per-round ratio
  (:meth:`~nlpcurriculum.results.Finding.timing_ratio`). Optionally, tokens/s against Hugging
  Face ``generate(use_cache=True)`` on a weight-identical ``LlamaForCausalLM``, likewise.
* ``kv-cache/2`` (:func:`visualizer_item`): for a token stream, a step x position grid of cache
  hits (key/value reused) and misses (computed), as a self-contained HTML page and a PNG, read
  from the cache's actual sizes around each forward pass (the counts are invariants). The
  finding: what the grid shows is worth time. The visualized stream's last pass (1 miss, every
  earlier position a hit) is timed against the same pass recomputing every position, as a pass
  of :func:`~nlpcurriculum.decoding.kv_decode.greedy_no_cache` does, over interleaved rounds.
* ``kv-cache/3`` (:func:`memory_item`): the cache's memory *measured* with the allocator
  (:func:`~nlpcurriculum.metrics.memory.heap_bytes`: the bytes the heap grows by when a cache
  is prefilled with ``T`` tokens and kept), for multi-head attention and grouped-query attention
  (Ainslie et al. 2023, arXiv:2305.13245), against the formula
  ``2 * n_layers * n_kv_heads * head_dim * bytes * T`` (2 = keys and values). The findings:
  the measured growth per token is the formula's, GQA's measured cache is ``n_kv_heads /
  n_heads`` of MHA's, and a cache grown token by token (doubling its buffers when full) holds
  its allocated buffers, up to twice the formula; the formula beside the cache's own count
  (``KVCache.memory_bytes()``) stays an invariant. And a long cache costs time as well as
  memory: one decoding step reading ``max(memory_lengths)`` cached positions is timed against
  one reading ``min(memory_lengths)`` (the control), over interleaved rounds.

Clock and allocator readings differ between runs and machines (this one is shared): they are the
items' ``timings`` (``metrics/timings/kv_cache.json``), apart from the deterministic metrics.

Left out: batch > 1, preallocated / paged caches, quantised caches, GPU timings.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from nlpcurriculum.decoding.kv_decode import (
    CacheStep,
    greedy_cached,
    greedy_no_cache,
    last_position_head,
    no_cache_logits,
)
from nlpcurriculum.metrics.memory import heap_bytes, heap_source, measured_bytes
from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads
from nlpcurriculum.nn.fast.decode_layout import decode_layout
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = [
    "ITEMS",
    "Inputs",
    "KVCacheConfig",
    "SpeedRow",
    "cache_grid_figure",
    "cached_step",
    "formula_bytes",
    "grown_cache_heap",
    "measure_memory",
    "prefill_heap_bytes",
    "measure_speed",
    "memory_item",
    "render_cache_html",
    "run",
    "speed_item",
    "timed_rounds",
    "visualizer_item",
]


#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("kv-cache/1", "kv-cache/2", "kv-cache/3")


@dataclass
class KVCacheChecks:
    """Bounds of the findings that no knob above sets (params ``kv_cache.checks``).

    Attributes:
        max_lengths_with_different_output: kv-cache/1: lengths whose cached greedy output differs
            from recomputing.
        min_hf_same_tokens: kv-cache/1: 1 when generate makes the same greedy tokens.
        max_hit_count_errors: kv-cache/2: sum over steps of |hits - expected|.
        max_miss_count_errors: kv-cache/2: sum over steps of |misses - 1|.
        max_formula_abs_error_bytes: kv-cache/3: total |measured - formula| cache bytes.
        max_per_token_spread: kv-cache/3: relative spread of bytes per token over the lengths.
        max_gqa_ratio_error: kv-cache/3: |counted - expected| GQA / MHA cache ratio.
        max_heap_per_token_error: kv-cache/3: |heap growth per token between the shortest and
            longest prefilled cache / the formula's bytes per token - 1|.
        max_gqa_heap_ratio_error: kv-cache/3: |measured GQA / MHA heap at the longest length -
            n_kv_heads ratio|.
        max_grown_heap_error: kv-cache/3: |heap of a cache grown token by token / its allocated
            buffers - 1| at the end.
        min_hit_pass_speedup: kv-cache/2: median over rounds of (time of the last pass recomputing
            every position) / (time of the same pass with the cache), beyond two robust SE.
        min_long_cache_step_ratio: kv-cache/3: median over rounds of (time of a decoding step on
            the longest cache) / (on the shortest), beyond two robust SE.
    """

    max_lengths_with_different_output: float = 0.0
    min_hf_same_tokens: float = 1.0
    max_hit_count_errors: float = 0.0
    max_miss_count_errors: float = 0.0
    max_formula_abs_error_bytes: float = 0.0
    max_per_token_spread: float = 0.0
    max_gqa_ratio_error: float = 1e-12
    max_heap_per_token_error: float = 0.05
    max_gqa_heap_ratio_error: float = 0.05
    max_grown_heap_error: float = 0.05
    min_hit_pass_speedup: float = 1.1
    min_long_cache_step_ratio: float = 1.1


@dataclass
class KVCacheConfig:
    """Sizes of the three KV-cache experiments (the section ``kv_cache`` of params/kv_cache.yaml).

    Attributes:
        prompt_tokens: prompt length, taken from the start of the token stream.
        new_tokens: numbers of new tokens to time (kv-cache/1), ascending.
        repeats: interleaved rounds per length (each times the no-cache and the cached decoder
            once); the finding is the median of the per-round ratios.
        min_speedup: the expected cached/no-cache speedup at the largest length.
        hf_compare: also time Hugging Face ``generate(use_cache=True)`` (llama-like models only).
        hf_repeats: interleaved rounds of the head-to-head with ``generate`` at the largest
            length (each times our cached decoding and ``generate`` once).
        min_vs_hf: the expected ratio of our cached tokens/s to ``generate``'s.
        viz_steps: decoding steps shown by the visualizer (kv-cache/2).
        memory_lengths: sequence lengths whose cache memory is measured (kv-cache/3), ascending;
            a cache is also grown token by token from the first to the last.
        gqa_kv_heads: key/value heads of the grouped-query variant (must divide ``n_heads``).
        timing_rounds: interleaved rounds of the per-pass timings of kv-cache/2 and 3.
        threads: torch CPU threads while timing (1 is the least noisy on a shared machine).
        checks: the other bounds of the findings.
    """

    prompt_tokens: int = 8
    new_tokens: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    repeats: int = 5
    min_speedup: float = 5.0
    hf_compare: bool = True
    hf_repeats: int = 5
    min_vs_hf: float = 1.5
    viz_steps: int = 16
    memory_lengths: list[int] = field(default_factory=lambda: [16, 64, 256, 1024])
    gqa_kv_heads: int = 1
    timing_rounds: int = 15
    threads: int = 1
    checks: KVCacheChecks = field(default_factory=KVCacheChecks)

    def __post_init__(self) -> None:
        if self.repeats < 2 or self.hf_repeats < 2:
            raise ValueError(f"repeats and hf_repeats must be >= 2 (a median ratio needs its spread), "
                             f"got {self.repeats}, {self.hf_repeats}")
        for name in ("prompt_tokens", "repeats", "hf_repeats", "viz_steps", "gqa_kv_heads", "timing_rounds",
                     "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("new_tokens", "memory_lengths"):
            values = getattr(self, name)
            if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be ascending distinct positive ints, got {values}")
        if self.min_speedup <= 0 or self.min_vs_hf <= 0:
            raise ValueError(f"min_speedup and min_vs_hf must be > 0, got {self.min_speedup}, "
                             f"{self.min_vs_hf}")


# --- kv-cache/1: speed -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedRow:
    """One length: per-round seconds of both decoders (interleaved) and whether they agree."""

    new_tokens: int
    seconds_no_cache: list[float]
    seconds_cached: list[float]
    identical: bool

    @property
    def speedup(self) -> float:
        """The median over rounds of (no-cache seconds / cached seconds)."""
        return _median([a / b for a, b in zip(self.seconds_no_cache, self.seconds_cached)])


def _median(xs: Sequence[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


def measure_speed(model: nn.Module, prompt: Sequence[int], new_tokens: Sequence[int],
                  repeats: int = 2) -> list[SpeedRow]:
    """Time greedy decoding without and with the cache at each length over ``repeats``
    interleaved rounds (one untimed warm-up round each); compare the tokens."""
    rows = []
    for n in new_tokens:
        outs: dict[str, list[int]] = {}

        def arm(name: str, decode: Callable[..., list[int]], n: int = n) -> Callable[[], None]:
            return lambda: outs.__setitem__(name, decode(model, prompt, n))

        times = interleaved_rounds({"no_cache": arm("no_cache", greedy_no_cache),
                                    "cached": arm("cached", greedy_cached)}, repeats)
        rows.append(SpeedRow(n, times["no_cache"], times["cached"], outs["no_cache"] == outs["cached"]))
    return rows


def hf_generate_timing(hf_model: Any, model: nn.Module, prompt: Sequence[int], n: int,
                       rounds: int = 2) -> tuple[list[int], list[float], list[float]]:
    """Head-to-head: greedy ``generate(use_cache=True)`` against our :func:`greedy_cached`.

    The two alternate over ``rounds`` interleaved rounds, both making exactly ``n`` tokens, so a
    burst of background load hits both alike.

    Returns:
        ``(generate's ids, generate's seconds per round, ours per round)``.
    """
    ids = torch.tensor([list(prompt)], dtype=torch.long)  # (1, T)
    hf_ids: list[int] = []

    def hf() -> None:
        with torch.no_grad():
            out = hf_model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                    use_cache=True, pad_token_id=0)
        hf_ids[:] = out[0, len(prompt):].tolist()

    times = interleaved_rounds({"ours": lambda: greedy_cached(model, prompt, n), "hf": hf}, rounds)
    return hf_ids, times["hf"], times["ours"]


def speed_item(model: nn.Module, prompt: Sequence[int], cfg: KVCacheConfig,
               hf_model: Any = None) -> ItemResult:
    """kv-cache/1: speedup of cached over uncached greedy decoding, and identical output."""
    import matplotlib.pyplot as plt

    rows = measure_speed(model, prompt, cfg.new_tokens, cfg.repeats)
    last = rows[-1]
    metrics: dict[str, float] = {"max_seq_len": model.config.max_seq_len,
                                 "prompt_tokens": len(prompt)}
    timings: dict[str, float] = {}  # clock readings: apart from the deterministic metrics
    for r in rows:
        timings[f"speedup.{r.new_tokens}"] = r.speedup
        timings[f"tokens_per_s.no_cache.{r.new_tokens}"] = r.new_tokens / _median(r.seconds_no_cache)
        timings[f"tokens_per_s.cached.{r.new_tokens}"] = r.new_tokens / _median(r.seconds_cached)
    mismatches = sum(not r.identical for r in rows)
    metrics["lengths_with_different_output"] = mismatches
    faster = Finding.timing_ratio(
        f"the cache speeds up greedy decoding of {last.new_tokens} tokens by >= {cfg.min_speedup:g}x "
        f"over a baseline that recomputes every position but applies the output head to the last "
        f"one only (median of {cfg.repeats} interleaved rounds; fails for a cache that is not read "
        f"back, e.g. one that recomputes its history)", f"speedup.{last.new_tokens}",
        last.seconds_no_cache, last.seconds_cached, cfg.min_speedup)
    timings[f"speedup.{last.new_tokens}.se"] = faster.se
    notes = [f"prompt {len(prompt)} tokens, max_seq_len {model.config.max_seq_len}; baseline: the "
             f"whole sequence each step, output head on the last position only; median of "
             f"{cfg.repeats} interleaved rounds"]
    if len(prompt) + last.new_tokens > model.config.max_seq_len:
        notes.append(
            f"prompt + {last.new_tokens} new tokens exceeds max_seq_len: both paths attend the whole "
            f"sequence and extrapolate positions past {model.config.max_seq_len} "
            f"({model.config.position}); quality is not the point, equality of the two paths is")
    hf_findings = []
    if hf_model is not None:
        hf_ids, t_hf, t_ours = hf_generate_timing(hf_model, model, prompt, last.new_tokens,
                                                  cfg.hf_repeats)
        vs_hf = Finding.timing_ratio(
            f"our cached greedy decoding of {last.new_tokens} tokens is >= {cfg.min_vs_hf:g}x as fast "
            f"as transformers' generate(use_cache=True) on the same weights (median of "
            f"{cfg.hf_repeats} interleaved rounds)", "cached_vs_hf_generate", t_hf, t_ours,
            cfg.min_vs_hf)
        timings |= {"tokens_per_s.cached_head_to_head": last.new_tokens / _median(t_ours),
                    "tokens_per_s.hf_generate": last.new_tokens / _median(t_hf),
                    "cached_vs_hf_generate": vs_hf.value, "cached_vs_hf_generate.se": vs_hf.se}
        metrics["hf_same_tokens"] = float(hf_ids == greedy_cached(model, prompt, last.new_tokens))
        notes.append(f"HF generate(use_cache=True) at {last.new_tokens} tokens: "
                     f"{timings['tokens_per_s.hf_generate']:.1f} tokens/s, ours "
                     f"{timings['tokens_per_s.cached_head_to_head']:.1f} tokens/s (median ratio "
                     f"{vs_hf.value:.2f}; the configured bound, min_vs_hf in params: >= "
                     f"{cfg.min_vs_hf:g}), {cfg.hf_repeats} interleaved rounds; same tokens: "
                     f"{bool(metrics['hf_same_tokens'])}")
        hf_findings = [
            vs_hf,
            Finding.at_least("generate makes the same greedy tokens", "hf_same_tokens",
                             metrics["hf_same_tokens"], cfg.checks.min_hf_same_tokens, kind=INVARIANT),
        ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ns = [r.new_tokens for r in rows]
    ax1.plot(ns, [r.speedup for r in rows], "o-")
    ax1.axhline(cfg.min_speedup, ls="--", c="grey", label=f"target {cfg.min_speedup:g}x")
    ax1.set(xlabel="new tokens", ylabel="speedup (no-cache time / cached time)",
            title="KV cache speedup vs generated length")
    ax1.legend()
    ax2.plot(ns, [timings[f"tokens_per_s.no_cache.{n}"] for n in ns], "o-", label="no cache")
    ax2.plot(ns, [timings[f"tokens_per_s.cached.{n}"] for n in ns], "o-", label="KV cache")
    if hf_model is not None:
        ax2.plot([last.new_tokens], [timings["tokens_per_s.hf_generate"]], "s",
                 label="HF generate (cache)")
    ax2.set(xlabel="new tokens", ylabel="tokens / s", title="Greedy decoding throughput")
    ax2.legend()
    fig.tight_layout()
    table = "\n".join(f"{r.new_tokens:5d} new: no cache {_median(r.seconds_no_cache):7.3f} s, cached "
                      f"{_median(r.seconds_cached):7.3f} s (medians), speedup {r.speedup:5.2f}x, "
                      f"identical {r.identical}" for r in rows)
    return ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        timings=timings,
        figures={"speedup.png": fig},
        texts={"speed.txt": "\n".join(notes) + "\n\n" + table + "\n"},
        findings=[
            Finding.at_most("greedy output with the cache is identical, token for token, to "
                            "recomputing the whole sequence (number of lengths that differ)",
                            "lengths_with_different_output", mismatches,
                            cfg.checks.max_lengths_with_different_output, kind=INVARIANT),
            faster,
        ] + hf_findings,
    )


# --- kv-cache/2: hit / miss visualizer ---------------------------------------------------------


def render_cache_html(trace: Sequence[CacheStep], labels: Sequence[str], n_prompt: int) -> str:
    """A self-contained HTML page: one row per forward pass, one cell per cached position.

    Args:
        trace: the passes of :func:`~nlpcurriculum.decoding.kv_decode.greedy_cached`.
        labels: the text of every position's token (prompt, then generated).
        n_prompt: number of prompt positions (their header cells are marked).
    """
    width = max(s.cached_after for s in trace)
    if len(labels) < width:
        raise ValueError(f"need {width} labels, got {len(labels)}")
    esc = [html.escape(repr(lab)[1:-1]) for lab in labels]
    head = "".join(f'<th class="{"p" if i < n_prompt else "g"}" title="position {i}">{esc[i]}</th>'
                   for i in range(width))
    body = []
    for s in trace:
        cells = []
        for pos in range(width):
            kind = "hit" if pos < s.cached_before else "miss" if pos < s.cached_after else "none"
            cells.append(f'<td class="{kind}" title="pos {pos}: {kind}"></td>')
        out = html.escape(repr(labels[s.cached_after] if s.cached_after < len(labels) else "")[1:-1])
        name = "prefill" if s.step == 0 else f"step {s.step}"
        body.append(f"<tr><th>{name}</th>{''.join(cells)}<td class='n'>{s.hits}</td>"
                    f"<td class='n'>{s.misses}</td><td class='o'>{out}</td></tr>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>KV cache hits and misses</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 4px; text-align: center; }}
thead th {{ writing-mode: vertical-rl; font-family: monospace; font-weight: normal; }}
th.p {{ background: #eef; }} td.hit {{ background: #4caf50; }} td.miss {{ background: #e53935; }}
td.none {{ background: #fafafa; }} td.n {{ font-family: monospace; }} td.o {{ font-family: monospace; text-align: left; }}
</style></head><body>
<h1>KV cache: reused (hit) vs computed (miss) keys and values</h1>
<p>Each row is one forward pass of greedy decoding; each column a token position (header: its
token; blue = prompt). <span style="background:#4caf50">&nbsp;green&nbsp;</span> = key/value read from
the cache, <span style="background:#e53935">&nbsp;red&nbsp;</span> = computed in this pass. Counts are
read from the cache's size before and after each pass.</p>
<table><thead><tr><th>pass</th>{head}<th>hits</th><th>misses</th><th>emits</th></tr></thead>
<tbody>{''.join(body)}</tbody></table></body></html>
"""


def cache_grid_figure(trace: Sequence[CacheStep], labels: Sequence[str]) -> Any:
    """A step x position grid (green hit, red miss, white not yet cached), tokens labelled."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    width = max(s.cached_after for s in trace)
    grid = torch.zeros(len(trace), width)  # (passes, positions): 0 none, 1 hit, 2 miss
    for r, s in enumerate(trace):
        grid[r, : s.cached_before] = 1
        grid[r, s.cached_before : s.cached_after] = 2
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * width), max(3, 0.3 * len(trace))))
    ax.imshow(grid.numpy(), cmap=ListedColormap(["#fafafa", "#4caf50", "#e53935"]), vmin=0, vmax=2,
              aspect="auto", interpolation="nearest")
    ax.set_xticks(range(width), [repr(lab)[1:-1][:8] for lab in labels[:width]], rotation=90,
                  fontsize=7, family="monospace")
    ax.set_yticks(range(len(trace)), ["prefill" if s.step == 0 else f"step {s.step}" for s in trace],
                  fontsize=7)
    ax.set(title="KV cache per pass: green = reused (hit), red = computed (miss)",
           xlabel="token position")
    fig.tight_layout()
    return fig


def cached_step(model: nn.Module, cached: Sequence[int], token: int) -> Callable[[], torch.Tensor]:
    """A decoding step to time: ``token`` fed to a cache prefilled with ``cached`` (one miss,
    ``len(cached)`` hits); each call returns the step's ``(V,)`` logits and crops the cache back,
    so every call does the same work."""
    cache = KVCache(len(model.blocks), capacity=len(cached) + 1)
    with torch.inference_mode():
        model(torch.tensor([list(cached)]), kv_cache=cache)  # (1, T_cached): the prefill
    n, x = len(cached), torch.tensor([[token]])  # (1, 1)

    def step() -> torch.Tensor:
        logits = model(x, kv_cache=cache).logits[0, -1]
        cache.crop(n)
        return logits

    return step


@torch.inference_mode()
def timed_rounds(model: nn.Module, arms: dict[str, Callable[[], object]],
                 rounds: int) -> dict[str, list[float]]:
    """:func:`~nlpcurriculum.metrics.timing.interleaved_rounds` of decoding passes, in eval mode,
    with the decoding weight layout the greedy decoders use (one warm-up round)."""
    model.eval()
    with decode_layout(model):
        return interleaved_rounds(arms, rounds)


def visualizer_item(model: nn.Module, prompt: Sequence[int], cfg: KVCacheConfig,
                    decode: Callable[[int], str]) -> ItemResult:
    """kv-cache/2: the hit/miss grid of greedy decoding, checked against what a cache must do."""
    trace: list[CacheStep] = []
    new = greedy_cached(model, prompt, cfg.viz_steps, trace=trace)
    labels = [decode(t) for t in list(prompt) + new]
    n0 = len(prompt)
    # After prefill, step t must reuse every earlier position (n0 + t - 1) and compute exactly one.
    hit_errors = sum(abs(s.hits - (n0 + s.step - 1)) for s in trace[1:])
    extra_misses = sum(abs(s.misses - 1) for s in trace[1:])
    prefill = trace[0]
    # The stream's last pass: the id fed then, after every earlier one (all hits but one miss)
    stream = list(prompt) + new[:-1]
    full = torch.tensor([stream])  # (1, T): a pass without a cache recomputes every position
    with last_position_head(model):  # ... and, like the cached pass, one row of the output head
        times = timed_rounds(model, {"recompute": lambda: no_cache_logits(model, full),
                                     "cached": cached_step(model, stream[:-1], stream[-1])},
                             cfg.timing_rounds)
    speedup = Finding.timing_ratio(
        f"a hit costs less than a miss: the stream's last pass with its {len(stream) - 1} earlier "
        f"keys/values read from the cache is faster than recomputing all {len(stream)} (median time ratio, "
        f"{cfg.timing_rounds} interleaved rounds)", "hit_pass_speedup", times["recompute"], times["cached"],
        cfg.checks.min_hit_pass_speedup)
    return ItemResult(
        item=ITEMS[1],
        metrics={"steps": len(trace) - 1, "prefill.misses": prefill.misses,
                 "prefill.hits": prefill.hits, "hit_count_errors": hit_errors,
                 "miss_count_errors": extra_misses,
                 "total_hits": sum(s.hits for s in trace), "total_misses": sum(s.misses for s in trace)},
        timings={"hit_pass_speedup": speedup.value, "hit_pass_speedup.se": speedup.se},
        series={"hits": [(s.step, s.hits) for s in trace], "misses": [(s.step, s.misses) for s in trace]},
        figures={"cache_grid.png": cache_grid_figure(trace, labels)},
        texts={"cache_viz.html": render_cache_html(trace, labels, n0)},
        findings=[
            Finding.at_most("after prefill, step t reuses exactly the t-1 + prompt earlier positions "
                            "(sum of |hits - expected| over steps)", "hit_count_errors", hit_errors,
                            cfg.checks.max_hit_count_errors, kind=INVARIANT),
            Finding.at_most("after prefill, each step computes exactly one new key/value "
                            "(sum of |misses - 1| over steps)", "miss_count_errors", extra_misses,
                            cfg.checks.max_miss_count_errors, kind=INVARIANT),
            speedup,
        ],
    )


# --- kv-cache/3: memory ------------------------------------------------------------------------


def formula_bytes(cfg: Any, seq_len: int, bytes_per_elem: int = 4) -> int:
    """``2 * n_layers * n_kv_heads * head_dim * bytes_per_elem * T`` (keys and values, batch 1)."""
    return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * bytes_per_elem * seq_len


def _prefilled(model: nn.Module, ids: torch.Tensor, capacity: int = 0) -> KVCache:
    cache = KVCache(len(model.blocks), capacity=capacity)
    model(ids, kv_cache=cache)  # the logits are dropped: only the cache stays alive
    if cache.seq_len(0) != ids.size(1):
        raise RuntimeError(f"cache holds {cache.seq_len(0)} positions after prefilling {ids.size(1)}")
    _settle(model)
    return cache


def _settle(model: nn.Module) -> None:
    """A one-token pass without a cache: what a forward keeps for the next one (RoPE keeps the
    rows it gathered for the last positions) shrinks to one position, so that a heap reading
    counts the cache and not those rows."""
    model(torch.zeros(1, 1, dtype=torch.long))


@torch.inference_mode()
def measure_memory(model: nn.Module, lengths: Sequence[int], seed: int = 0) -> list[int]:
    """``KVCache.memory_bytes()`` (the cache's own count) after prefilling each length with
    random ids (batch 1)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    return [_prefilled(model, torch.randint(0, model.config.vocab_size, (1, n), generator=gen)
                       ).memory_bytes() for n in lengths]


@torch.inference_mode()
def prefill_heap_bytes(model: nn.Module, lengths: Sequence[int], seed: int = 0) -> list[int]:
    """The bytes the heap grows by (:func:`~nlpcurriculum.metrics.memory.measured_bytes`) while
    a cache is prefilled with each length of random ids and kept (batch 1).

    One untimed prefill of the longest length first, so that what the model allocates once
    (its position tables growing to that length) is not charged to a cache.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    _prefilled(model, torch.randint(0, model.config.vocab_size, (1, max(lengths))))
    out = []
    for n in lengths:
        ids = torch.randint(0, model.config.vocab_size, (1, n), generator=gen)  # (1, T)
        cache, grown = measured_bytes(lambda: _prefilled(model, ids))
        out.append(grown)
        del cache
    return out


@torch.inference_mode()
def grown_cache_heap(model: nn.Module, first: int, last: int, seed: int = 0
                     ) -> list[tuple[int, int, int]]:
    """A cache grown token by token, as decoding grows it: prefill ``first`` random ids, then
    feed one id at a time up to ``last`` positions; its buffers double when full.

    Returns ``(positions, heap bytes grown since before the cache, allocated_bytes())`` after the
    prefill, after every step that reallocated the buffers, and at the end.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (1, last), generator=gen)  # (1, last)
    _prefilled(model, ids)  # warm-up: position tables for every length, freed again
    before = heap_bytes()
    cache = _prefilled(model, ids[:, :first])
    rows = [(first, heap_bytes() - before, cache.allocated_bytes())]
    for t in range(first, last):
        allocated = cache.allocated_bytes()
        model(ids[:, t: t + 1], kv_cache=cache)  # (1, 1): one new position (one RoPE row kept)
        if cache.allocated_bytes() != allocated or t + 1 == last:
            rows.append((t + 1, heap_bytes() - before, cache.allocated_bytes()))
    return rows


def memory_item(model: nn.Module, cfg: KVCacheConfig) -> ItemResult:
    """kv-cache/3: cache memory measured with the allocator vs the formula, MHA vs GQA, growth."""
    import matplotlib.pyplot as plt

    from nlpcurriculum.models import build_model

    mc = model.config
    if mc.n_heads % cfg.gqa_kv_heads or cfg.gqa_kv_heads >= mc.n_heads:
        raise ValueError(f"gqa_kv_heads ({cfg.gqa_kv_heads}) must divide n_heads ({mc.n_heads}) "
                         "and be smaller")
    torch.manual_seed(0)
    gqa = build_model(replace(mc, n_kv_heads=cfg.gqa_kv_heads)).eval()  # untrained: memory only
    lengths = list(cfg.memory_lengths)
    bpe = next(model.parameters()).element_size()
    variants = {"mha": (model, measure_memory(model, lengths)), "gqa": (gqa, measure_memory(gqa, lengths))}
    metrics: dict[str, float] = {"bytes_per_elem": bpe, "n_heads": mc.n_heads,
                                 "n_kv_heads.mha": mc.n_kv_heads, "n_kv_heads.gqa": cfg.gqa_kv_heads}
    timings: dict[str, float] = {}  # allocator and clock readings, apart from the metrics
    formula_errors = 0
    for name, (m, counted) in variants.items():
        for n, b in zip(lengths, counted):
            formula_errors += abs(b - formula_bytes(m.config, n, bpe))
            metrics[f"bytes.{name}.{n}"] = b
        metrics[f"bytes_per_token.{name}"] = counted[-1] / lengths[-1]
        metrics[f"bytes_per_token_per_layer.{name}"] = counted[-1] / lengths[-1] / mc.n_layers
    # Linear in T: bytes per token at the shortest and longest length must agree.
    mha = variants["mha"][1]
    per_token = [b / n for b, n in zip(mha, lengths)]
    nonlinearity = (max(per_token) - min(per_token)) / max(per_token)
    ratio = variants["gqa"][1][-1] / mha[-1]
    expected_ratio = cfg.gqa_kv_heads / mc.n_kv_heads
    metrics |= {"formula_abs_error_bytes": formula_errors, "per_token_spread": nonlinearity,
                "gqa_over_mha": ratio, "gqa_over_mha.expected": expected_ratio,
                "gqa_ratio_error": abs(ratio - expected_ratio)}

    # measured: the heap's growth while each cache is built and kept
    heap = {name: prefill_heap_bytes(m, lengths) for name, (m, _) in variants.items()}
    for name, measured in heap.items():
        for n, b in zip(lengths, measured):
            timings[f"heap_bytes.{name}.{n}"] = b
    span = lengths[-1] - lengths[0]
    heap_per_token = (heap["mha"][-1] - heap["mha"][0]) / span
    formula_per_token = formula_bytes(mc, 1, bpe)
    heap_ratio = heap["gqa"][-1] / heap["mha"][-1]
    grown = grown_cache_heap(model, lengths[0], lengths[-1])
    end_pos, end_heap, end_alloc = grown[-1]
    timings |= {"heap_bytes_per_token.mha": heap_per_token,
                "heap_per_token_over_formula": heap_per_token / formula_per_token,
                "heap_gqa_over_mha": heap_ratio,
                "grown.heap_bytes": end_heap, "grown.allocated_bytes": end_alloc,
                "grown.heap_over_allocated": end_heap / end_alloc,
                "grown.heap_over_formula": end_heap / formula_bytes(mc, end_pos, bpe)}
    metrics["grown.allocated_over_formula"] = end_alloc / formula_bytes(mc, end_pos, bpe)
    metrics["grown.reallocations"] = len(grown) - 2
    source = heap_source()
    memory_findings = [
        Finding.at_most(
            f"measured ({source}): the heap grows by the formula's 2*n_layers*n_kv_heads*head_dim*bytes "
            f"per cached token (|growth per token from T={lengths[0]} to {lengths[-1]} / formula - 1|; "
            f"fails for a cache that keeps copies, over-allocates or leaks its prefill's activations)",
            "heap_per_token_error", abs(heap_per_token / formula_per_token - 1),
            cfg.checks.max_heap_per_token_error).as_timed(),
        Finding.at_most(
            f"measured ({source}): GQA's cache takes n_kv_heads / n_heads = {expected_ratio:g} of "
            f"MHA's heap at T={lengths[-1]} (|measured ratio - expected|; fails for a GQA that "
            "caches keys and values repeated to every query head)", "heap_gqa_ratio_error",
            abs(heap_ratio - expected_ratio), cfg.checks.max_gqa_heap_ratio_error).as_timed(),
        Finding.at_most(
            f"measured ({source}): a cache grown token by token from {lengths[0]} to {lengths[-1]} "
            f"positions holds its doubled buffers ({end_alloc / formula_bytes(mc, end_pos, bpe):.2f}x "
            "the formula), not just the filled positions (|heap / allocated_bytes - 1| at the end; "
            "fails when the old buffers of a growth are not freed)", "grown_heap_error",
            abs(end_heap / end_alloc - 1), cfg.checks.max_grown_heap_error).as_timed(),
    ]
    # the time a long cache costs: one decoding step on the longest cache vs on the shortest
    gen = torch.Generator().manual_seed(1)
    short, long = (torch.randint(0, mc.vocab_size, (n,), generator=gen).tolist()
                   for n in (lengths[0], lengths[-1]))
    times = timed_rounds(model, {"long": cached_step(model, long, long[-1]),
                                 "short": cached_step(model, short, short[-1])}, cfg.timing_rounds)
    slower = Finding.timing_ratio(
        f"a long cache costs time too: a decoding step reading {lengths[-1]} cached positions is slower "
        f"than one reading {lengths[0]} (median time ratio, {cfg.timing_rounds} interleaved rounds)",
        "long_cache_step_ratio", times["long"], times["short"], cfg.checks.min_long_cache_step_ratio)
    timings |= {"long_cache_step_ratio": slower.value, "long_cache_step_ratio.se": slower.se}

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (m, counted) in variants.items():
        ax.plot(lengths, [b / 2**20 for b in heap[name]], "o-",
                label=f"{name} ({m.config.n_kv_heads} kv heads), measured ({source})")
        ax.plot(lengths, [formula_bytes(m.config, n, bpe) / 2**20 for n in lengths], "k:", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="cache size (MiB)",
           title="KV cache memory (dotted: 2·L·n_kv·d_head·bytes·T)")
    ax.legend(fontsize=8)
    ax2.step([p for p, _, _ in grown], [a / 2**20 for _, _, a in grown], where="post",
             label="allocated buffers")
    ax2.plot([p for p, _, _ in grown], [h / 2**20 for _, h, _ in grown], "o", label=f"measured ({source})")
    ax2.plot([lengths[0], lengths[-1]], [formula_bytes(mc, n, bpe) / 2**20 for n in (lengths[0], lengths[-1])],
             "k:", lw=1, label="formula (filled positions)")
    ax2.set(xlabel="positions cached", ylabel="MiB", title="A cache grown by decoding (doubling)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return ItemResult(
        item=ITEMS[2],
        metrics=metrics,
        timings=timings,
        series={f"bytes_{name}": list(zip(lengths, counted)) for name, (_, counted) in variants.items()},
        figures={"memory.png": fig},
        findings=[
            Finding.at_most("the cache's own count (KVCache.memory_bytes) equals "
                            "2*n_layers*n_kv_heads*head_dim*bytes*T exactly (total absolute error "
                            "in bytes)", "formula_abs_error_bytes",
                            formula_errors, cfg.checks.max_formula_abs_error_bytes, kind=INVARIANT),
            Finding.at_most("the counted cache memory is linear in T: bytes per token is the same "
                            "for short and long sequences (relative spread)", "per_token_spread",
                            nonlinearity, cfg.checks.max_per_token_spread, kind=INVARIANT),
            Finding.at_most("counted GQA cache = MHA cache * n_kv_heads / n_heads (|counted - "
                            "expected| ratio)", "gqa_ratio_error", abs(ratio - expected_ratio),
                            cfg.checks.max_gqa_ratio_error, kind=INVARIANT),
        ] + memory_findings + [slower],
    )


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        model: the trained model (decoded greedily, with and without its KV cache).
        prompt: the prompt's token ids.
        decode: the text of one token id (for the cache visualizer).
        hf_model: the same weights as a ``transformers`` model, timed beside ours (optional).
    """

    model: nn.Module
    prompt: Sequence[int]
    decode: Callable[[int], str]
    hf_model: Any = None


def run(cfg: KVCacheConfig, inputs: Inputs) -> list[ItemResult]:
    """Run the three items with ``cfg.threads`` torch threads; restores the thread count."""
    model, prompt, decode, hf_model = inputs.model, inputs.prompt, inputs.decode, inputs.hf_model
    with torch_threads(cfg.threads):
        return [speed_item(model, prompt, cfg, hf_model), visualizer_item(model, prompt, cfg, decode),
                memory_item(model, cfg)]
