"""The curriculum experiments of section "Long-Context Tricks: Infini-Attention / Sliding Window".

Library: :mod:`nlpcurriculum.longcontext` (sliding-window attention with a ring-buffer cache,
Infini-attention, the recall task, the strided evaluation).

* ``.../1`` (:func:`window_item`): **sliding-window attention and Infini-attention's memory**.
  Invariants: decoding token by token with the ring-buffer cache, far past the window, gives the
  logits of the stock mini-former run with the dense band mask (RoPE and ALiBi); the ring's bytes
  are the same after ``W`` and after ``4 W`` tokens; Infini-attention's streaming form equals its
  parallel form. Findings on the **key-value recall** task (:mod:`~nlpcurriculum.longcontext.recall`),
  accuracy by the query's distance to its pair, paired by seed (``seeds``): the control, a
  sliding-window model, recalls inside its window (it learned the task) and is at chance beyond its
  receptive field (``n_layers * (W - 1)`` tokens back); Infini-attention, the same model plus the compressive memory,
  recovers recall beyond the receptive field. On **long corpus documents** (the corpus's val
  documents of at least ``16 x`` the training context, as bytes): the window costs little loss
  at the training length (RoPE, sliding vs full, paired by seed; the curve over lengths is item 3's).
* ``.../2`` (:func:`memory_item`): the long-context variants as decoders, not the attention
  kernels (the ``flash_attention`` stage benchmarks naive / recompute / tiled / SDPA): a full KV
  cache, the ring buffer and the Infini state, prefilled to ``bench_positions`` tokens. Measured
  bytes of each state (the allocator's count, :func:`~nlpcurriculum.metrics.memory.measured_bytes`),
  time per generated token (interleaved rounds) and the time and peak resident memory of a
  prefill. Findings (timed): the ring's bytes stay flat while the full cache's grow with the
  position, the full cache's per-token time grows while the ring's does not, the ring decodes
  faster at the longest position, and the chunked sliding prefill beats the full one.
* ``.../3`` (:func:`collapse_item`): perplexity vs context length at ``eval_multiples`` of the
  training context, strided evaluation (stride ``L / eval_stride_divisor``), per position scheme
  (``positions``) and attention variant (full, sliding), models trained here on the pipeline's
  train tokens (``seeds`` each); the stride sweep at the training length (no overlap vs overlap);
  each curve's **collapse point** (the first length whose perplexity exceeds ``collapse_factor``
  x the training length's, fixed in params) and the table of them. Findings (paired by seed):
  RoPE with full attention collapses within 16x; a sliding window keeps RoPE from collapsing;
  ALiBi extrapolates; overlapping windows lower the perplexity at the training length.

Sizes: tiny models (two layers, width 32-64) trained for seconds, one torch thread; absolute
numbers are far from published ones, the comparisons are the point.

Left out: the passkey retrieval and book-summary tasks of the Infini-attention paper, RoPE
scaling tricks (position interpolation, NTK, YaRN), attention sinks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nlpcurriculum.experiments.harness import map_seeds
from nlpcurriculum.longcontext.infini import InfiniCache
from nlpcurriculum.longcontext.models import build_long_model, new_cache
from nlpcurriculum.longcontext.recall import RecallTask, recall_batch
from nlpcurriculum.longcontext.sliding_window import RingKVCache, window_mask
from nlpcurriculum.longcontext.strided_eval import collapse_point, strided_loss
from nlpcurriculum.metrics.memory import heap_source, measured_bytes
from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.tokenizers.bytes import BYTE_VOCAB, byte_tokens
from nlpcurriculum.training.activation_checkpointing import peak_rss_delta

__all__ = ["ITEMS", "Inputs", "LongContextChecks", "LongContextConfig", "collapse_item",
           "memory_item", "run", "window_item"]

SECTION = "long-context-tricks-infini-attention-sliding-window"
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = (f"{SECTION}/1", f"{SECTION}/2", f"{SECTION}/3")

RECALL_ARMS = ("sliding", "infini", "full")
BENCH_ARMS = ("full", "sliding", "infini")


@dataclass
class LongContextChecks:
    """Bounds of the findings and tolerances of the invariants (params ``long_context.checks``).

    Attributes:
        max_ring_diff: ring-buffer decode vs the dense band-masked reference, max |logit diff|.
        max_infini_stream_diff: Infini streaming vs parallel form, max |logit diff|.
        min_inside_accuracy: item 1: the sliding control's recall inside its window.
        max_sliding_beyond_over_chance: item 1: the control's recall beyond its receptive field
            minus chance, at most.
        min_infini_recall_gain: item 1: Infini minus sliding recall beyond the receptive field.
        max_window_cost: item 1: sliding minus full loss (nats) on long documents at 1x (RoPE).
        max_ring_memory_growth: item 2: ring bytes at the last position over the first.
        min_full_memory_growth_share: item 2: the full cache's byte growth over the position
            growth (1 = exactly linear).
        min_full_decode_growth: item 2: full cache per-token time, last position over first.
        max_ring_decode_growth: item 2: ring per-token time, last position over first.
        min_ring_decode_speedup: item 2: full over ring per-token time at the last position.
        min_prefill_speedup: item 2: full over chunked sliding prefill time, longest prefill.
        collapse_factor: item 3: the collapse point's perplexity ratio to the 1x perplexity.
        min_rope_rescue: item 3: RoPE loss increase 1x -> longest, full minus sliding (nats).
        max_alibi_increase: item 3: ALiBi (full) loss increase 1x -> longest (nats).
        min_overlap_gain: item 3: no-overlap minus overlapping-stride loss at 1x (nats).
    """

    max_ring_diff: float = 1e-5
    max_infini_stream_diff: float = 1e-5
    min_inside_accuracy: float = 0.5
    max_sliding_beyond_over_chance: float = 0.1
    min_infini_recall_gain: float = 0.2
    max_window_cost: float = 0.1
    max_ring_memory_growth: float = 1.2
    min_full_memory_growth_share: float = 0.5
    min_full_decode_growth: float = 2.0
    max_ring_decode_growth: float = 1.3
    min_ring_decode_speedup: float = 1.5
    min_prefill_speedup: float = 1.5
    collapse_factor: float = 1.5
    min_rope_rescue: float = 0.2
    max_alibi_increase: float = 0.1
    min_overlap_gain: float = 0.01


@dataclass
class LongContextConfig:
    """Knobs of :func:`run` (the ``long_context`` params section).

    Attributes:
        seeds: one model per arm per seed; comparisons are paired by seed.
        threads: torch threads (per worker).
        workers: seeds trained side by side in worker processes (item 2's timings run alone).
        recall_length, recall_pairs, recall_queries, recall_keys, recall_values: item 1's task
            (:class:`~nlpcurriculum.longcontext.recall.RecallTask`).
        recall_d_model, recall_n_layers, recall_n_heads, recall_window, recall_position: item 1's
            models ("none": the task is pure content addressing, positions would only blur it).
        recall_steps, recall_batch, recall_lr: their training.
        recall_eval_sequences: fresh sequences scored per model.
        lm_context: T, item 3's training context (and item 1's long-document models').
        lm_d_model, lm_n_layers, lm_n_heads, lm_window: item 3's models.
        lm_steps, lm_batch, lm_lr: their training on the train token stream.
        positions: item 3's position schemes; ``"learned"`` can only be scored at 1x.
        attentions: item 3's attention variants (``"full"``, ``"sliding"``).
        eval_multiples: context lengths to score, as multiples of T (1 first).
        eval_stride_divisor: stride = L // divisor for the curves.
        stride_divisors: the stride sweep at 1x (1 = no overlap).
        eval_max_tokens: cap on the long val documents' tokens scored.
        bench_d_model, bench_n_layers, bench_n_heads, bench_window: item 2's model (RoPE).
        bench_positions: decode positions (first and last compared).
        bench_prefill: prefill lengths (the last compared).
        bench_tokens: generated tokens per timed call.
        rounds: timed rounds, arms interleaved.
        checks: bounds of the findings.
    """

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    threads: int = 1
    workers: int = 2
    recall_length: int = 64
    recall_pairs: int = 1
    recall_queries: int = 1
    recall_keys: int = 1
    recall_values: int = 8
    recall_d_model: int = 32
    recall_n_layers: int = 1
    recall_n_heads: int = 2
    recall_window: int = 16
    recall_position: str = "none"
    recall_steps: int = 600
    recall_batch: int = 32
    recall_lr: float = 0.003
    recall_eval_sequences: int = 512
    lm_context: int = 32
    lm_d_model: int = 64
    lm_n_layers: int = 2
    lm_n_heads: int = 4
    lm_window: int = 16
    lm_steps: int = 300
    lm_batch: int = 16
    lm_lr: float = 0.003
    positions: list[str] = field(default_factory=lambda: ["rope", "alibi", "sinusoidal", "none"])
    attentions: list[str] = field(default_factory=lambda: ["full", "sliding"])
    eval_multiples: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    eval_stride_divisor: int = 2
    stride_divisors: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    eval_max_tokens: int = 8192
    bench_d_model: int = 64
    bench_n_layers: int = 2
    bench_n_heads: int = 4
    bench_window: int = 64
    bench_positions: list[int] = field(default_factory=lambda: [256, 1024, 4096, 16384])
    bench_prefill: list[int] = field(default_factory=lambda: [512, 2048])
    bench_tokens: int = 8
    rounds: int = 5
    checks: LongContextChecks = field(default_factory=LongContextChecks)

    def __post_init__(self) -> None:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds, got {self.seeds}")
        if not self.eval_multiples or self.eval_multiples[0] != 1:
            raise ValueError(f"eval_multiples must start at 1, got {self.eval_multiples}")
        if "full" not in self.attentions or not set(self.attentions) <= {"full", "sliding"}:
            raise ValueError(f"attentions must include 'full' and hold only 'full'/'sliding', got {self.attentions}")
        if "rope" not in self.positions:
            raise ValueError("positions must include 'rope' (items 1 and 3 compare on it)")
        if len(self.bench_positions) < 2 or not self.bench_prefill or self.rounds < 2:
            raise ValueError("need two bench_positions, one bench_prefill and rounds >= 2")
        if any(p < self.bench_window for p in self.bench_positions):
            raise ValueError(f"bench_positions must be >= bench_window {self.bench_window}")
        if 1 not in self.stride_divisors or len(self.stride_divisors) < 2:
            raise ValueError(f"stride_divisors must include 1 (no overlap) and one more, got {self.stride_divisors}")

    @property
    def recall_task(self) -> RecallTask:
        return RecallTask(self.recall_length, self.recall_pairs, self.recall_queries,
                          self.recall_keys, self.recall_values)


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the corpus's train and val texts (the ``splits`` contract),
    tokenized here as UTF-8 bytes (vocabulary 256).

    Why bytes and not the pipeline's BPE stream (``data/processed/tokens``, vocabulary 4096): on
    it, the tiny models this section can afford (300 steps) reach a val perplexity of ~390 and
    barely use their context (the stride sweep moved the loss by 0.01 nats on a tuning seed), so
    no length effect can show. On bytes the same models lean on context within a few hundred steps,
    as the other model stages' do.

    Attributes:
        train_texts: train documents; the models train on their bytes, joined.
        val_texts: val documents; those with more bytes than the longest evaluated context are
            the long documents.
    """

    train_texts: Sequence[str]
    val_texts: Sequence[str]


# ---------------------------------------------------------------------------------------------
# item 1: recall on the key-value task


def _recall_model(cfg: LongContextConfig, arm: str, seed: int) -> MiniFormer:
    torch.manual_seed(seed)
    mcfg = MiniFormerConfig(vocab_size=cfg.recall_task.vocab_size, d_model=cfg.recall_d_model,
                            n_layers=cfg.recall_n_layers, n_heads=cfg.recall_n_heads,
                            max_seq_len=cfg.recall_length, position=cfg.recall_position, norm="rmsnorm")
    return build_long_model(mcfg, arm, cfg.recall_window)


def train_recall(cfg: LongContextConfig, arm: str, seed: int) -> MiniFormer:
    """One recall model, trained on fresh batches (the same batches for every arm of a seed)."""
    model, task = _recall_model(cfg, arm, seed), cfg.recall_task
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.recall_lr)
    g = torch.Generator().manual_seed(1000 + seed)
    model.train()
    for _ in range(cfg.recall_steps):
        b = recall_batch(task, cfg.recall_batch, g)
        loss = model(b.tokens, targets=b.targets).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def recall_by_distance(model: MiniFormer, cfg: LongContextConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, correct)`` of every query of ``recall_eval_sequences`` held-out sequences."""
    b = recall_batch(cfg.recall_task, cfg.recall_eval_sequences, torch.Generator().manual_seed(50_000 + seed))
    pred = model(b.tokens).logits.argmax(-1)  # (B, L)
    asked = b.targets != -100
    return b.distances[asked].numpy(), (pred[asked] == b.targets[asked]).numpy()


def _bucket_accuracy(d: np.ndarray, ok: np.ndarray, lo: int, hi: int) -> float:
    """Accuracy of the queries at distances ``lo <= d < hi`` (nan if none)."""
    sel = (d >= lo) & (d < hi)
    return float(ok[sel].mean()) if sel.any() else math.nan


def _max_logit_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@torch.no_grad()
def window_invariants(cfg: LongContextConfig) -> dict[str, float]:
    """Ring decode vs the dense masked reference (RoPE, ALiBi), ring bytes, Infini stream vs parallel."""
    W, T = cfg.recall_window, 4 * cfg.recall_window + 3
    out: dict[str, float] = {}
    for pos in ("rope", "alibi"):
        mcfg = MiniFormerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, max_seq_len=T, position=pos)
        torch.manual_seed(0)
        reference = build_model(mcfg).eval()
        sliding = build_long_model(mcfg, "sliding", W).eval()
        sliding.load_state_dict(reference.state_dict())
        idx = torch.randint(0, 64, (2, T), generator=torch.Generator().manual_seed(1))
        dense = reference(idx, attn_mask=window_mask(torch.arange(T), torch.arange(T), W)).logits
        cache = new_cache(sliding, "sliding", W)
        steps, sizes = [sliding(idx[:, :3], kv_cache=cache).logits], {}
        for t in range(3, T):  # one token at a time, 4x past the window
            steps.append(sliding(idx[:, t:t + 1], kv_cache=cache).logits)
            sizes[t + 1] = cache.allocated_bytes()
        out[f"ring_decode_max_abs_diff.{pos}"] = _max_logit_diff(torch.cat(steps, 1), dense)
        out[f"ring_bytes_ratio.{pos}"] = sizes[T] / sizes[W]
    mcfg = MiniFormerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, max_seq_len=T, position="rope")
    torch.manual_seed(0)
    infini = build_long_model(mcfg, "infini", W).eval()
    for block in infini.blocks:
        block.attn.gate.normal_()  # a mix that is neither half-half nor the same in every head
    idx = torch.randint(0, 64, (2, T), generator=torch.Generator().manual_seed(2))
    parallel = infini(idx).logits
    cache = new_cache(infini, "infini", W)
    steps = [infini(idx[:, :5], kv_cache=cache).logits]
    steps += [infini(idx[:, t:t + 1], kv_cache=cache).logits for t in range(5, T)]
    out["infini_stream_max_abs_diff"] = _max_logit_diff(torch.cat(steps, 1), parallel)
    return out


def window_item(cfg: LongContextConfig, recall: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
                losses: dict[tuple[str, str, int], list[float]], invariants: dict[str, float]) -> ItemResult:
    """Item 1: the invariants, recall by distance, and the window's cost on long documents."""
    c, W, nl = cfg.checks, cfg.recall_window, cfg.recall_n_layers
    reach = nl * (W - 1)  # the receptive field: each stacked window reaches W - 1 further back
    chance = 1.0 / cfg.recall_values
    buckets = {"inside": (0, W), "reach": (W, reach + 1), "beyond": (reach + 1, 10 ** 9)}
    if nl == 1:  # one layer: beyond the window is beyond the receptive field
        del buckets["reach"]
    acc = {(arm, name): [_bucket_accuracy(*recall[(arm, s)], lo, hi) for s in cfg.seeds]
           for arm in RECALL_ARMS for name, (lo, hi) in buckets.items()}  # nan: no query there
    metrics: dict[str, float] = dict(invariants)
    metrics.update({f"recall_accuracy.{arm}.{name}": float(np.mean(v)) for (arm, name), v in acc.items()})
    metrics["recall_chance"] = chance
    for m_i, m in enumerate(cfg.eval_multiples):
        for att in cfg.attentions:
            metrics[f"long_doc_loss.rope.{att}.x{m}"] = float(np.mean([losses[("rope", att, s)][m_i] for s in cfg.seeds]))
    ring_diff = max(invariants[f"ring_decode_max_abs_diff.{p}"] for p in ("rope", "alibi"))
    ring_ratio = max(invariants[f"ring_bytes_ratio.{p}"] for p in ("rope", "alibi"))
    stream = invariants["infini_stream_max_abs_diff"]
    findings = [
        Finding.invariant(f"decoding one token at a time with the ring-buffer cache ({W} slots), 4x past "
                          "the window, gives the logits of the stock mini-former with the dense band "
                          "mask (RoPE and ALiBi)", "ring_decode_max_abs_diff", ring_diff,
                          ring_diff <= c.max_ring_diff, c.max_ring_diff),
        Finding.invariant(f"the ring's memory is bounded by the window: the same bytes after {4 * W + 3} "
                          f"tokens as after {W}", "ring_bytes_ratio", ring_ratio, ring_ratio == 1.0, 1.0),
        Finding.invariant("Infini-attention's streaming form (ring + memory, token by token) equals its "
                          "parallel form", "infini_stream_max_abs_diff", stream,
                          stream <= c.max_infini_stream_diff, c.max_infini_stream_diff),
        Finding.compare(f"the control learned the task: the sliding-window model recalls pairs inside its "
                        f"window (distance < {W}) with accuracy at least {c.min_inside_accuracy} (an "
                        "untrained model is at chance)", "recall_accuracy.sliding.inside",
                        acc[("sliding", "inside")], margin=c.min_inside_accuracy),
        Finding.compare(f"beyond its receptive field ({nl} layer(s) x {W - 1} = {reach} tokens back) the sliding "
                        f"window cannot see the pair: recall within {c.max_sliding_beyond_over_chance} "
                        f"of chance ({chance:.3f}); a window that leaks fails this",
                        "recall_accuracy_over_chance.sliding.beyond",
                        [a - chance for a in acc[("sliding", "beyond")]],
                        margin=-c.max_sliding_beyond_over_chance, higher_is_better=False),
        Finding.compare(f"Infini-attention's compressive memory recovers recall beyond the receptive "
                        f"field: its accuracy there exceeds the sliding window's (same model, no memory) "
                        f"by at least {c.min_infini_recall_gain}, paired by seed",
                        "infini_minus_sliding_recall.beyond", acc[("infini", "beyond")],
                        acc[("sliding", "beyond")], margin=c.min_infini_recall_gain),
        Finding.compare(f"on long corpus documents at the training context ({cfg.lm_context} tokens) a "
                        f"window of {cfg.lm_window} loses at most {c.max_window_cost} nats against full "
                        "attention (RoPE, paired by seed): most of a next token's loss is local",
                        "sliding_minus_full_loss.rope.x1", [losses[("rope", "sliding", s)][0] for s in cfg.seeds],
                        [losses[("rope", "full", s)][0] for s in cfg.seeds],
                        margin=-c.max_window_cost, higher_is_better=False),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    edges = np.arange(0, cfg.recall_length + W // 2, max(2, W // 2))
    for arm in RECALL_ARMS:
        curves = []
        for s in cfg.seeds:
            d, ok = recall[(arm, s)]
            curves.append([_bucket_accuracy(d, ok, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
        curves = np.array(curves)
        mid = (edges[:-1] + edges[1:]) / 2
        keep = ~np.isnan(curves).any(0)
        se = curves[:, keep].std(0, ddof=1) / np.sqrt(len(cfg.seeds))
        ax.errorbar(mid[keep], curves[:, keep].mean(0), yerr=se, marker="o", capsize=3, label=arm)
    ax.axhline(chance, color="grey", ls=":", label="chance")
    ax.axvline(W, color="grey", ls="--", lw=0.8)
    ax.axvline(reach, color="black", ls="--", lw=0.8)
    ax.set_xlabel(f"query distance to its pair (tokens); dashed: window {W}, receptive field {reach}")
    ax.set_ylabel(f"recall accuracy (mean ± SE, {len(cfg.seeds)} seeds)")
    ax.set_title("key-value recall by distance")
    ax.legend(fontsize=8)
    for att in cfg.attentions:
        ax2.plot(cfg.eval_multiples, [metrics[f"long_doc_loss.rope.{att}.x{m}"] for m in cfg.eval_multiples],
                 "o-", label=f"rope, {att}")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel(f"context length (x the training {cfg.lm_context} tokens)")
    ax2.set_ylabel("loss on long val documents (nats/token)")
    ax2.set_title("long documents")
    ax2.legend(fontsize=8)
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    table = "recall accuracy by distance bucket (mean over seeds)\n" + "\n".join(
        f"{arm:>8}: " + "  ".join(f"{name}={np.mean(acc[(arm, name)]):.3f}" for name in buckets)
        for arm in RECALL_ARMS) + f"\nchance={chance:.3f}; inside: d < {W}; beyond: d > {reach}\n"
    return ItemResult(ITEMS[0], metrics=metrics, findings=findings,
                      figures={"recall_by_distance.png": fig}, texts={"recall.txt": table})


# ---------------------------------------------------------------------------------------------
# item 2: the variants as decoders: memory and time per token


def _fill(cache, model: MiniFormer, n: int, window: int, g: torch.Generator) -> None:
    """Put ``n`` positions of random keys and values into every layer of ``cache``, as a prefill
    of ``n`` tokens would, without running the model (an O(n^2) prefill at 16k tokens would cost
    minutes); full caches are allocated with room for the decode rounds."""
    attn = model.blocks[0].attn
    shape = (1, attn.n_kv_heads, 0, attn.head_dim)
    for layer in range(len(model.blocks)):
        if isinstance(cache, RingKVCache):
            for a in range(0, n, window):
                b = min(n, a + window)
                k = torch.randn(*shape[:2], b - a, shape[3], generator=g)
                v = torch.randn(*shape[:2], b - a, shape[3], generator=g)
                cache.update(layer, k, v, torch.arange(a, b))
                if isinstance(cache, InfiniCache):
                    cache.write(layer, k, v, b)
        else:
            k = torch.randn(*shape[:2], n, shape[3], generator=g)
            cache.update(layer, k, torch.randn(*shape[:2], n, shape[3], generator=g))


@torch.no_grad()
def memory_item(cfg: LongContextConfig) -> ItemResult:
    """Item 2: cache bytes and per-token time by position; prefill time and peak memory."""
    c, W = cfg.checks, cfg.bench_window
    last_p = max(cfg.bench_positions)
    mcfg = MiniFormerConfig(vocab_size=256, d_model=cfg.bench_d_model, n_layers=cfg.bench_n_layers,
                            n_heads=cfg.bench_n_heads, max_seq_len=last_p + 1024, position="rope",
                            norm="rmsnorm")
    models = {}
    for arm in BENCH_ARMS:
        torch.manual_seed(0)
        models[arm] = build_long_model(mcfg, arm, W).eval()
    timings: dict[str, float] = {}
    g = torch.Generator().manual_seed(0)
    extra = (cfg.rounds + 2) * cfg.bench_tokens
    with torch_threads(cfg.threads):
        caches, calls = {}, {}
        for p in cfg.bench_positions:
            for arm in BENCH_ARMS:
                def build(arm=arm, p=p):
                    cache = KVCache(cfg.bench_n_layers, capacity=p + extra) if arm == "full" else \
                        new_cache(models[arm], arm, W)
                    _fill(cache, models[arm], p, W, g)
                    return cache
                cache, nbytes = measured_bytes(build)
                caches[(arm, p)] = cache
                timings[f"cache_measured_bytes.{arm}.p{p}"] = float(nbytes)
                tok = torch.randint(0, 256, (1, 1), generator=g)
                calls[f"{arm}.{p}"] = (lambda m=models[arm], ch=cache, t=tok:
                                       [m(t, kv_cache=ch) for _ in range(cfg.bench_tokens)])
        times = interleaved_rounds(calls, cfg.rounds)
        per_token = {tuple(k.split(".")): [t / cfg.bench_tokens for t in v] for k, v in times.items()}
        for (arm, p), v in per_token.items():
            timings[f"decode_seconds_per_token.{arm}.p{p}"] = float(np.median(v))
        del caches
        prefill = {}
        for n in cfg.bench_prefill:
            idx = torch.randint(0, 256, (1, n), generator=g)
            for arm in BENCH_ARMS:
                chunk = n if arm == "full" else W
                def run_prefill(m=models[arm], arm=arm, idx=idx, chunk=chunk):
                    cache = new_cache(m, arm, W)
                    for a in range(0, idx.size(1), chunk):
                        m(idx[:, a:a + chunk], kv_cache=cache)
                prefill[f"{arm}.{n}"] = run_prefill
                peak = peak_rss_delta(run_prefill)
                timings[f"prefill_peak_rss_bytes.{arm}.n{n}"] = math.nan if peak is None else float(peak)
        prefill_times = interleaved_rounds(prefill, cfg.rounds)
        for k, v in prefill_times.items():
            arm, n = k.split(".")
            timings[f"prefill_seconds.{arm}.n{n}"] = float(np.median(v))
    first, last = str(min(cfg.bench_positions)), str(last_p)
    byte = {arm: (timings[f"cache_measured_bytes.{arm}.p{first}"], timings[f"cache_measured_bytes.{arm}.p{last}"])
            for arm in BENCH_ARMS}
    growth = last_p / min(cfg.bench_positions)
    ring_growth = byte["sliding"][1] / max(byte["sliding"][0], 1.0)
    full_share = byte["full"][1] / max(byte["full"][0], 1.0) / growth
    n_last = str(max(cfg.bench_prefill))
    findings = [
        Finding.at_most(f"the ring buffer's measured bytes do not grow with the position: at {last} "
                        f"tokens at most {c.max_ring_memory_growth}x its bytes at {first} (allocator "
                        f"reading, {heap_source()})", "ring_bytes_growth", ring_growth,
                        c.max_ring_memory_growth).as_timed(),
        Finding.at_least(f"the full KV cache's measured bytes grow with the position: from {first} to "
                         f"{last} tokens ({growth:.0f}x) they grow by at least {c.min_full_memory_growth_share} "
                         "of that factor", "full_cache_bytes_growth_share", full_share,
                         c.min_full_memory_growth_share).as_timed(),
        Finding.timing_ratio(f"with the full cache, a generated token costs more as the context grows (it "
                             f"reads every cached key): at {last} at least {c.min_full_decode_growth}x the "
                             f"time at {first}", f"decode_growth.full.p{first}_to_p{last}",
                             per_token[("full", last)], per_token[("full", first)], c.min_full_decode_growth),
        Finding.timing_ratio(f"with the ring buffer, a generated token costs the same at every position "
                             f"(it reads {W} keys): the time at {first} is at least "
                             f"{1 / c.max_ring_decode_growth:.2f}x the time at {last}",
                             f"decode_growth.sliding.p{first}_to_p{last}", per_token[("sliding", first)],
                             per_token[("sliding", last)], 1 / c.max_ring_decode_growth),
        Finding.timing_ratio(f"at {last} tokens the ring buffer generates faster than the full cache, by "
                             f"at least {c.min_ring_decode_speedup}x", f"decode_speedup.sliding_over_full.p{last}",
                             per_token[("full", last)], per_token[("sliding", last)], c.min_ring_decode_speedup),
        Finding.timing_ratio(f"prefilling {n_last} tokens in windows of {W} (sliding) is faster than the "
                             f"full causal prefill, by at least {c.min_prefill_speedup}x (O(nW) vs O(n^2) work)",
                             f"prefill_speedup.sliding_over_full.n{n_last}", prefill_times[f"full.{n_last}"],
                             prefill_times[f"sliding.{n_last}"], c.min_prefill_speedup),
    ]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_m, ax_t = fig.subplots(1, 2)
    for arm in BENCH_ARMS:
        ax_m.loglog(cfg.bench_positions, [timings[f"cache_measured_bytes.{arm}.p{p}"] / 2 ** 10
                                          for p in cfg.bench_positions], "o-", label=arm)
        ax_t.loglog(cfg.bench_positions, [1e3 * timings[f"decode_seconds_per_token.{arm}.p{p}"]
                                          for p in cfg.bench_positions], "o-", label=arm)
    ax_m.set_ylabel(f"decode state, measured KiB ({heap_source()})")
    ax_t.set_ylabel("ms per generated token")
    for a in (ax_m, ax_t):
        a.set_xlabel("context position (tokens)")
        a.grid(alpha=0.3, which="both")
        a.legend()
    fig.suptitle(f"decoding past the window ({W}): d_model {cfg.bench_d_model}, "
                 f"{cfg.bench_n_layers} layers, {cfg.threads} thread(s)")
    lines = [f"{'arm':>8} " + " ".join(f"{'p=' + str(p):>12}" for p in cfg.bench_positions)]
    for arm in BENCH_ARMS:
        lines.append(f"{arm:>8} " + " ".join(f"{timings[f'cache_measured_bytes.{arm}.p{p}'] / 1024:>10.0f}KB"
                                             for p in cfg.bench_positions))
    metrics = {"bench_window": float(W), "bench_d_model": float(cfg.bench_d_model),
               "bench_n_layers": float(cfg.bench_n_layers)}
    return ItemResult(ITEMS[1], metrics=metrics, timings=timings, findings=findings,
                      figures={"memory_and_time.png": fig},
                      texts={"decode_state_bytes.txt": "measured decode-state bytes\n" + "\n".join(lines) + "\n"})


# ---------------------------------------------------------------------------------------------
# item 3: perplexity vs context length, collapse points


def train_lm(cfg: LongContextConfig, inputs: Inputs, position: str, attention: str, seed: int) -> MiniFormer:
    """One corpus LM at context T on random windows of the train stream (same windows for every
    scheme and variant of a seed)."""
    T = cfg.lm_context
    torch.manual_seed(seed)
    mcfg = MiniFormerConfig(vocab_size=BYTE_VOCAB, d_model=cfg.lm_d_model, n_layers=cfg.lm_n_layers,
                            n_heads=cfg.lm_n_heads, max_seq_len=T, position=position, norm="rmsnorm")
    model = build_long_model(mcfg, attention, cfg.lm_window)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lm_lr)
    train = byte_tokens(inputs.train_texts)  # (N,) int64
    g = torch.Generator().manual_seed(2000 + seed)
    model.train()
    for _ in range(cfg.lm_steps):
        starts = torch.randint(0, len(train) - T - 1, (cfg.lm_batch,), generator=g)
        x = torch.stack([train[s:s + T] for s in starts.tolist()])  # (B, T)
        y = torch.stack([train[s + 1:s + T + 1] for s in starts.tolist()])
        loss = model(x, targets=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def long_documents(cfg: LongContextConfig, inputs: Inputs) -> list[np.ndarray]:
    """Val documents (as bytes) of more than the longest evaluated context, up to ``eval_max_tokens``."""
    need = max(cfg.eval_multiples) * cfg.lm_context + 1
    docs, total = [], 0
    val = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) for t in inputs.val_texts]
    for doc in (d for d in val if len(d) >= need):
        if total >= cfg.eval_max_tokens:
            break
        docs.append(doc[:cfg.eval_max_tokens - total] if len(doc) > cfg.eval_max_tokens - total >= need else doc)
        total += len(docs[-1])
    if not docs:
        raise ValueError(f"no val document has {need} tokens: lower eval_multiples or lm_context")
    return docs


def score_lm(model: MiniFormer, cfg: LongContextConfig, docs: list[np.ndarray], position: str
             ) -> list[float]:
    """Loss at every ``eval_multiples`` length (nan where the scheme cannot run: learned past 1x)."""
    out = []
    for m in cfg.eval_multiples:
        L = m * cfg.lm_context
        if position == "learned" and m > 1:
            out.append(math.nan)
            continue
        out.append(strided_loss(model, docs, L, max(1, L // cfg.eval_stride_divisor)).loss)
    return out


def seed_job(seed: int, cfg: LongContextConfig, inputs: Inputs) -> dict:
    """Everything one seed trains and scores (a worker process runs it, :func:`map_seeds`):
    ``{"recall": {arm: (distances, correct)}, "losses": {(position, attention): [loss per
    multiple]}, "strides": [loss per stride divisor] (RoPE, full, 1x)}``."""
    docs = long_documents(cfg, inputs)
    out: dict = {"recall": {}, "losses": {}, "strides": []}
    with torch_threads(cfg.threads):
        for arm in RECALL_ARMS:
            out["recall"][arm] = recall_by_distance(train_recall(cfg, arm, seed), cfg, seed)
        for p in cfg.positions:
            for a in cfg.attentions:
                model = train_lm(cfg, inputs, p, a, seed)
                out["losses"][(p, a)] = score_lm(model, cfg, docs, p)
                if (p, a) == ("rope", "full"):
                    T = cfg.lm_context
                    out["strides"] = [strided_loss(model, docs, T, T // d).loss for d in cfg.stride_divisors]
    return out


def collapse_item(cfg: LongContextConfig, losses: dict, strides: dict, n_doc_tokens: int) -> ItemResult:
    """Item 3: the curves, the collapse points and their table, the stride sweep."""
    c, T, S = cfg.checks, cfg.lm_context, cfg.seeds
    lengths = [m * T for m in cfg.eval_multiples]
    last = len(lengths) - 1
    metrics: dict[str, float] = {"long_doc_tokens": float(n_doc_tokens)}
    rows, points = [], {}
    for p in cfg.positions:
        for a in cfg.attentions:
            per_seed = np.array([losses[(p, a, s)] for s in S])  # (seeds, lengths)
            mean_ppl = [None if math.isnan(x) else math.exp(x) for x in per_seed.mean(0)]
            for m, ppl in zip(cfg.eval_multiples, mean_ppl):
                if ppl is not None:
                    metrics[f"perplexity.{p}.{a}.x{m}"] = ppl
            point = collapse_point(lengths, mean_ppl, c.collapse_factor)
            seed_points = [collapse_point(lengths, [None if math.isnan(x) else math.exp(x) for x in row],
                                          c.collapse_factor) for row in per_seed]
            points[(p, a)] = point
            metrics[f"collapse_multiple.{p}.{a}"] = 0.0 if point is None else point / T
            rows.append(f"{p:>11} {a:>8} {'none' if point is None else f'{point // T}x ({point})':>12} "
                        + " ".join("-" if q is None else f"{q // T}x" for q in seed_points))
    for d, vals in zip(cfg.stride_divisors, zip(*[strides[s] for s in S])):
        metrics[f"stride_sweep_perplexity.rope.full.x1.stride_T_over_{d}"] = math.exp(float(np.mean(vals)))
    inc = {(p, a): [losses[(p, a, s)][last] - losses[(p, a, s)][0] for s in S]
           for p in cfg.positions for a in cfg.attentions}
    no_overlap = [strides[s][cfg.stride_divisors.index(1)] for s in S]
    finest = max(cfg.stride_divisors)
    overlap = [strides[s][cfg.stride_divisors.index(finest)] for s in S]
    top = cfg.eval_multiples[-1]
    findings = [
        Finding.compare(f"RoPE with full attention collapses within {top}x the training context: its "
                        f"loss at {top}x exceeds the 1x loss by more than log({c.collapse_factor}) nats "
                        "(perplexity x collapse_factor), paired by seed; a scheme that extrapolates fails this",
                        f"loss_increase.rope.full.x1_to_x{top}", inc[("rope", "full")],
                        margin=math.log(c.collapse_factor)),
        Finding.compare(f"ALiBi extrapolates: with full attention its loss at {top}x stays within "
                        f"{c.max_alibi_increase} nats of its 1x loss (paired by seed)",
                        f"loss_increase.alibi.full.x1_to_x{top}", inc[("alibi", "full")],
                        margin=-c.max_alibi_increase, higher_is_better=False)
        if ("alibi", "full") in inc else None,
        Finding.compare(f"a sliding window ({cfg.lm_window} tokens) keeps RoPE from collapsing: no query "
                        f"ever meets a relative distance it was not trained on, so its loss increase 1x->{top}x "
                        f"is smaller than full attention's by at least {c.min_rope_rescue} nats (paired by seed)",
                        f"loss_increase_full_minus_sliding.rope.x{top}", inc[("rope", "full")],
                        inc[("rope", "sliding")], margin=c.min_rope_rescue)
        if ("rope", "sliding") in inc else None,
        Finding.compare(f"overlapping windows score tokens with more context: at the training length, "
                        f"stride T/{finest} lowers the loss below the no-overlap evaluation (stride T) by at "
                        f"least {c.min_overlap_gain} nats (RoPE, full attention, paired by seed)",
                        f"no_overlap_minus_overlap_loss.rope.full.x1", no_overlap, overlap,
                        margin=c.min_overlap_gain),
    ]
    findings = [f for f in findings if f is not None]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax, ax_s = fig.subplots(1, 2, width_ratios=[2, 1])
    colours = {"none": "#7f7f7f", "sinusoidal": "#1f77b4", "learned": "#2ca02c", "rope": "#d62728", "alibi": "#9467bd"}
    for p in cfg.positions:
        for a in cfg.attentions:
            ys = [metrics.get(f"perplexity.{p}.{a}.x{m}") for m in cfg.eval_multiples]
            xs = [m for m, y in zip(cfg.eval_multiples, ys) if y is not None]
            ax.plot(xs, [y for y in ys if y is not None], marker="o", ls="-" if a == "full" else "--",
                    color=colours.get(p), label=f"{p}, {a}")
            if points[(p, a)] is not None and points[(p, a)] // T in xs:
                m = points[(p, a)] // T
                ax.plot([m], [metrics[f"perplexity.{p}.{a}.x{m}"]], marker="X", ms=12, color=colours.get(p))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"context length (x the training {T} tokens); X: collapse point "
                  f"(ppl > {c.collapse_factor} x the 1x ppl)")
    ax.set_ylabel(f"val perplexity, stride L/{cfg.eval_stride_divisor} (mean of {len(S)} seeds)")
    ax.set_title("perplexity vs context length")
    ax.legend(fontsize=7, ncol=2)
    ax_s.plot([T // d for d in cfg.stride_divisors],
              [metrics[f"stride_sweep_perplexity.rope.full.x1.stride_T_over_{d}"] for d in cfg.stride_divisors], "o-")
    ax_s.set_xscale("log", base=2)
    ax_s.set_xlabel(f"stride (tokens), window {T}; {T} = no overlap")
    ax_s.set_ylabel("val perplexity (rope, full)")
    ax_s.set_title("stride sweep at 1x")
    for a_ in (ax, ax_s):
        a_.grid(alpha=0.3, which="both")
    header = (f"collapse point: first length with perplexity > {c.collapse_factor} x the {T}-token perplexity "
              f"(seed-mean curve; per seed after it); 'none' = not within {top}x\n"
              f"{'position':>11} {'attention':>8} {'collapse':>12} per seed\n")
    return ItemResult(ITEMS[2], metrics=metrics, findings=findings,
                      figures={"perplexity_vs_context.png": fig},
                      texts={"collapse_points.txt": header + "\n".join(rows) + "\n"})


def run(cfg: LongContextConfig, inputs: Inputs) -> list[ItemResult]:
    """All three items, in :data:`ITEMS` order."""
    jobs = map_seeds(seed_job, cfg.seeds, cfg.workers, cfg, inputs)
    recall = {(arm, s): job["recall"][arm] for s, job in zip(cfg.seeds, jobs) for arm in RECALL_ARMS}
    losses = {(p, a, s): v for s, job in zip(cfg.seeds, jobs) for (p, a), v in job["losses"].items()}
    strides = {s: job["strides"] for s, job in zip(cfg.seeds, jobs)}
    with torch_threads(cfg.threads):
        invariants = window_invariants(cfg)
    n_doc_tokens = sum(len(d) for d in long_documents(cfg, inputs))
    return [window_item(cfg, recall, losses, invariants), memory_item(cfg),
            collapse_item(cfg, losses, strides, n_doc_tokens)]
