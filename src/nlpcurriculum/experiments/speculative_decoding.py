"""The curriculum experiments of section "Speculative Decoding" (items speculative-decoding/1-3).

The target is the pipeline's base LM (``models/base``). Two families of drafts:

* model drafts, trained here on the same train token stream at several sizes
  (:func:`train_drafts`): mini-formers of 1-4 layers with the target's architecture but narrower,
  plus a count-based bigram table (:func:`bigram_draft`: no training, almost no compute) as the
  smallest point: the draft-size ablation;
* model-free lookup drafts (:func:`lookup_drafts`, see :mod:`nlpcurriculum.decoding.drafters`):
  ``context`` (prompt lookup: copy what followed the last earlier occurrence of the suffix),
  ``table`` (the target's arg-max next tokens distilled into an n-gram table,
  :func:`distilled_table`) and ``context-table`` (the copy where there is a match, the table
  where there is none). Deterministic (one-hot ``q``), nearly free per token, so they are swept
  over longer blocks (``lookup_gammas``).

Prompts are windows of the val stream.

* ``speculative-decoding/1`` (:func:`correctness_item`): greedy speculative decoding with every
  draft and every ``gamma`` must reproduce the target's own greedy (KV-cached) output token for
  token; the rejection-sampling rule applied to the real models' next-token distributions must
  sample the target's distribution (total variation within a bound set by the sample count) while
  the draft's own distribution is measurably different, for a model draft (sampled ``q``) and a
  lookup draft (one-hot ``q``); and the wall-clock speedup at the best setting, against the
  configured bound (``min_speedup`` in params, 1.8x by default).
* ``speculative-decoding/2`` (:func:`acceptance_item`): acceptance rate by position within the
  draft block and by temperature (the sampled rule, exact at every temperature), speedup against
  ``gamma`` for every draft, and measured speedups against Leviathan et al.'s formula
  ``(1 - a^(g+1)) / ((1 - a)(g c + 1))`` with the measured ``a`` and ``c`` (judged on the model
  drafts; the lookup drafts' acceptance is bursty, not i.i.d., and is only reported).
* ``speculative-decoding/3`` (:func:`draft_size_item`): per draft size, its quality (val loss
  on the corpus, and KL from the target on the same windows: what acceptance depends on),
  acceptance rate, cost ratio and best speedup; the best quality/speed trade-off is the draft
  with the highest speedup (the lookup drafts are listed too, with their table sizes).

Timings are best-of-``repeats`` with one torch thread; the machine is shared, so they move from
run to run. The baseline is the target's own KV-cached greedy decoding
(:func:`~nlpcurriculum.decoding.kv_decode.greedy_cached`), the fastest plain decoder here.

Drafts are trained on the corpus (``distill = 0``) or partly towards the target's own next-token
distributions (``distill > 0``, DistillSpec-style knowledge distillation; their names end in
``-kd``), which raises the acceptance rate at the same size.

Left out: batched speculative decoding; GPU timings (where a wider verification pass is nearly
free and the formula's assumption holds better).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.decoding.batched import greedy_batched
from nlpcurriculum.decoding.drafters import (
    ChainDrafter,
    ContextDrafter,
    Drafter,
    ModelDrafter,
    NgramTableDrafter,
    as_drafter,
    count_votes,
    teacher_forced_argmax_stream,
)
from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.decoding.speculative import (
    SpecStats,
    accept_block,
    autoregressive,
    expected_speedup,
    expected_tokens_per_call,
    speculative_generate,
)
from nlpcurriculum.compression.distill import distill_loss, kl_to_target
from nlpcurriculum.experiments.harness import mean_loss
from nlpcurriculum.metrics.stats import spearman
from nlpcurriculum.metrics.timing import best_of, torch_threads
from nlpcurriculum.models.bigram import BigramLM
from nlpcurriculum.models.miniformer import MiniFormer, build_model
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.fast.decode_layout import decode_layout
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "SpeculativeConfig",
    "acceptance_item",
    "bigram_draft",
    "correctness_item",
    "distilled_table",
    "draft_size_item",
    "exactness_check",
    "forward_cost",
    "lookup_drafts",
    "propose_cost",
    "run",
    "train_drafts",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "correctness": "speculative-decoding/1",
    "acceptance": "speculative-decoding/2",
    "size": "speculative-decoding/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class SpeculativeChecks:
    """Bounds of the findings that no knob above sets (params ``speculative.checks``).

    Attributes:
        max_greedy_runs_different: item 1: greedy speculative runs whose output differs from the
            target's greedy output.
        tv_false_alarm: item 1: probability that an exact sampler's total variation still exceeds
            the bound (:func:`exactness_check`).
        acceptance_max_sigmas: item 2: measured minus expected acceptance rate allowed, in binomial
            standard errors.
        min_quality_acceptance_spearman: item 3: Spearman correlation of -val loss with acceptance
            over the model drafts.
        min_agreement_acceptance_spearman: item 3: Spearman correlation of -KL(target || draft) with
            acceptance.
        min_best_draft_speedup: item 3: wall-clock speedup of the best draft/gamma pair.
    """

    max_greedy_runs_different: float = 0.0
    tv_false_alarm: float = 1e-3
    acceptance_max_sigmas: float = 3.0
    min_quality_acceptance_spearman: float = 0.5
    min_agreement_acceptance_spearman: float = 0.5
    min_best_draft_speedup: float = 1.0


@dataclass(kw_only=True)
class SpeculativeConfig:
    """The ``speculative`` section of params/speculative_decoding.yaml.

    Attributes:
        draft_layers: layers of each mini-former draft.
        draft_widths: ``d_model`` of each draft (same length as ``draft_layers``); the rest of the
            architecture (position scheme, norm, MLP, vocabulary) is the target's.
        draft_head_dim: head size of the drafts (``n_heads = width / head_dim``).
        bigram: also use the count-based bigram table as a draft (the smallest, cheapest point).
        bigram_alpha: add-alpha smoothing of the bigram counts.
        context_draft: also draft by prompt lookup (:class:`ContextDrafter`, named ``context``).
        max_ngram: the longest suffix the context draft looks up ...
        min_ngram: ... and the shortest.
        table_draft: also draft from the target distilled into an n-gram table
            (:class:`NgramTableDrafter`, named ``table``); with ``context_draft`` also the chain
            ``context-table`` (context lookup first, the table for the rest of the block).
        table_order: longest key of the table (tokens).
        table_tokens: train-stream tokens the target is run over teacher-forced for the table
            (0 = the whole stream).
        table_generations: the target's greedy continuations (``new_tokens`` ids each) of this
            many train-stream windows (``prompt_tokens`` each, seeded random starts) also vote in
            the table: the target distilled on its own outputs as well as on the corpus
            (on-policy data, as in DistillSpec). 0 = the corpus only.
        table_min_confidence: the table stops drafting when the product of its vote shares drops
            below this (0 = draft while keys are found).
        lookup_gammas: the most tokens the context / table drafts propose per call, swept
            (ascending); they cost next to nothing, so longer blocks than ``gammas`` pay off.
        train: how the drafts are trained (the same for every draft).
        distill: weight of distillation in the drafts' loss: ``(1 - distill) * CE(next token) +
            distill * KL(target || draft)`` on the same train windows (DistillSpec, Zhou et al.
            2023, arXiv:2310.08461: a draft trained towards the target is accepted more often).
            0 = plain next-token training on the corpus.
        seq_len: training window (clipped to the target's ``max_seq_len``).
        val_batches: batches of ``train.batch_size`` val windows for each model's val loss.
        prompt_tokens: prompt length; prompts are val-stream windows spread evenly over it.
        n_prompts: prompts decoded per measurement.
        new_tokens: ids generated per prompt.
        gammas: draft lengths swept (ascending).
        temperatures: item 2: temperatures of the acceptance curves (0 = greedy).
        curve_gamma: item 2: the draft length of those curves.
        exact_samples: item 1: samples of the rule on the real models' distributions.
        exact_bins: item 1: the distributions are compared on the target's ``exact_bins - 1``
            likeliest tokens plus one bin for the rest.
        exact_temperature: item 1: temperature of that check.
        repeats: timed runs per measurement; the fastest counts.
        cost_calls: forward passes per cost measurement.
        min_speedup: item 1: the bound its finding checks the best wall-clock speedup against.
        formula_tol: item 2: max mean relative error of the formula (with the measured
            verification cost) against the measured speedups.
        seed: seeds draft initialisation, sampling and the exactness check.
        num_threads: torch threads (1: the least noisy timings on a shared machine).
        checks: the other bounds of the findings.
    """

    draft_layers: list[int] = field(default_factory=lambda: [1, 1, 2])
    draft_widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    draft_head_dim: int = 16
    bigram: bool = True
    bigram_alpha: float = 0.01
    context_draft: bool = True
    max_ngram: int = 3
    min_ngram: int = 1
    table_draft: bool = True
    table_order: int = 4
    table_tokens: int = 0
    table_generations: int = 0
    table_min_confidence: float = 0.0
    lookup_gammas: list[int] = field(default_factory=lambda: [4, 8])
    train: TrainerConfig
    distill: float = 0.0
    seq_len: int = 128
    val_batches: int = 8
    prompt_tokens: int = 16
    n_prompts: int = 4
    new_tokens: int = 64
    gammas: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    curve_gamma: int = 4
    exact_samples: int = 20000
    exact_bins: int = 16
    exact_temperature: float = 1.0
    repeats: int = 3
    cost_calls: int = 50
    min_speedup: float = 1.8
    formula_tol: float = 0.35
    seed: int = 0
    num_threads: int = 1
    checks: SpeculativeChecks = field(default_factory=SpeculativeChecks)

    def __post_init__(self) -> None:
        if len(self.draft_layers) != len(self.draft_widths):
            raise ValueError(f"draft_layers ({len(self.draft_layers)}) and draft_widths "
                             f"({len(self.draft_widths)}) must have the same length")
        if not (self.draft_layers or self.bigram or self.context_draft or self.table_draft):
            raise ValueError("no draft: draft_layers is empty and bigram, context_draft and "
                             "table_draft are all false")
        for name in ("draft_layers", "draft_widths"):
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"{name} must be positive ints, got {getattr(self, name)}")
        if self.draft_head_dim < 1 or any(w % self.draft_head_dim for w in self.draft_widths):
            raise ValueError(f"draft_head_dim={self.draft_head_dim} must divide every draft width "
                             f"{self.draft_widths}")
        for name in ("seq_len", "val_batches", "prompt_tokens", "n_prompts", "new_tokens",
                     "curve_gamma", "exact_samples", "repeats", "cost_calls", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.exact_bins < 2:
            raise ValueError(f"exact_bins must be >= 2, got {self.exact_bins}")
        for name in ("gammas", "lookup_gammas"):
            gs = getattr(self, name)
            if not gs or any(g < 1 for g in gs) or gs != sorted(set(gs)):
                raise ValueError(f"{name} must be ascending distinct positive ints, got {gs}")
        if not 1 <= self.min_ngram <= self.max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {self.min_ngram}, {self.max_ngram}")
        if self.table_order < 1 or self.table_tokens < 0 or self.table_generations < 0:
            raise ValueError(f"need table_order >= 1, table_tokens >= 0, table_generations >= 0; got "
                             f"{self.table_order}, {self.table_tokens}, {self.table_generations}")
        if not 0.0 <= self.table_min_confidence <= 1.0:
            raise ValueError(f"table_min_confidence must be in [0, 1], got {self.table_min_confidence}")
        if not self.temperatures or any(t < 0 for t in self.temperatures) or max(self.temperatures) == 0:
            raise ValueError(f"temperatures must be values >= 0, at least one > 0, got {self.temperatures}")
        if self.exact_temperature <= 0:
            raise ValueError(f"exact_temperature must be > 0, got {self.exact_temperature}")
        if not 0.0 <= self.distill <= 1.0:
            raise ValueError(f"distill must be in [0, 1], got {self.distill}")
        if self.bigram_alpha <= 0:
            raise ValueError(f"bigram_alpha must be > 0, got {self.bigram_alpha}")
        if self.min_speedup <= 0 or self.formula_tol <= 0:
            raise ValueError("min_speedup and formula_tol must be > 0")


# --- drafts ------------------------------------------------------------------------------------


@dataclass
class Draft:
    """A drafter with what the ablation reports about it.

    ``model`` is the draft language model (None for the lookup drafts, which have no
    distribution: their val loss and KL are nan); ``params`` counts its parameters, or a table's
    entries; ``train_s`` is the training or table-building time.
    """

    name: str
    drafter: Drafter
    model: nn.Module | None
    params: int
    val_loss: float
    train_s: float
    kl_to_target: float = float("nan")

    @property
    def lookup(self) -> bool:
        """A context / table draft (no model): swept over ``lookup_gammas``."""
        return self.model is None


def bigram_draft(train: np.ndarray, vocab_size: int, alpha: float) -> BigramLM:
    """A :class:`BigramLM` whose table is the log of add-``alpha`` smoothed bigram counts.

    The maximum-likelihood bigram model, fitted by counting instead of gradient descent: the
    row-wise softmax of ``log(count + alpha)`` is ``(count + alpha) / (row total + V alpha)``.
    """
    ids = torch.as_tensor(np.asarray(train, dtype=np.int64))
    counts = torch.zeros(vocab_size * vocab_size)
    counts.index_add_(0, ids[:-1] * vocab_size + ids[1:], torch.ones(ids.numel() - 1))
    model = BigramLM(vocab_size)
    with torch.no_grad():
        model.table.weight.copy_((counts.view(vocab_size, vocab_size) + alpha).log())  # (V, V)
    return model.eval()


def _bigram_loss(model: BigramLM, data: TokenBatcher, batch_size: int, n_batches: int) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in data.eval_batches(batch_size, n_batches):
            total += float(F.cross_entropy(model(x).logits.flatten(0, 1), y.flatten(), reduction="sum"))
            count += y.numel()
    return total / count


def train_drafts(target: MiniFormer, train: np.ndarray, val: np.ndarray,
                 cfg: SpeculativeConfig) -> list[Draft]:
    """The bigram draft (if enabled) and one trained mini-former per ``(layers, width)``."""
    seq_len = min(cfg.seq_len, target.config.max_seq_len)
    train_t = torch.as_tensor(np.asarray(train, dtype=np.int64))
    val_data = TokenBatcher(torch.as_tensor(np.asarray(val, dtype=np.int64)), seq_len,
                            mode="sequential")
    drafts = []
    V = target.config.vocab_size
    if cfg.bigram:
        start = time.perf_counter()
        model = bigram_draft(train, V, cfg.bigram_alpha)
        drafts.append(Draft("bigram", ModelDrafter(model), model, V * V,
                            _bigram_loss(model, val_data, cfg.train.batch_size, cfg.val_batches),
                            time.perf_counter() - start))
    for layers, width in zip(cfg.draft_layers, cfg.draft_widths):
        mcfg = dataclasses.replace(target.config, n_layers=layers, d_model=width,
                                   n_heads=width // cfg.draft_head_dim, n_kv_heads=None, d_ff=None)
        seed_everything(cfg.seed)
        model = build_model(mcfg)
        start = time.perf_counter()
        Trainer(model, cfg.train, TokenBatcher(train_t, seq_len, seed=cfg.seed),
                loss_fn=distill_loss(target, cfg.distill)).train()
        model.eval()
        name = f"{layers}L-d{width}" + ("-kd" if cfg.distill > 0 else "")
        drafts.append(Draft(name, ModelDrafter(model), model, model.num_params(),
                            mean_loss(model, val_data, cfg.train.batch_size, cfg.val_batches),
                            time.perf_counter() - start))
    for d in drafts:
        d.kl_to_target = kl_to_target(target, d.model, val_data, cfg.train.batch_size, cfg.val_batches)
    return drafts


def distilled_table(target: MiniFormer, train: np.ndarray, cfg: SpeculativeConfig) -> NgramTableDrafter:
    """The target distilled into an n-gram table (see :class:`NgramTableDrafter`).

    Votes: the target's teacher-forced arg-max at every position of the first ``table_tokens``
    train tokens (windows of the target's context), plus, if ``table_generations > 0``, the
    target's own greedy continuations of that many seeded train windows (batched, one KV cache):
    each generated token votes under the keys that precede it.
    """
    seq_len = target.config.max_seq_len
    stream = np.asarray(train if cfg.table_tokens == 0 else train[: cfg.table_tokens])
    nxt = teacher_forced_argmax_stream(target, stream, seq_len)  # (T',)
    counts = count_votes(stream[: len(nxt)], nxt, cfg.table_order)
    if cfg.table_generations:
        P, n = cfg.prompt_tokens, min(cfg.new_tokens, seq_len - cfg.prompt_tokens)
        rng = np.random.default_rng(cfg.seed)
        starts = rng.integers(0, len(train) - P, cfg.table_generations)
        prompts = torch.as_tensor(np.stack([train[s: s + P] for s in starts]).astype(np.int64))  # (N, P)
        for i in range(0, len(prompts), 256):
            rows = prompts[i: i + 256]  # (b, P)
            seqs = torch.cat([rows, greedy_batched(target, rows, n).tokens], dim=1)  # (b, P + n)
            for row in seqs.tolist():
                # position j votes for row[j + 1]; the prompt's own positions do not vote
                count_votes(row[:-1], row[1:], cfg.table_order, counts, first=P - 1)
    return NgramTableDrafter.from_votes(counts, cfg.table_order, cfg.table_min_confidence,
                                        target.config.vocab_size)


def lookup_drafts(target: MiniFormer, train: np.ndarray, cfg: SpeculativeConfig) -> list[Draft]:
    """The model-free drafts: ``context`` (prompt lookup), ``table`` (distilled n-grams) and
    their chain ``context-table``, as enabled."""
    drafts = []
    nan = float("nan")
    context = ContextDrafter(cfg.max_ngram, cfg.min_ngram)
    if cfg.context_draft:
        drafts.append(Draft("context", context, None, 0, nan, 0.0))
    if cfg.table_draft:
        start = time.perf_counter()
        table = distilled_table(target, train, cfg)
        build_s = time.perf_counter() - start
        drafts.append(Draft("table", table, None, len(table), nan, build_s))
        if cfg.context_draft:
            drafts.append(Draft("context-table", ChainDrafter(context, table), None, len(table), nan,
                                build_s))
    return drafts


# --- measurements ------------------------------------------------------------------------------


@torch.inference_mode()
def forward_cost(model: nn.Module, context: int, width: int, calls: int, repeats: int) -> float:
    """Seconds of one forward pass over ``width`` new tokens after ``context`` cached ones.

    A mini-former is timed with its KV cache (cropped back after every pass, as in decoding); a
    cache-less draft is timed on ``width`` tokens alone. Both run as the decoders run them
    (inference mode, ``decode_layout`` of ``nn/fast/``). The lower quartile of
    ``calls * repeats`` single-pass times.
    """
    x = torch.zeros(1, width, dtype=torch.long)  # (1, width)
    times = []
    cache = None
    with decode_layout(model):
        if hasattr(model, "blocks"):
            cache = KVCache(len(model.blocks), capacity=context + width)
            model(torch.zeros(1, context, dtype=torch.long), kv_cache=cache)
        for _ in range(calls * repeats):
            start = time.perf_counter()
            if cache is not None:
                model(x, kv_cache=cache)
                cache.crop(context)
            else:
                model(x)
            times.append(time.perf_counter() - start)
    # the lower quartile: on a shared machine most slow calls are other processes' time slices
    return float(np.percentile(times, 25))


@dataclass
class SweepRow:
    """One (draft, gamma) greedy measurement over all prompts."""

    draft: str
    gamma: int
    seconds: float
    baseline_s: float
    identical: int  # prompts whose output equals the target's greedy output
    stats: SpecStats
    c: float
    verify_ratio: float  # mean cost of this row's verification passes / one-token forward
    lookup: bool = False  # a model-free draft (variable block length, bursty acceptance)

    @property
    def speedup(self) -> float:
        return self.baseline_s / self.seconds

    @property
    def mean_proposed(self) -> float:
        """Tokens drafted per call on average (``gamma`` for a model draft, less near the end)."""
        return float(np.mean(self.stats.proposed))

    @property
    def predicted(self) -> float:
        """Leviathan et al.'s formula with the measured a, c and verification cost.

        ``gamma`` in the formula is the mean drafted block length (a lookup draft proposes
        fewer than its maximum when it finds nothing or is unsure).
        """
        a = min(max(self.stats.acceptance_rate, 0.0), 1.0)
        g = self.mean_proposed
        return expected_tokens_per_call(a, g) / (g * self.c + self.verify_ratio)

    @property
    def predicted_paper(self) -> float:
        """The formula as in the paper: verification costs one target forward."""
        a = min(max(self.stats.acceptance_rate, 0.0), 1.0)
        return expected_speedup(a, self.gamma, self.c)


def propose_cost(drafter: Drafter, sequences: Sequence[list[int]], gamma: int, repeats: int) -> float:
    """Seconds per proposed token of a model-free drafter: ``propose(seq, gamma)`` on each of
    ``sequences`` (fastest of ``repeats`` passes over them), divided by the ids it proposed."""

    def one_pass() -> int:
        proposed = 0
        for seq in sequences:
            drafter.start(seq)
            proposed += len(drafter.propose(seq, gamma)[0])
        return proposed

    proposed, best = best_of(one_pass, repeats)
    return best / max(proposed or 0, 1)


def greedy_sweep(target: MiniFormer, drafts: Sequence[Draft], prompts: Sequence[list[int]],
                 cfg: SpeculativeConfig) -> tuple[list[SweepRow], dict[str, float]]:
    """Greedy speculative decoding for every draft and gamma, timed against the cached baseline.

    Model drafts are swept over ``gammas``, the lookup drafts over ``lookup_gammas``. Every
    run's output is compared with the target's own greedy output.

    Returns the rows and the measured costs (seconds per forward, keys ``target.<w>`` for a
    ``w``-token verification pass, ``draft.<name>`` per drafted token).
    """
    n = cfg.new_tokens
    ctx = cfg.prompt_tokens + n // 2  # a typical cache length during decoding
    widest = max(cfg.gammas + (cfg.lookup_gammas if any(d.lookup for d in drafts) else [])) + 1
    # every verification width: lookup drafts propose any number of tokens up to their gamma
    costs = {f"target.{w}": forward_cost(target, ctx, w, cfg.cost_calls, cfg.repeats)
             for w in range(1, widest + 1)}
    reference = [greedy_cached(target, p, n) for p in prompts]
    halfway = [p + ref[: n // 2] for p, ref in zip(prompts, reference)]  # typical sequences
    rows = []
    for d in drafts:
        if d.lookup:
            costs[f"draft.{d.name}"] = propose_cost(d.drafter, halfway, max(cfg.lookup_gammas),
                                                    cfg.repeats)
        else:
            costs[f"draft.{d.name}"] = forward_cost(d.model, ctx, 1, cfg.cost_calls, cfg.repeats)
        c = costs[f"draft.{d.name}"] / costs["target.1"]
        for g in (cfg.lookup_gammas if d.lookup else cfg.gammas):
            stats, same, base_s, spec_s = SpecStats(g), 0, 0.0, 0.0
            for p, ref in zip(prompts, reference):
                # per prompt, baseline and speculative runs alternate and the fastest of each
                # counts: short, interleaved windows are the least disturbed on a shared machine
                best_b = best_s = float("inf")
                for _ in range(cfg.repeats):
                    start = time.perf_counter()
                    greedy_cached(target, p, n)
                    best_b = min(best_b, time.perf_counter() - start)
                    s = SpecStats(g)
                    start = time.perf_counter()
                    out = speculative_generate(target, d.drafter, p, n, g, stats=s)
                    best_s = min(best_s, time.perf_counter() - start)
                stats.merge(s)  # decoding is deterministic: every repeat has the same stats
                same += out == ref
                base_s += best_b
                spec_s += best_s
            # the mean cost of this row's verification passes (their widths vary for lookup drafts)
            verify = float(np.mean([costs[f"target.{k + 1}"] for k in stats.proposed])) / costs["target.1"]
            rows.append(SweepRow(d.name, g, spec_s, base_s, same, stats, c, verify, d.lookup))
    return rows, costs


def temperature_curves(target: MiniFormer, draft: Drafter, prompts: Sequence[list[int]],
                       cfg: SpeculativeConfig) -> dict[float, tuple[SpecStats, float]]:
    """Per temperature: the acceptance stats of speculative sampling and its speedup over
    plain sampling with the KV cache (best of ``repeats``)."""
    out = {}
    g, n = cfg.curve_gamma, cfg.new_tokens
    for t in cfg.temperatures:
        holder: list[SpecStats] = []

        def spec(t: float = t) -> None:
            gen = torch.Generator().manual_seed(cfg.seed)
            stats = SpecStats(g)
            for p in prompts:
                s = SpecStats(g)
                speculative_generate(target, draft, p, n, g, t, gen, stats=s)
                stats.merge(s)
            holder.append(stats)

        def plain(t: float = t) -> None:
            gen = torch.Generator().manual_seed(cfg.seed)
            for p in prompts:
                autoregressive(target, p, n, t, gen)

        spec_s = base_s = float("inf")
        for _ in range(cfg.repeats):  # alternate, as in the greedy sweep
            spec_s = min(spec_s, best_of(spec, 1)[1])
            base_s = min(base_s, best_of(plain, 1)[1])
        out[t] = (holder[-1], base_s / spec_s)
    return out


@torch.no_grad()
def exactness_check(target: MiniFormer, draft: nn.Module | Drafter, prompt: Sequence[int],
                    temperature: float, n_samples: int, n_bins: int, seed: int,
                    false_alarm: float = 1e-3) -> dict[str, float]:
    """Sample the first emitted token of speculative sampling ``n_samples`` times on real models.

    The draft proposes ``x ~ q`` after ``prompt`` (a deterministic drafter's ``q`` is one-hot on
    its proposal, so ``x`` is always that id and the rule accepts it with probability ``p(x)``); :func:`accept_block` (the rule the decoding
    loop uses) keeps it or resamples from the residual. The emitted tokens' histogram is compared
    with the target's ``p`` on ``n_bins`` bins (the target's ``n_bins - 1`` likeliest tokens and
    the rest). Under exactness, the total variation ``TV`` of the histogram from ``p`` has mean at
    most ``0.5 * sum_k sqrt(p_k (1 - p_k) / N)`` and exceeds it by ``t`` with probability at most
    ``exp(-2 N t^2)`` (McDiarmid: one sample moves TV by at most ``1/N``); the bound is their sum
    at ``t = sqrt(ln(1 / false_alarm) / (2N))`` (by default 0.1%: ``ln(1000)``). The draft's own ``q`` on the same bins
    must be further than the bound from ``p``, or the check could not tell them apart.
    """
    ids = torch.tensor([list(prompt)])  # (1, T)
    p = F.softmax(target(ids).logits[0, -1].float() / temperature, dim=-1)  # (V,)
    drafter = as_drafter(draft)
    drafter.start(prompt)
    gen = torch.Generator().manual_seed(seed)
    proposal, q_rows = drafter.propose(list(prompt), 1, temperature, gen)
    if not proposal:
        raise ValueError("the drafter proposes nothing after this prompt: no exactness check")
    q = q_rows[0] if q_rows is not None else F.one_hot(torch.tensor(proposal[0]), p.numel()).float()  # (V,)
    x = torch.multinomial(q, n_samples, replacement=True, generator=gen)  # (N,) drafted tokens
    N, V = n_samples, p.numel()
    # G = 1: p at the drafted position and a bonus position (its value never reaches the first
    # emitted token); q at the drafted position. In chunks: the rule builds (chunk, V) tensors.
    firsts, accepts = [], []
    for lo in range(0, N, 1024):
        xc = x[lo: lo + 1024]  # (b,)
        b = xc.numel()
        n_acc, nxt = accept_block(p.view(1, 1, V).expand(b, 2, V), q.view(1, 1, V).expand(b, 1, V),
                                  xc.view(b, 1), gen)
        firsts.append(torch.where(n_acc > 0, xc, nxt))  # (b,) the first emitted token
        accepts.append(n_acc > 0)
    first, n_acc = torch.cat(firsts), torch.cat(accepts)
    top = p.argsort(descending=True)[: n_bins - 1]
    bin_of = torch.full((V,), n_bins - 1, dtype=torch.long)
    bin_of[top] = torch.arange(n_bins - 1)

    def binned(dist: Tensor) -> Tensor:
        return torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bin_of, dist.double())

    emp = torch.bincount(bin_of[first], minlength=n_bins).double() / N
    pb, qb = binned(p), binned(q)
    bound = float(0.5 * (pb * (1 - pb) / N).sqrt().sum()
                  + math.sqrt(math.log(1 / false_alarm) / (2 * N)))
    return {
        "tv_spec_vs_target": float(0.5 * (emp - pb).abs().sum()),
        "tv_draft_vs_target": float(0.5 * (qb - pb).abs().sum()),
        "tv_bound": bound,
        "acceptance_first_position": float((n_acc > 0).double().mean()),
        "expected_acceptance": float(torch.minimum(p, q).sum()),
        "samples": float(N),
    }


# --- items -------------------------------------------------------------------------------------


def _best(rows: Sequence[SweepRow]) -> SweepRow:
    return max(rows, key=lambda r: r.speedup)


def correctness_item(rows: Sequence[SweepRow], exact: dict[str, dict[str, float]],
                     cfg: SpeculativeConfig, n_prompts: int) -> ItemResult:
    """speculative-decoding/1: greedy identity, distribution exactness, the best speedup.

    ``exact`` maps a draft name to its :func:`exactness_check` result (a model draft and a
    deterministic lookup draft: the rule must be exact for both kinds of ``q``).
    """
    runs = len(rows) * n_prompts
    mismatches = runs - sum(r.identical for r in rows)
    best = _best(rows)
    metrics = {
        "greedy_runs": runs,
        "greedy_runs_different": mismatches,
        "best_speedup": best.speedup,
        "best_gamma": best.gamma,
        "best_acceptance_rate": best.stats.acceptance_rate,
        "best_tokens_per_call": best.stats.tokens_per_call,
        "best_drafted_per_call": best.mean_proposed,
    }
    text = (f"greedy: {runs} runs (drafts x gammas x prompts), {mismatches} differ from the "
            f"target's greedy output\n")
    findings = [
        Finding.at_most("greedy speculative decoding reproduces the target's greedy output "
                        "token for token, for every draft, gamma and prompt (runs that differ)",
                        "greedy_runs_different", mismatches, cfg.checks.max_greedy_runs_different,
                        kind=INVARIANT),
    ]
    for name, ex in exact.items():
        metrics.update({f"exact.{name}.{k}": v for k, v in ex.items()})
        text += (f"exactness at T={cfg.exact_temperature:g} with draft {name}: TV(speculative, "
                 f"target) = {ex['tv_spec_vs_target']:.4f} (bound {ex['tv_bound']:.4f}, "
                 f"{int(ex['samples'])} samples, {cfg.exact_bins} bins); TV(draft, target) = "
                 f"{ex['tv_draft_vs_target']:.4f}\n")
        findings += [
            Finding.at_most(f"speculative sampling with draft {name} samples the target's "
                            f"distribution: total variation of the emitted first tokens from p "
                            f"within the sampling bound", f"exact.{name}.tv_spec_vs_target",
                            ex["tv_spec_vs_target"], ex["tv_bound"], kind=INVARIANT),
            Finding.at_least(f"the check can tell: draft {name}'s own distribution is further "
                             f"from the target's than the bound", f"exact.{name}.tv_draft_vs_target",
                             ex["tv_draft_vs_target"], ex["tv_bound"]),
        ]
    text += (f"best setting: draft {best.draft}, gamma {best.gamma}: {best.speedup:.2f}x wall clock "
             f"({best.baseline_s:.3f} s -> {best.seconds:.3f} s, acceptance "
             f"{best.stats.acceptance_rate:.3f}, {best.stats.tokens_per_call:.2f} tokens and "
             f"{best.mean_proposed:.2f} drafted per target call, cost ratio {best.c:.4f}, "
             f"verification {best.verify_ratio:.2f} one-token forwards)\n")
    findings.append(Finding.at_least(f"wall-clock speedup over KV-cached greedy decoding at the best "
                                     f"setting >= {cfg.min_speedup:g}x (min_speedup in params)",
                                     "best_speedup", best.speedup, cfg.min_speedup))
    return ItemResult(item=ITEM["correctness"], metrics=metrics, texts={"correctness.txt": text},
                      findings=findings)


def acceptance_item(rows: Sequence[SweepRow], curves: dict[float, tuple[SpecStats, float]],
                    curve_draft: str, cfg: SpeculativeConfig) -> ItemResult:
    """speculative-decoding/2: acceptance by position and temperature; speedup vs gamma; formula."""
    from matplotlib.figure import Figure

    metrics: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for t, (stats, speed) in curves.items():
        by_pos = stats.acceptance_by_position()
        ax1.plot(range(1, len(by_pos) + 1), by_pos, "o-", label=f"T={t:g} (a={stats.acceptance_rate:.2f})")
        metrics[f"T{t:g}.acceptance_rate"] = stats.acceptance_rate
        metrics[f"T{t:g}.tokens_per_call"] = stats.tokens_per_call
        metrics[f"T{t:g}.speedup"] = speed
        for i, (v, r) in enumerate(zip(by_pos, stats.reached())):
            metrics[f"T{t:g}.judged.pos{i + 1}"] = r  # how many calls the rate at i rests on
            if not math.isnan(v):
                metrics[f"T{t:g}.acceptance.pos{i + 1}"] = v
        series[f"acceptance_T{t:g}"] = [(i + 1, v) for i, v in enumerate(by_pos) if not math.isnan(v)]
    ax1.set(xlabel="position in the draft block", ylabel="P(accept | earlier accepted)",
            title=f"Acceptance by position ({curve_draft}, gamma={cfg.curve_gamma})", ylim=(0, 1.02))
    ax1.legend(fontsize=8)
    names = list(dict.fromkeys(r.draft for r in rows))
    errors, errors_paper, errors_lookup = [], [], []
    for name in names:
        rs = [r for r in rows if r.draft == name]
        ax2.plot([r.gamma for r in rs], [r.speedup for r in rs], "o-", label=name)
        for r in rs:
            metrics[f"{name}.g{r.gamma}.speedup"] = r.speedup
            metrics[f"{name}.g{r.gamma}.predicted"] = r.predicted
            metrics[f"{name}.g{r.gamma}.acceptance_rate"] = r.stats.acceptance_rate
            metrics[f"{name}.g{r.gamma}.tokens_per_call"] = r.stats.tokens_per_call
            # the formula's i.i.d. acceptance fits model drafts; a lookup draft's acceptance is
            # bursty (a copied loop is accepted whole), so its error is reported, not judged
            if r.lookup:
                errors_lookup.append(abs(r.predicted - r.speedup) / r.speedup)
            else:
                errors.append(abs(r.predicted - r.speedup) / r.speedup)
                errors_paper.append(abs(r.predicted_paper - r.speedup) / r.speedup)
        series[f"speedup_{name}"] = [(r.gamma, r.speedup) for r in rs]
        ax3.scatter([r.predicted for r in rs], [r.speedup for r in rs], label=name, s=18)
    ax2.axhline(1.0, c="grey", lw=0.8)
    ax2.axhline(cfg.min_speedup, c="grey", ls="--", lw=0.8, label=f"target {cfg.min_speedup:g}x")
    ax2.set(xlabel="gamma (drafted tokens per call)", ylabel="speedup vs cached greedy",
            title="Greedy speedup vs gamma")
    ax2.legend(fontsize=8)
    hi = max([r.speedup for r in rows] + [r.predicted for r in rows]) * 1.1
    ax3.plot([0, hi], [0, hi], c="grey", lw=0.8)
    ax3.set(xlabel="formula (measured a, c, verify cost)", ylabel="measured speedup",
            title="Measured vs expected speedup")
    ax3.legend(fontsize=8)
    metrics["formula_mean_rel_error"] = float(np.mean(errors)) if errors else float("nan")
    metrics["formula_paper_mean_rel_error"] = float(np.mean(errors_paper)) if errors else float("nan")
    if errors_lookup:
        metrics["formula_lookup_mean_rel_error"] = float(np.mean(errors_lookup))
    table = ("draft          gamma  a      drafted/call  tok/call  c       verify  measured  formula  "
             "paper-formula\n" + "\n".join(
                 f"{r.draft:14s} {r.gamma:5d}  {r.stats.acceptance_rate:.3f}  {r.mean_proposed:12.2f}  "
                 f"{r.stats.tokens_per_call:8.2f}  {r.c:.4f}  {r.verify_ratio:6.2f}  {r.speedup:8.2f}  "
                 f"{r.predicted:7.2f}  {r.predicted_paper:13.2f}" for r in rows))
    table += ("\n(formula: Leviathan et al.'s with the measured a, c, mean drafted block and mean "
              "verification cost; judged on the model drafts only, whose acceptance is closer to "
              "i.i.d.)")
    hot_t = max(curves)
    hot = curves[hot_t][0]
    metrics[f"T{hot_t:g}.mean_beta"] = float(np.mean(hot.beta)) if hot.beta else float("nan")
    metrics[f"T{hot_t:g}.acceptance_minus_beta"] = abs(hot.acceptance_rate - metrics[f"T{hot_t:g}.mean_beta"])
    findings = []
    if errors:
        findings.append(Finding.at_most(
            "Leviathan et al.'s expected speedup, with the measured acceptance rate, cost ratio and "
            "verification cost, predicts the measured speedups of the model drafts (mean relative "
            "error)", "formula_mean_rel_error", metrics["formula_mean_rel_error"], cfg.formula_tol))
    return ItemResult(
        item=ITEM["acceptance"],
        metrics=metrics,
        series=series,
        figures={"acceptance_speedup.png": fig},
        texts={"sweep.txt": table + "\n"},
        findings=findings + [
            Finding.at_most(f"at T={hot_t:g} the measured acceptance rate is the expected one, "
                            f"the mean of beta = sum_x min(p, q) over judged positions (|difference| "
                            f"within {cfg.checks.acceptance_max_sigmas:g} binomial standard errors)",
                            f"T{hot_t:g}.acceptance_minus_beta",
                            abs(hot.acceptance_rate - metrics[f"T{hot_t:g}.mean_beta"]),
                            cfg.checks.acceptance_max_sigmas
                            * math.sqrt(0.25 / max(len(hot.beta), 1)), kind=INVARIANT),
        ],
    )


def draft_size_item(rows: Sequence[SweepRow], drafts: Sequence[Draft], target_val_loss: float,
                    costs: dict[str, float], checks: SpeculativeChecks) -> ItemResult:
    """speculative-decoding/3: per draft: val loss, acceptance, cost ratio, best speedup.

    The model drafts (bigram, mini-formers) are the size ablation: quality -> acceptance, size
    -> cost. The lookup drafts (context, table, context-table) have no distribution (no val
    loss, no KL) and next to no cost; they are listed with their table sizes.

    A draft's acceptance rate here is pooled over all its gammas (accepted / judged over every
    call of the sweep): deterministic, unlike the rate at the fastest gamma, which timing noise
    picks.
    """
    from matplotlib.figure import Figure

    metrics: dict[str, float] = {"target.val_loss": target_val_loss}
    per = []
    acc: dict[str, float] = {}  # draft -> acceptance rate pooled over its gammas
    for d in drafts:
        mine = [r for r in rows if r.draft == d.name]
        best = _best(mine)
        per.append((d, best))
        pooled = SpecStats(max(r.gamma for r in mine))
        for r in mine:
            pooled.merge(r.stats)
        acc[d.name] = pooled.acceptance_rate
        metrics.update({f"{d.name}.val_loss": d.val_loss, f"{d.name}.params": d.params,
                        f"{d.name}.kl_to_target": d.kl_to_target,
                        f"{d.name}.acceptance_rate": acc[d.name],
                        f"{d.name}.best_gamma_acceptance_rate": best.stats.acceptance_rate,
                        f"{d.name}.cost_ratio": best.c, f"{d.name}.best_speedup": best.speedup,
                        f"{d.name}.best_gamma": best.gamma})
    d_best, r_best = max(per, key=lambda x: x[1].speedup)
    metrics["best_draft_speedup"] = r_best.speedup
    metrics["best_draft_cost_ratio"] = r_best.c
    models = [(d, r) for d, r in per if not d.lookup]
    neural = [(d, r) for d, r in models if d.name != "bigram"]
    # quality -> acceptance: every model draft (bigram included); size -> cost: the mini-formers
    # (ordinal ranks: tied values are ranked in the order np.argsort leaves them, as always here)
    metrics["spearman_quality_acceptance"] = spearman([-d.val_loss for d, _ in models],
                                                      [acc[d.name] for d, _ in models], ties="ordinal")
    metrics["spearman_agreement_acceptance"] = spearman([-d.kl_to_target for d, _ in models],
                                                        [acc[d.name] for d, _ in models], ties="ordinal")
    metrics["spearman_size_cost"] = spearman([d.params for d, _ in neural], [r.c for _, r in neural],
                                             ties="ordinal")

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    xs = [r.c for _, r in per]
    ax1.plot(xs, [r.speedup for _, r in per], "o")
    for d, r in per:
        ax1.annotate(f"{d.name} (g={r.gamma})", (r.c, r.speedup), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax1.axhline(1.0, c="grey", lw=0.8)
    ax1.set(xlabel="draft cost / target cost (c)", ylabel="best speedup over gamma",
            title="Speedup vs draft size (cost)")
    ax2.plot([d.val_loss for d, _ in models], [acc[d.name] for d, _ in models], "o")
    for d, _ in models:
        ax2.annotate(d.name, (d.val_loss, acc[d.name]), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax2.axvline(target_val_loss, c="grey", ls="--", lw=0.8, label="target val loss")
    ax2.set(xlabel="draft val loss (nats/token)", ylabel="greedy acceptance rate a",
            title="Draft quality vs acceptance")
    ax2.legend(fontsize=8)
    ax3.plot([d.kl_to_target for d, _ in models], [acc[d.name] for d, _ in models], "o")
    for d, _ in models:
        ax3.annotate(d.name, (d.kl_to_target, acc[d.name]), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax3.set(xlabel="KL(target || draft) on val (nats/token)", ylabel="greedy acceptance rate a",
            title="Agreement with the target vs acceptance")
    table = ("draft          params/entries  val_loss  KL(p||q)  a      c       best_g  speedup  "
             "train_s\n" + "\n".join(
                 f"{d.name:14s} {d.params:14d}  {d.val_loss:7.3f}  {d.kl_to_target:8.3f}  "
                 f"{acc[d.name]:.3f}  {r.c:.4f}  "
                 f"{r.gamma:6d}  {r.speedup:7.2f}  {d.train_s:7.1f}" for d, r in per))
    table += "\n(a: greedy acceptance pooled over every gamma of the sweep)"
    table += (f"\ntarget val loss {target_val_loss:.3f}; target forward {costs['target.1'] * 1e3:.3f} ms"
              f"\nbest trade-off: {d_best.name} at gamma {r_best.gamma}: {r_best.speedup:.2f}x\n")
    return ItemResult(
        item=ITEM["size"],
        metrics=metrics,
        figures={"draft_size.png": fig},
        texts={"draft_size.txt": table},
        findings=[
            Finding.at_least("a better model draft (lower val loss) is accepted more often "
                             "(Spearman rank correlation of -val loss with acceptance)",
                             "spearman_quality_acceptance", metrics["spearman_quality_acceptance"],
                             checks.min_quality_acceptance_spearman),
            Finding.at_least("a model draft closer to the target (lower KL(p_target || q_draft) on val) "
                             "is accepted more often (Spearman rank correlation of -KL with "
                             "acceptance)", "spearman_agreement_acceptance",
                             metrics["spearman_agreement_acceptance"],
                             checks.min_agreement_acceptance_spearman),
            Finding.at_least("the best draft/gamma pair decodes faster than the target alone",
                             "best_draft_speedup", r_best.speedup, checks.min_best_draft_speedup),
        ],
    )


def _exactness_on_some_prompt(target: MiniFormer, drafter: Drafter, prompts: Sequence[list[int]],
                              cfg: SpeculativeConfig) -> dict[str, float]:
    """:func:`exactness_check` after the first prompt the drafter proposes something for."""
    for p in prompts:
        drafter.start(p)
        if drafter.propose(p, 1, cfg.exact_temperature, torch.Generator().manual_seed(cfg.seed))[0]:
            return exactness_check(target, drafter, p, cfg.exact_temperature, cfg.exact_samples,
                                   cfg.exact_bins, cfg.seed, cfg.checks.tv_false_alarm)
    raise ValueError("the drafter proposes nothing after any prompt: no exactness check")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        target: the trained model to speed up.
        train: the train token stream (the drafts are trained on it).
        val: the val token stream (prompts, validation losses).
    """

    target: MiniFormer
    train: np.ndarray
    val: np.ndarray


def run(cfg: SpeculativeConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the drafts, run every measurement and return the three items' results."""
    target, train, val = inputs.target, inputs.train, inputs.val
    need = cfg.prompt_tokens * cfg.n_prompts
    if len(val) < need:
        raise ValueError(f"the val stream has {len(val)} tokens, fewer than n_prompts x "
                         f"prompt_tokens = {need}")
    with torch_threads(cfg.num_threads):
        target.eval()
        drafts = train_drafts(target, train, val, cfg) + lookup_drafts(target, train, cfg)
        seq_len = min(cfg.seq_len, target.config.max_seq_len)
        val_data = TokenBatcher(torch.as_tensor(np.asarray(val, dtype=np.int64)), seq_len,
                                mode="sequential")
        target_loss = mean_loss(target, val_data, cfg.train.batch_size, cfg.val_batches)
        step = (len(val) - cfg.prompt_tokens) // cfg.n_prompts
        prompts = [np.asarray(val[i * step: i * step + cfg.prompt_tokens]).tolist()
                   for i in range(cfg.n_prompts)]
        # the decoders' transposed weight copies are made once for all timed runs, as a server
        # holding the model would (each call would otherwise pay 2-3 ms making them, both sides)
        with decode_layout(target, *(d.model for d in drafts if d.model is not None)):
            rows, costs = greedy_sweep(target, drafts, prompts, cfg)
            best_draft = next(d for d in drafts if d.name == _best(rows).draft)
            curves = temperature_curves(target, best_draft.drafter, prompts, cfg)
        # the rule must be exact for a sampled q (a mini-former, else the bigram) and for a
        # one-hot q (the last lookup draft: context-table when both are on)
        models = [d for d in drafts if not d.lookup]
        checked = [next((d for d in models if d.name != "bigram"), models[0])] if models else []
        checked += [d for d in drafts if d.lookup][-1:]
        exact = {d.name: _exactness_on_some_prompt(target, d.drafter, prompts, cfg) for d in checked}
    return [
        correctness_item(rows, exact, cfg, len(prompts)),
        acceptance_item(rows, curves, best_draft.name, cfg),
        draft_size_item(rows, drafts, target_loss, costs, cfg.checks),
    ]
