"""The curriculum experiments of section "Speculative Decoding" (items speculative-decoding/1-3).

The target is the pipeline's base LM (``models/base``). Two families of drafts:

* model drafts, trained here on the same train token stream at several sizes
  (:func:`train_drafts`): mini-formers of 1-4 layers with the target's architecture but narrower,
  plus a count-based bigram table (:func:`bigram_draft`: no training, almost no compute) as the
  smallest point: the draft-size ablation;
* model-free lookup drafts (:func:`lookup_drafts`, see :mod:`nlpcurriculum.decoding.drafters`):
  ``context`` (prompt lookup: copy what followed the last earlier occurrence of the suffix),
  ``table`` (the target's arg-max next tokens distilled into an n-gram table,
  :func:`distilled_tables`) and ``context-table`` (the copy where there is a match, the table
  where there is none). Deterministic (one-hot ``q``), nearly free per token, so they are swept
  over longer blocks (``lookup_gammas``).

Prompts are windows of the val stream, in two disjoint sets (:func:`prompt_sets`): the *tuning*
prompts (first half of the stream) choose each draft's gamma, the fastest draft of each family
(model drafts; lookup drafts) and the table size (:func:`choose_table_size`); the *held-out*
prompts (second half), with a fresh seed (``heldout_seed``) for sampling, the exactness check and
a table rebuilt at the chosen size, carry the findings: per family and per temperature (greedy
and sampling), the tuned setting is timed against plain KV-cached decoding on every held-out
prompt over interleaved rounds, and the finding is the median per-prompt speedup with its
robust standard error (:meth:`~nlpcurriculum.results.Finding.timing_ratio`). Clock readings are
the items' ``timings`` (``metrics/timings/speculative.json``); acceptance statistics, losses and
choices made without a clock are the deterministic metrics.

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
  with the highest speedup (the lookup drafts are listed too, with their table sizes). The
  quality -> acceptance findings are over training seeds: the mini-formers are trained again on
  ``extra_seeds`` (untimed; only the first seed's drafts are tuned and timed).

Tuning timings are best-of-``repeats`` with one torch thread; the machine is shared, so they
move from run to run. The baseline is the target's own KV-cached greedy decoding
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
from nlpcurriculum.metrics.timing import best_of, interleaved_rounds, torch_threads
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
    "distilled_tables",
    "heldout_speed",
    "heldout_stats",
    "prompt_sets",
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
            over the model drafts, its mean over the training seeds (by 2 standard errors).
        min_agreement_acceptance_spearman: item 3: the same for -KL(target || draft).
        min_best_draft_speedup: item 3: wall-clock speedup of the best draft/gamma pair on the
            tuning prompts (a timed finding).
        min_heldout_speedup_model: item 1: median over held-out prompts of the tuned model
            draft's speedup, at every ``heldout_temperatures`` entry.
        min_heldout_speedup_lookup: item 1: the same for the tuned lookup draft.
    """

    max_greedy_runs_different: float = 0.0
    tv_false_alarm: float = 1e-3
    acceptance_max_sigmas: float = 3.0
    min_quality_acceptance_spearman: float = 0.5
    min_agreement_acceptance_spearman: float = 0.5
    min_best_draft_speedup: float = 1.05
    min_heldout_speedup_model: float = 1.05
    min_heldout_speedup_lookup: float = 1.05


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
        table_generations_grid: the table sizes tried: the target's greedy continuations
            (``new_tokens`` ids each) of this many train-stream windows (``prompt_tokens`` each,
            seeded random starts) also vote in the table: the target distilled on its own
            outputs as well as on the corpus (on-policy data, as in DistillSpec); 0 = the corpus
            only. The size is chosen on the tuning prompts (greedy tokens per target call at the
            longest lookup gamma); the held-out prompts are decoded with a table of that size
            built again from windows drawn with ``heldout_seed``.
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
        prompt_tokens: prompt length; prompts are val-stream windows.
        tuning_prompts: prompts spread evenly over the first half of the val stream: gamma, the
            draft of each family and the table size are chosen on them.
        heldout_prompts: prompts spread evenly over the second half: the findings are measured
            on them, with ``heldout_seed``.
        new_tokens: ids generated per prompt.
        gammas: draft lengths swept (ascending).
        temperatures: item 2: temperatures of the acceptance curves (0 = greedy).
        curve_gamma: item 2: the draft length of those curves.
        exact_samples: item 1: samples of the rule on the real models' distributions.
        exact_bins: item 1: the distributions are compared on the target's ``exact_bins - 1``
            likeliest tokens plus one bin for the rest.
        exact_temperature: item 1: temperature of that check.
        repeats: timed runs per tuning measurement; the fastest counts.
        heldout_rounds: interleaved rounds (plain decoding / speculative) per held-out prompt;
            a prompt's speedup is the ratio of its median times.
        heldout_temperatures: temperatures of the held-out speed findings (0 = greedy).
        cost_calls: forward passes per cost measurement.
        min_speedup: item 1: the bound its finding checks the best wall-clock speedup against.
        formula_tol: item 2: max mean relative error of the formula (with the measured
            verification cost) against the measured speedups.
        seed: seeds draft initialisation, the table's windows and sampling on the tuning prompts.
        extra_seeds: item 3: every mini-former draft is trained again with each of these seeds
            (initialisation and data order), and its val loss, KL and held-out acceptance are
            measured again: the draft-size findings are means over ``seed`` and these. The
            drafts of ``seed`` alone are timed and tuned.
        heldout_seed: a fresh seed for the held-out prompts: sampling, the exactness check and
            the held-out table's windows.
        num_threads: torch threads of everything timed (1: the least noisy timings on a shared
            machine).
        train_threads: torch threads of the untimed work: draft training and table building.
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
    table_generations_grid: list[int] = field(default_factory=lambda: [0])
    table_min_confidence: float = 0.0
    lookup_gammas: list[int] = field(default_factory=lambda: [4, 8])
    train: TrainerConfig
    distill: float = 0.0
    seq_len: int = 128
    val_batches: int = 8
    prompt_tokens: int = 16
    tuning_prompts: int = 4
    heldout_prompts: int = 8
    new_tokens: int = 64
    gammas: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    curve_gamma: int = 4
    exact_samples: int = 20000
    exact_bins: int = 16
    exact_temperature: float = 1.0
    repeats: int = 1
    heldout_rounds: int = 3
    heldout_temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    cost_calls: int = 50
    min_speedup: float = 1.8
    formula_tol: float = 0.35
    seed: int = 0
    extra_seeds: list[int] = field(default_factory=list)
    heldout_seed: int = 1
    num_threads: int = 1
    train_threads: int = 1
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
        for name in ("seq_len", "val_batches", "prompt_tokens", "tuning_prompts", "heldout_prompts",
                     "new_tokens", "curve_gamma", "exact_samples", "repeats", "cost_calls",
                     "num_threads", "train_threads"):
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
        grid = self.table_generations_grid
        if self.table_order < 1 or self.table_tokens < 0:
            raise ValueError(f"need table_order >= 1, table_tokens >= 0; got "
                             f"{self.table_order}, {self.table_tokens}")
        if not grid or any(g < 0 for g in grid) or grid != sorted(set(grid)):
            raise ValueError(f"table_generations_grid must be ascending distinct ints >= 0, got {grid}")
        if self.heldout_rounds < 2:
            raise ValueError(f"heldout_rounds must be >= 2 (a median time per prompt), got "
                             f"{self.heldout_rounds}")
        if not self.heldout_temperatures or any(t < 0 for t in self.heldout_temperatures):
            raise ValueError(f"heldout_temperatures must be values >= 0, got {self.heldout_temperatures}")
        if self.heldout_seed == self.seed:
            raise ValueError(f"heldout_seed must differ from seed ({self.seed}): the held-out "
                             "measurements use fresh seeds")
        if (len(set(self.extra_seeds)) != len(self.extra_seeds)
                or {self.seed, self.heldout_seed} & set(self.extra_seeds)):
            raise ValueError(f"extra_seeds must be distinct and differ from seed ({self.seed}) and "
                             f"heldout_seed ({self.heldout_seed}), got {self.extra_seeds}")
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


def reseeded(cfg: SpeculativeConfig, seed: int) -> SpeculativeConfig:
    """``cfg`` for training the mini-former drafts again with ``seed`` (initialisation, data
    order, trainer); without the bigram draft, which is counted, not trained: every seed's."""
    return dataclasses.replace(cfg, seed=seed, extra_seeds=[], bigram=False,
                               train=dataclasses.replace(cfg.train, seed=seed))


def distilled_tables(target: MiniFormer, train: np.ndarray, cfg: SpeculativeConfig,
                     seed: int, sizes: Sequence[int] | None = None) -> dict[int, NgramTableDrafter]:
    """The target distilled into n-gram tables (see :class:`NgramTableDrafter`), one per size.

    Votes: the target's teacher-forced arg-max at every position of the first ``table_tokens``
    train tokens (windows of the target's context), plus the target's own greedy continuations
    of ``size`` train windows drawn with ``seed`` (batched, one KV cache): each generated token
    votes under the keys that precede it. The votes accumulate, so every size of ``sizes``
    (default ``cfg.table_generations_grid``) is a snapshot of one run: the largest costs what
    all of them cost.
    """
    sizes = sorted(cfg.table_generations_grid if sizes is None else sizes)
    seq_len = target.config.max_seq_len
    stream = np.asarray(train if cfg.table_tokens == 0 else train[: cfg.table_tokens])
    nxt = teacher_forced_argmax_stream(target, stream, seq_len)  # (T',)
    counts = count_votes(stream[: len(nxt)], nxt, cfg.table_order)
    V = target.config.vocab_size
    tables: dict[int, NgramTableDrafter] = {}
    P, n = cfg.prompt_tokens, min(cfg.new_tokens, seq_len - cfg.prompt_tokens)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(train) - P, sizes[-1])
    done = 0
    for size in sizes:
        windows = [train[s: s + P] for s in starts[done:size]]  # the windows new at this size
        prompts = torch.as_tensor(np.stack(windows).astype(np.int64)) if windows else None  # (N, P)
        for i in range(0, 0 if prompts is None else len(prompts), 256):
            rows = prompts[i: i + 256]  # (b, P)
            seqs = torch.cat([rows, greedy_batched(target, rows, n).tokens], dim=1)  # (b, P + n)
            for row in seqs.tolist():
                # position j votes for row[j + 1]; the prompt's own positions do not vote
                count_votes(row[:-1], row[1:], cfg.table_order, counts, first=P - 1)
        done = size
        tables[size] = NgramTableDrafter.from_votes(counts, cfg.table_order, cfg.table_min_confidence, V)
    return tables


def lookup_drafts(cfg: SpeculativeConfig, table: NgramTableDrafter | None,
                  build_s: float = 0.0) -> list[Draft]:
    """The model-free drafts: ``context`` (prompt lookup), ``table`` (distilled n-grams) and
    their chain ``context-table``, as enabled (``table`` is None when ``table_draft`` is off)."""
    drafts = []
    nan = float("nan")
    context = ContextDrafter(cfg.max_ngram, cfg.min_ngram)
    if cfg.context_draft:
        drafts.append(Draft("context", context, None, 0, nan, 0.0))
    if table is not None:
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
                       cfg: SpeculativeConfig, seed: int) -> dict[float, tuple[SpecStats, float]]:
    """Per temperature: the acceptance stats of speculative sampling (``seed``: deterministic)
    and its speedup over plain sampling with the KV cache (best of ``repeats``)."""
    out = {}
    g, n = cfg.curve_gamma, cfg.new_tokens
    for t in cfg.temperatures:
        holder: list[SpecStats] = []

        def spec(t: float = t) -> None:
            gen = torch.Generator().manual_seed(seed)
            stats = SpecStats(g)
            for p in prompts:
                s = SpecStats(g)
                speculative_generate(target, draft, p, n, g, t, gen, stats=s)
                stats.merge(s)
            holder.append(stats)

        def plain(t: float = t) -> None:
            gen = torch.Generator().manual_seed(seed)
            for p in prompts:
                autoregressive(target, p, n, t, gen)

        spec_s = base_s = float("inf")
        for _ in range(cfg.repeats):  # alternate, as in the greedy sweep
            spec_s = min(spec_s, best_of(spec, 1)[1])
            base_s = min(base_s, best_of(plain, 1)[1])
        out[t] = (holder[-1], base_s / spec_s)
    return out


@dataclass
class StatsRow:
    """One (draft, gamma) greedy run over the held-out prompts, untimed: what is deterministic."""

    draft: str
    gamma: int
    identical: int  # prompts whose output equals the target's greedy output
    stats: SpecStats
    lookup: bool = False


def heldout_stats(target: MiniFormer, drafts: Sequence[Draft], prompts: Sequence[list[int]],
                  cfg: SpeculativeConfig) -> list[StatsRow]:
    """Greedy speculative decoding of every draft and gamma on ``prompts``, compared with the
    target's greedy output; acceptance statistics only (no clock)."""
    n = cfg.new_tokens
    reference = [greedy_cached(target, p, n) for p in prompts]
    rows = []
    for d in drafts:
        for g in (cfg.lookup_gammas if d.lookup else cfg.gammas):
            stats, same = SpecStats(g), 0
            for p, ref in zip(prompts, reference):
                s = SpecStats(g)
                same += speculative_generate(target, d.drafter, p, n, g, stats=s) == ref
                stats.merge(s)
            rows.append(StatsRow(d.name, g, same, stats, d.lookup))
    return rows


def pooled_acceptance(rows: Sequence[StatsRow], draft: str) -> float:
    """``draft``'s greedy acceptance rate over all its rows (every gamma): accepted / judged."""
    mine = [r for r in rows if r.draft == draft]
    pooled = SpecStats(max(r.gamma for r in mine))
    for r in mine:
        pooled.merge(r.stats)
    return pooled.acceptance_rate


@dataclass(frozen=True)
class DraftSeed:
    """The model drafts of one training seed, by name: val loss, KL(target || draft) on val and
    greedy acceptance on the held-out prompts (pooled over gammas). Item 3's replicates."""

    seed: int
    val_loss: dict[str, float]
    kl_to_target: dict[str, float]
    acceptance: dict[str, float]

    @classmethod
    def measure(cls, seed: int, drafts: Sequence[Draft], rows: Sequence[StatsRow]) -> "DraftSeed":
        """From the model drafts among ``drafts`` and their held-out ``rows``."""
        models = [d for d in drafts if not d.lookup]
        return cls(seed, {d.name: d.val_loss for d in models},
                   {d.name: d.kl_to_target for d in models},
                   {d.name: pooled_acceptance(rows, d.name) for d in models})

    def spearman(self, quality: dict[str, float]) -> float:
        """Rank correlation of ``quality`` (higher is better) with acceptance over the drafts
        (ordinal ranks: ties ranked in the order np.argsort leaves them, as always here)."""
        names = list(self.acceptance)
        return spearman([quality[k] for k in names], [self.acceptance[k] for k in names],
                        ties="ordinal")

    @property
    def quality_spearman(self) -> float:
        """Lower val loss -> higher acceptance."""
        return self.spearman({k: -v for k, v in self.val_loss.items()})

    @property
    def agreement_spearman(self) -> float:
        """Lower KL from the target -> higher acceptance."""
        return self.spearman({k: -v for k, v in self.kl_to_target.items()})


@dataclass(frozen=True)
class HeldoutSpeed:
    """A tuned (draft, gamma) timed on every held-out prompt at one temperature.

    ``baseline_s[i]`` and ``speculative_s[i]`` are prompt ``i``'s median seconds over
    interleaved rounds of plain KV-cached decoding and speculative decoding.
    """

    family: str  # "model" or "lookup"
    draft: str
    gamma: int
    temperature: float
    baseline_s: list[float]
    speculative_s: list[float]

    @property
    def speedups(self) -> list[float]:
        return [b / s for b, s in zip(self.baseline_s, self.speculative_s)]


def heldout_speed(target: MiniFormer, draft: Draft, family: str, gamma: int,
                  prompts: Sequence[list[int]], temperature: float, cfg: SpeculativeConfig) -> HeldoutSpeed:
    """Per held-out prompt: ``heldout_rounds`` interleaved rounds of plain decoding (greedy:
    :func:`greedy_cached`; sampling: :func:`autoregressive`) and speculative decoding with
    ``draft`` at ``gamma``; each arm draws from its own generator seeded with ``heldout_seed``
    and the prompt's index."""
    n, base_s, spec_s = cfg.new_tokens, [], []
    for i, p in enumerate(prompts):
        seed = cfg.heldout_seed * 100_003 + i

        def plain(p: list[int] = p, seed: int = seed) -> None:
            if temperature == 0:
                greedy_cached(target, p, n)
            else:
                autoregressive(target, p, n, temperature, torch.Generator().manual_seed(seed))

        def spec(p: list[int] = p, seed: int = seed) -> None:
            speculative_generate(target, draft.drafter, p, n, gamma, temperature,
                                 torch.Generator().manual_seed(seed))

        times = interleaved_rounds({"plain": plain, "speculative": spec}, cfg.heldout_rounds)
        base_s.append(float(np.median(times["plain"])))
        spec_s.append(float(np.median(times["speculative"])))
    return HeldoutSpeed(family, draft.name, gamma, temperature, base_s, spec_s)


def tuned_choice(rows: Sequence[SweepRow], lookup: bool) -> SweepRow | None:
    """The fastest (draft, gamma) of one family on the tuning prompts (None if it has none)."""
    mine = [r for r in rows if r.lookup == lookup]
    return _best(mine) if mine else None


def choose_table_size(target: MiniFormer, tables: dict[int, NgramTableDrafter],
                      prompts: Sequence[list[int]], cfg: SpeculativeConfig) -> tuple[int, dict[int, float]]:
    """The table size with the most greedy tokens per target call on ``prompts`` (the tuning
    prompts) at the longest lookup gamma; ties go to the smaller table. Deterministic: the
    table costs next to nothing per lookup whatever its size, so acceptance decides."""
    g = max(cfg.lookup_gammas)
    per_call = {}
    for size, table in tables.items():
        stats = SpecStats(g)
        for p in prompts:
            s = SpecStats(g)
            speculative_generate(target, table, p, cfg.new_tokens, g, stats=s)
            stats.merge(s)
        per_call[size] = stats.tokens_per_call
    best = max(per_call, key=lambda k: (per_call[k], -k))
    return best, per_call


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


def _heldout_findings(speeds: Sequence[HeldoutSpeed], best_family: str | None,
                      cfg: SpeculativeConfig) -> tuple[list[Finding], dict[str, float], str]:
    """The timed findings of the held-out speeds, their timings and a per-prompt table."""
    bounds = {"model": cfg.checks.min_heldout_speedup_model,
              "lookup": cfg.checks.min_heldout_speedup_lookup}
    findings, timings, lines = [], {}, []
    for h in speeds:
        mode = "greedy" if h.temperature == 0 else f"sampling at T={h.temperature:g}"
        key = f"heldout.{h.family}.T{h.temperature:g}"
        f = Finding.timing_ratio(
            f"held out: speculative decoding with the tuned {h.family} draft ({h.draft}, gamma "
            f"{h.gamma}, both chosen on the tuning prompts) beats plain KV-cached {mode} (median over "
            f"{len(h.speedups)} held-out prompts of the per-prompt time ratio, each prompt the median "
            f"of {cfg.heldout_rounds} interleaved rounds; a draft the target always rejects fails)",
            f"{key}.speedup", h.baseline_s, h.speculative_s, bounds[h.family])
        findings.append(f)
        timings |= {f"{key}.speedup": f.value, f"{key}.se": f.se, f"{key}.gamma": h.gamma,
                    f"{key}.min": min(h.speedups), f"{key}.max": max(h.speedups)}
        lines.append(f"{key}: {h.draft} gamma {h.gamma}: median {f.value:.2f}x (SE {f.se:.2f}, n "
                     f"{f.n}); per prompt " + " ".join(f"{x:.2f}" for x in h.speedups))
        if h.family == best_family and h.temperature == 0:
            findings.append(Finding.timing_ratio(
                f"held out: the tuned best setting ({h.draft}, gamma {h.gamma}) speeds up greedy "
                f"decoding >= {cfg.min_speedup:g}x (min_speedup in params; median over held-out "
                "prompts)", "heldout.best.T0.speedup", h.baseline_s, h.speculative_s, cfg.min_speedup))
    return findings, timings, "\n".join(lines)


def correctness_item(tuning: Sequence[SweepRow], heldout: Sequence[StatsRow],
                     exact: dict[str, dict[str, float]], speeds: Sequence[HeldoutSpeed],
                     table_choice: tuple[int, dict[int, float]], cfg: SpeculativeConfig) -> ItemResult:
    """speculative-decoding/1: greedy identity, distribution exactness, held-out speedups.

    ``exact`` maps a draft name to its :func:`exactness_check` result (a model draft and a
    deterministic lookup draft: the rule must be exact for both kinds of ``q``). ``speeds`` are
    the tuned drafts of each family timed on the held-out prompts.
    """
    runs = (len(tuning) * cfg.tuning_prompts) + (len(heldout) * cfg.heldout_prompts)
    mismatches = runs - sum(r.identical for r in tuning) - sum(r.identical for r in heldout)
    chosen, per_call = table_choice
    metrics: dict[str, float] = {"greedy_runs": runs, "greedy_runs_different": mismatches,
                                 "tuning_prompts": cfg.tuning_prompts,
                                 "heldout_prompts": cfg.heldout_prompts}
    if cfg.table_draft:
        metrics["table.generations_chosen"] = chosen
        metrics |= {f"table.tuning_tokens_per_call.g{k}": v for k, v in per_call.items()}
    text = (f"greedy: {runs} runs (drafts x gammas x tuning and held-out prompts), {mismatches} differ "
            f"from the target's greedy output\n")
    if cfg.table_draft:
        text += ("table size (generations voting) chosen on the tuning prompts: " + ", ".join(
            f"{k}: {v:.2f} tokens/call" for k, v in per_call.items()) + f" -> {chosen}; the held-out "
            f"table is rebuilt at that size from windows drawn with seed {cfg.heldout_seed}\n")
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
    best = _best(tuning)
    best_family = "lookup" if best.lookup else "model"
    timed, timings, table = _heldout_findings(speeds, best_family, cfg)
    timings |= {"tuning.best_speedup": best.speedup, "tuning.best_gamma": best.gamma}
    text += (f"tuning prompts: best setting {best.draft}, gamma {best.gamma}: {best.speedup:.2f}x "
             f"(acceptance {best.stats.acceptance_rate:.3f}, {best.stats.tokens_per_call:.2f} tokens "
             f"per target call)\nheld-out prompts (seed {cfg.heldout_seed}), the tuned draft of each "
             f"family:\n{table}\n")
    return ItemResult(item=ITEM["correctness"], metrics=metrics, timings=timings,
                      texts={"correctness.txt": text}, findings=findings + timed)


def acceptance_item(tuning: Sequence[SweepRow], heldout: Sequence[StatsRow],
                    curves: dict[float, tuple[SpecStats, float]], curve_draft: str,
                    cfg: SpeculativeConfig) -> ItemResult:
    """speculative-decoding/2: acceptance by position and temperature (held out), speedup vs
    gamma and the formula (tuning prompts, timed)."""
    from matplotlib.figure import Figure

    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for t, (stats, speed) in curves.items():
        by_pos = stats.acceptance_by_position()
        ax1.plot(range(1, len(by_pos) + 1), by_pos, "o-", label=f"T={t:g} (a={stats.acceptance_rate:.2f})")
        metrics[f"T{t:g}.acceptance_rate"] = stats.acceptance_rate
        metrics[f"T{t:g}.tokens_per_call"] = stats.tokens_per_call
        timings[f"T{t:g}.speedup"] = speed
        for i, (v, r) in enumerate(zip(by_pos, stats.reached())):
            metrics[f"T{t:g}.judged.pos{i + 1}"] = r  # how many calls the rate at i rests on
            if not math.isnan(v):
                metrics[f"T{t:g}.acceptance.pos{i + 1}"] = v
        series[f"acceptance_T{t:g}"] = [(i + 1, v) for i, v in enumerate(by_pos) if not math.isnan(v)]
    ax1.set(xlabel="position in the draft block", ylabel="P(accept | earlier accepted)",
            title=f"Acceptance by position ({curve_draft}, gamma={cfg.curve_gamma}, held out)",
            ylim=(0, 1.02))
    ax1.legend(fontsize=8)
    for r in heldout:  # deterministic: greedy acceptance on the held-out prompts
        metrics[f"{r.draft}.g{r.gamma}.acceptance_rate"] = r.stats.acceptance_rate
        metrics[f"{r.draft}.g{r.gamma}.tokens_per_call"] = r.stats.tokens_per_call
    names = list(dict.fromkeys(r.draft for r in tuning))
    errors, errors_paper, errors_lookup = [], [], []
    for name in names:
        rs = [r for r in tuning if r.draft == name]
        ax2.plot([r.gamma for r in rs], [r.speedup for r in rs], "o-", label=name)
        for r in rs:
            timings[f"{name}.g{r.gamma}.speedup"] = r.speedup
            timings[f"{name}.g{r.gamma}.predicted"] = r.predicted
            # the formula's i.i.d. acceptance fits model drafts; a lookup draft's acceptance is
            # bursty (a copied loop is accepted whole), so its error is reported, not judged
            if r.lookup:
                errors_lookup.append(abs(r.predicted - r.speedup) / r.speedup)
            else:
                errors.append(abs(r.predicted - r.speedup) / r.speedup)
                errors_paper.append(abs(r.predicted_paper - r.speedup) / r.speedup)
        ax3.scatter([r.predicted for r in rs], [r.speedup for r in rs], label=name, s=18)
    ax2.axhline(1.0, c="grey", lw=0.8)
    ax2.axhline(cfg.min_speedup, c="grey", ls="--", lw=0.8, label=f"target {cfg.min_speedup:g}x")
    ax2.set(xlabel="gamma (drafted tokens per call)", ylabel="speedup vs cached greedy",
            title="Greedy speedup vs gamma (tuning prompts)")
    ax2.legend(fontsize=8)
    hi = max([r.speedup for r in tuning] + [r.predicted for r in tuning]) * 1.1
    ax3.plot([0, hi], [0, hi], c="grey", lw=0.8)
    ax3.set(xlabel="formula (measured a, c, verify cost)", ylabel="measured speedup",
            title="Measured vs expected speedup")
    ax3.legend(fontsize=8)
    timings["formula_mean_rel_error"] = float(np.mean(errors)) if errors else float("nan")
    timings["formula_paper_mean_rel_error"] = float(np.mean(errors_paper)) if errors else float("nan")
    if errors_lookup:
        timings["formula_lookup_mean_rel_error"] = float(np.mean(errors_lookup))
    table = ("tuning prompts\ndraft          gamma  a      drafted/call  tok/call  c       verify  "
             "measured  formula  paper-formula\n" + "\n".join(
                 f"{r.draft:14s} {r.gamma:5d}  {r.stats.acceptance_rate:.3f}  {r.mean_proposed:12.2f}  "
                 f"{r.stats.tokens_per_call:8.2f}  {r.c:.4f}  {r.verify_ratio:6.2f}  {r.speedup:8.2f}  "
                 f"{r.predicted:7.2f}  {r.predicted_paper:13.2f}" for r in tuning))
    table += ("\n(formula: Leviathan et al.'s with the measured a, c, mean drafted block and mean "
              "verification cost; judged on the model drafts only, whose acceptance is closer to "
              "i.i.d.)\n\nheld-out prompts (greedy, untimed)\ndraft          gamma  a      tok/call\n"
              + "\n".join(f"{r.draft:14s} {r.gamma:5d}  {r.stats.acceptance_rate:.3f}  "
                          f"{r.stats.tokens_per_call:8.2f}" for r in heldout))
    hot_t = max(curves)
    hot = curves[hot_t][0]
    metrics[f"T{hot_t:g}.mean_beta"] = float(np.mean(hot.beta)) if hot.beta else float("nan")
    metrics[f"T{hot_t:g}.acceptance_minus_beta"] = abs(hot.acceptance_rate - metrics[f"T{hot_t:g}.mean_beta"])
    findings = []
    if errors:
        findings.append(Finding.at_most(
            "Leviathan et al.'s expected speedup, with the measured acceptance rate, cost ratio and "
            "verification cost, predicts the measured speedups of the model drafts on the tuning "
            "prompts (mean relative error)", "formula_mean_rel_error",
            timings["formula_mean_rel_error"], cfg.formula_tol).as_timed())
    return ItemResult(
        item=ITEM["acceptance"],
        metrics=metrics,
        timings=timings,
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


def draft_size_item(tuning: Sequence[SweepRow], heldout: Sequence[StatsRow], drafts: Sequence[Draft],
                    target_val_loss: float, costs: dict[str, float], seeds: Sequence[DraftSeed],
                    checks: SpeculativeChecks) -> ItemResult:
    """speculative-decoding/3: per draft: val loss, acceptance (held out), cost ratio and best
    speedup (tuning prompts, timed).

    The model drafts (bigram, mini-formers) are the size ablation: quality -> acceptance, size
    -> cost. The lookup drafts (context, table, context-table) have no distribution (no val
    loss, no KL) and next to no cost; they are listed with their table sizes.

    A draft's acceptance rate here is pooled over all its gammas on the held-out prompts
    (accepted / judged over every call): deterministic, unlike the rate at the fastest gamma,
    which timing noise picks. The quality -> acceptance findings are rank correlations over the
    model drafts of each training seed (``seeds``: the first is ``drafts``' own), their mean
    checked against the bound: one trained draft's acceptance moves by a few points with its
    seed, which can reorder drafts of similar quality.
    """
    from matplotlib.figure import Figure

    metrics: dict[str, float] = {"target.val_loss": target_val_loss}
    timings: dict[str, float] = {}
    per = []
    acc: dict[str, float] = {}  # draft -> held-out acceptance rate pooled over its gammas
    for d in drafts:
        best = _best([r for r in tuning if r.draft == d.name])
        per.append((d, best))
        acc[d.name] = pooled_acceptance(heldout, d.name)
        metrics.update({f"{d.name}.val_loss": d.val_loss, f"{d.name}.params": d.params,
                        f"{d.name}.kl_to_target": d.kl_to_target,
                        f"{d.name}.acceptance_rate": acc[d.name]})
        timings.update({f"{d.name}.best_gamma_acceptance_rate": best.stats.acceptance_rate,
                        f"{d.name}.cost_ratio": best.c, f"{d.name}.best_speedup": best.speedup,
                        f"{d.name}.best_gamma": best.gamma})
    d_best, r_best = max(per, key=lambda x: x[1].speedup)
    timings["best_draft_speedup"] = r_best.speedup
    timings["best_draft_cost_ratio"] = r_best.c
    models = [(d, r) for d, r in per if not d.lookup]
    neural = [(d, r) for d, r in models if d.name != "bigram"]
    # quality -> acceptance: every model draft (bigram included), per training seed; size ->
    # cost: the mini-formers (ordinal ranks: tied values are ranked in the order np.argsort
    # leaves them, as always here)
    quality = [s.quality_spearman for s in seeds]
    agreement = [s.agreement_spearman for s in seeds]
    for s, q, a in zip(seeds, quality, agreement):
        metrics[f"seed{s.seed}.spearman_quality_acceptance"] = q
        metrics[f"seed{s.seed}.spearman_agreement_acceptance"] = a
    for s in seeds[1:]:
        for name in s.acceptance:
            if name != "bigram":  # counted, not trained: the same on every seed
                metrics.update({f"seed{s.seed}.{name}.val_loss": s.val_loss[name],
                                f"seed{s.seed}.{name}.kl_to_target": s.kl_to_target[name],
                                f"seed{s.seed}.{name}.acceptance_rate": s.acceptance[name]})
    metrics["spearman_quality_acceptance"] = float(np.mean(quality))  # the means the findings check
    metrics["spearman_agreement_acceptance"] = float(np.mean(agreement))
    timings["spearman_size_cost"] = spearman([d.params for d, _ in neural], [r.c for _, r in neural],
                                             ties="ordinal")

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    xs = [r.c for _, r in per]
    ax1.plot(xs, [r.speedup for _, r in per], "o")
    for d, r in per:
        ax1.annotate(f"{d.name} (g={r.gamma})", (r.c, r.speedup), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax1.axhline(1.0, c="grey", lw=0.8)
    ax1.set(xlabel="draft cost / target cost (c)", ylabel="best speedup over gamma (tuning)",
            title="Speedup vs draft size (cost)")
    for s in seeds[1:]:  # the other seeds' drafts, faint
        ax2.plot(list(s.val_loss.values()), list(s.acceptance.values()), "o", c="grey", alpha=0.4)
        ax3.plot(list(s.kl_to_target.values()), list(s.acceptance.values()), "o", c="grey", alpha=0.4)
    ax2.plot([d.val_loss for d, _ in models], [acc[d.name] for d, _ in models], "o")
    for d, _ in models:
        ax2.annotate(d.name, (d.val_loss, acc[d.name]), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax2.axvline(target_val_loss, c="grey", ls="--", lw=0.8, label="target val loss")
    ax2.set(xlabel="draft val loss (nats/token)", ylabel="greedy acceptance rate a (held out)",
            title="Draft quality vs acceptance")
    ax2.legend(fontsize=8)
    ax3.plot([d.kl_to_target for d, _ in models], [acc[d.name] for d, _ in models], "o")
    for d, _ in models:
        ax3.annotate(d.name, (d.kl_to_target, acc[d.name]), fontsize=8, xytext=(3, 3),
                     textcoords="offset points")
    ax3.set(xlabel="KL(target || draft) on val (nats/token)", ylabel="greedy acceptance rate a (held out)",
            title="Agreement with the target vs acceptance")
    table = ("draft          params/entries  val_loss  KL(p||q)  a      c       best_g  speedup  "
             "train_s\n" + "\n".join(
                 f"{d.name:14s} {d.params:14d}  {d.val_loss:7.3f}  {d.kl_to_target:8.3f}  "
                 f"{acc[d.name]:.3f}  {r.c:.4f}  "
                 f"{r.gamma:6d}  {r.speedup:7.2f}  {d.train_s:7.1f}" for d, r in per))
    table += ("\n(a: greedy acceptance on the held-out prompts pooled over every gamma; c, best_g, "
              "speedup: tuning prompts)")
    if len(seeds) > 1:
        table += f"\nover the training seeds {[s.seed for s in seeds]} (mean, sd):\n" + "\n".join(
            f"{name:14s} val_loss {np.mean(v):.3f} ({np.std(v, ddof=1):.3f})  "
            f"KL {np.mean(k):.3f} ({np.std(k, ddof=1):.3f})  a {np.mean(a):.3f} ({np.std(a, ddof=1):.3f})"
            for name in seeds[0].acceptance if name != "bigram"
            for v, k, a in [([s.val_loss[name] for s in seeds], [s.kl_to_target[name] for s in seeds],
                             [s.acceptance[name] for s in seeds])])
        table += ("\nSpearman(-val_loss, a) per seed: " + ", ".join(f"{q:.2f}" for q in quality)
                  + "; Spearman(-KL, a): " + ", ".join(f"{a:.2f}" for a in agreement))
    table += (f"\ntarget val loss {target_val_loss:.3f}; target forward {costs['target.1'] * 1e3:.3f} ms"
              f"\nbest trade-off: {d_best.name} at gamma {r_best.gamma}: {r_best.speedup:.2f}x\n")
    return ItemResult(
        item=ITEM["size"],
        metrics=metrics,
        timings=timings,
        figures={"draft_size.png": fig},
        texts={"draft_size.txt": table},
        findings=[
            Finding.compare("a better model draft (lower val loss) is accepted more often on the "
                            "held-out prompts (Spearman rank correlation of -val loss with "
                            f"acceptance over the model drafts, per training seed, n = {len(seeds)})",
                            "spearman_quality_acceptance", quality,
                            margin=checks.min_quality_acceptance_spearman),
            Finding.compare("a model draft closer to the target (lower KL(p_target || q_draft) on "
                            "val) is accepted more often on the held-out prompts (Spearman rank "
                            "correlation of -KL with acceptance over the model drafts, per training "
                            f"seed, n = {len(seeds)})", "spearman_agreement_acceptance", agreement,
                            margin=checks.min_agreement_acceptance_spearman),
            Finding.at_least(f"the best draft/gamma pair decodes >= {checks.min_best_draft_speedup:g}x "
                             "faster than the target alone on the tuning prompts (a tie fails)",
                             "best_draft_speedup", r_best.speedup,
                             checks.min_best_draft_speedup).as_timed(),
        ],
    )


def _exactness_on_some_prompt(target: MiniFormer, drafter: Drafter, prompts: Sequence[list[int]],
                              cfg: SpeculativeConfig) -> dict[str, float]:
    """:func:`exactness_check` after the first prompt the drafter proposes something for."""
    for p in prompts:
        drafter.start(p)
        if drafter.propose(p, 1, cfg.exact_temperature, torch.Generator().manual_seed(cfg.heldout_seed))[0]:
            return exactness_check(target, drafter, p, cfg.exact_temperature, cfg.exact_samples,
                                   cfg.exact_bins, cfg.heldout_seed, cfg.checks.tv_false_alarm)
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


def prompt_sets(val: np.ndarray, cfg: SpeculativeConfig) -> tuple[list[list[int]], list[list[int]]]:
    """``(tuning, held-out)`` prompts: windows of ``prompt_tokens`` spread evenly over the first
    and the second half of the val stream (disjoint)."""
    half = len(val) // 2

    def spread(part: np.ndarray, n: int) -> list[list[int]]:
        step = (len(part) - cfg.prompt_tokens) // n
        return [np.asarray(part[i * step: i * step + cfg.prompt_tokens]).tolist() for i in range(n)]

    return spread(val[:half], cfg.tuning_prompts), spread(val[half:], cfg.heldout_prompts)


def run(cfg: SpeculativeConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the drafts, tune on the tuning prompts, measure on the held-out ones; three items."""
    target, train, val = inputs.target, inputs.train, inputs.val
    need = 2 * cfg.prompt_tokens * max(cfg.tuning_prompts, cfg.heldout_prompts)
    if len(val) < need:
        raise ValueError(f"the val stream has {len(val)} tokens, fewer than 2 x prompt_tokens x "
                         f"max(tuning_prompts, heldout_prompts) = {need}")
    tuning_prompts, heldout_prompts = prompt_sets(val, cfg)
    target.eval()
    build_s = 0.0
    with torch_threads(cfg.train_threads):  # untimed: draft training, the table's votes
        models = train_drafts(target, train, val, cfg)
        # item 3's replicates: the mini-formers again on other seeds (the bigram is every seed's)
        replicas = {s: train_drafts(target, train, val, reseeded(cfg, s))
                    for s in (cfg.extra_seeds if cfg.draft_layers else [])}
        if cfg.table_draft:
            start = time.perf_counter()
            tables = distilled_tables(target, train, cfg, cfg.seed)
            build_s = time.perf_counter() - start
    with torch_threads(cfg.num_threads):
        table_choice: tuple[int, dict[int, float]] = (0, {})
        tuning_table = heldout_table = None
        if cfg.table_draft:
            table_choice = choose_table_size(target, tables, tuning_prompts, cfg)
            tuning_table = tables[table_choice[0]]
            # fresh seed for the held-out measurement: the same size, other generated windows
            with torch_threads(cfg.train_threads):
                heldout_table = distilled_tables(target, train, cfg, cfg.heldout_seed,
                                                 [table_choice[0]])[table_choice[0]]
        tuning_drafts = models + lookup_drafts(cfg, tuning_table, build_s)
        heldout_drafts = models + lookup_drafts(cfg, heldout_table, build_s)
        seq_len = min(cfg.seq_len, target.config.max_seq_len)
        val_data = TokenBatcher(torch.as_tensor(np.asarray(val, dtype=np.int64)), seq_len,
                                mode="sequential")
        target_loss = mean_loss(target, val_data, cfg.train.batch_size, cfg.val_batches)
        # the decoders' transposed weight copies are made once for all timed runs, as a server
        # holding the model would (each call would otherwise pay 2-3 ms making them, both sides)
        replica_models = [d.model for r in replicas.values() for d in r]
        with decode_layout(target, *(d.model for d in models), *replica_models):
            rows, costs = greedy_sweep(target, tuning_drafts, tuning_prompts, cfg)
            held = heldout_stats(target, heldout_drafts, heldout_prompts, cfg)
            shared = [d for d in models if d.name == "bigram"]  # the same on every seed
            seeds = [DraftSeed.measure(cfg.seed, models, held)] + [
                DraftSeed.measure(s, shared + r, [row for row in held if row.draft == "bigram"]
                                  + heldout_stats(target, r, heldout_prompts, cfg))
                for s, r in replicas.items()]
            # the acceptance curves' draft: the model draft accepted most often on the tuning
            # prompts (deterministic: not picked by a clock), else the first lookup draft
            model_rows = [r for r in rows if not r.lookup]
            if model_rows:
                pooled: dict[str, SpecStats] = {}
                for r in model_rows:
                    pooled.setdefault(r.draft, SpecStats(max(cfg.gammas))).merge(r.stats)
                curve_name = max(pooled, key=lambda k: (pooled[k].acceptance_rate, k))
            else:
                curve_name = heldout_drafts[0].name
            curve_draft = next(d for d in heldout_drafts if d.name == curve_name)
            curves = temperature_curves(target, curve_draft.drafter, heldout_prompts, cfg,
                                        cfg.heldout_seed)
            by_name = {d.name: d for d in heldout_drafts}
            speeds = []
            for family, lookup in (("model", False), ("lookup", True)):
                chosen = tuned_choice(rows, lookup)
                if chosen is None:
                    continue
                for t in cfg.heldout_temperatures:
                    speeds.append(heldout_speed(target, by_name[chosen.draft], family, chosen.gamma,
                                                heldout_prompts, t, cfg))
        # the rule must be exact for a sampled q (a mini-former, else the bigram) and for a
        # one-hot q (the last lookup draft: context-table when both are on)
        model_drafts = [d for d in heldout_drafts if not d.lookup]
        checked = ([next((d for d in model_drafts if d.name != "bigram"), model_drafts[0])]
                   if model_drafts else [])
        checked += [d for d in heldout_drafts if d.lookup][-1:]
        exact = {d.name: _exactness_on_some_prompt(target, d.drafter, heldout_prompts, cfg)
                 for d in checked}
    return [
        correctness_item(rows, held, exact, speeds, table_choice, cfg),
        acceptance_item(rows, held, curves, curve_name, cfg),
        draft_size_item(rows, held, tuning_drafts, target_loss, costs, seeds, cfg.checks),
    ]
