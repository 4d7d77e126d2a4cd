"""The curriculum experiments of "Sampling Parameters: temp/top-k/top-p" (items 1-3).

All three run on the trained base model (``models/base``) with prompts cut from the validation
token stream, and sample with :func:`nlpcurriculum.decoding.samplers.sample` (KV cache, one
batch of prompts x samples per setting).

* ``sampling-parameters-temp-top-k-top-p/1`` (:func:`dashboard_item`): the sampler dashboard's
  table function (:func:`nlpcurriculum.apps.sampler_dashboard.sampler_view`) run headlessly on a
  few settings (plain T=1, low temperature, top-k, top-p, min-p, argmax); its HTML is the
  snapshot. On the real model's distributions it checks what each filter promises: top-p keeps
  exactly the smallest most-likely set with mass >= p (Holtzman et al. 2019), min-p exactly the
  ids with ``p >= min_p * max p`` (Nguyen et al. 2024), top-k exactly k ids, argmax a one-hot, and
  every filtered distribution sums to 1.
* ``.../2`` (:func:`diversity_item`): sweep temperature, top-k and top-p; per setting the mean
  per-step entropy of the sampled distribution against distinct-1/2 and self-BLEU
  (:mod:`nlpcurriculum.metrics.text`) of the samples of each prompt. Claim: entropy and
  diversity rise together (Spearman rank correlation across settings), self-BLEU falls.
* ``.../3`` (:func:`repetition_item`): temperature 0 (argmax) against sampling: the fraction of
  repeated n-grams within each continuation (rep-n), the longest span that occurs twice, and the
  share of positions that repeat an earlier n-gram as generation goes on. Claim: greedy decoding
  repeats more than T=1 sampling (it falls into loops: Holtzman et al. 2019, section 4).

Left out: human / model-based quality scores (MAUVE, perplexity under a larger model), the
quality side of the quality-diversity trade-off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nlpcurriculum.decoding.samplers import SamplerConfig, sample
from nlpcurriculum.metrics.stats import spearman
from nlpcurriculum.metrics.text import distinct_n, longest_repeated_span, ngrams, repetition_rate, self_bleu
from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = [
    "ITEMS",
    "Inputs",
    "SamplingConfig",
    "dashboard_item",
    "diversity_item",
    "make_prompts",
    "repetition_item",
    "run",
    "top_p_kept",
]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(f"sampling-parameters-temp-top-k-top-p/{n}" for n in (1, 2, 3))


@dataclass
class SamplingChecks:
    """Bounds of the findings that no knob above sets (params ``sampling.checks``).

    Attributes:
        max_violating_steps: item 1: steps where a filter keeps other ids than its definition.
        max_renormalization_error: item 1: max |sum - 1| of a filtered distribution.
        max_entropy_shift: item 1: signed entropy change of the first step from T=1 (sign flipped
            for T > 1).
        min_longest_repeat_gap: item 3: argmax's longest repeated span minus T=1's (tokens).
        min_top_p_adaptivity: item 1: Spearman rank correlation, over the model's next-token
            distributions of every dashboard step, between a distribution's entropy and the number
            of ids top-p keeps from it.
    """

    max_violating_steps: float = 0.0
    max_renormalization_error: float = 1e-5
    max_entropy_shift: float = 0.0
    min_longest_repeat_gap: float = 1.0
    min_top_p_adaptivity: float = 0.5


@dataclass
class SamplingConfig:
    """Sizes and settings of the three items.

    The section ``sampling`` of params/sampling_parameters_temp_top_k_top_p.yaml.

    Attributes:
        prompt_tokens: length of each prompt (cut from the validation stream).
        n_prompts: prompts, evenly spaced over the stream (items 1 and 2).
        repetition_prompts: item 3's prompts, evenly spaced over the stream: its findings pair
            argmax and T=1 per prompt (:meth:`Finding.compare`), so at least 3.
        seed: seeds every draw.
        num_threads: torch CPU threads.
        view_tokens: tokens generated per dashboard setting (item 1).
        view_temperature, view_top_k, view_top_p, view_min_p: the single-knob settings item 1
            shows and checks (each with everything else off).
        sweep_temperatures: item 2's temperature sweep (no truncation).
        sweep_top_ks: item 2's top-k sweep (at T=1).
        sweep_top_ps: item 2's top-p sweep (at T=1).
        samples_per_prompt: continuations per prompt and setting (items 2 and 3).
        sweep_tokens: tokens per continuation in item 2.
        min_rank_correlation: item 2 expects Spearman(entropy, distinct-2) >= this, and
            Spearman(entropy, self-BLEU) <= -this.
        repetition_tokens: tokens per continuation in item 3.
        repetition_temperatures: item 3's temperatures; must include 0 and 1.
        repetition_penalty: item 3 also decodes greedily with this CTRL penalty (a metric).
        rep_n: the n of rep-n in item 3's finding.
        min_rep_gap: item 3 expects rep-n(argmax) - rep-n(T=1) >= this (mean over prompts, beyond
            two standard errors).
        checks: the other bounds of the findings.
    """

    prompt_tokens: int = 8
    n_prompts: int = 4
    repetition_prompts: int = 8
    seed: int = 0
    num_threads: int = 1
    view_tokens: int = 16
    view_temperature: float = 0.5
    view_top_k: int = 10
    view_top_p: float = 0.9
    view_min_p: float = 0.1
    sweep_temperatures: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 1.0, 1.3, 1.6])
    sweep_top_ks: list[int] = field(default_factory=lambda: [2, 5, 20, 100])
    sweep_top_ps: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.9, 0.97])
    samples_per_prompt: int = 8
    sweep_tokens: int = 40
    min_rank_correlation: float = 0.8
    repetition_tokens: int = 96
    repetition_temperatures: list[float] = field(default_factory=lambda: [0.0, 0.5, 0.8, 1.0])
    repetition_penalty: float = 1.3
    rep_n: int = 3
    min_rep_gap: float = 0.1
    checks: SamplingChecks = field(default_factory=SamplingChecks)

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "n_prompts", "num_threads", "view_tokens", "samples_per_prompt",
                     "sweep_tokens", "repetition_tokens", "rep_n", "repetition_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 (self-BLEU compares samples), "
                             f"got {self.samples_per_prompt}")
        for name in ("sweep_temperatures", "sweep_top_ks", "sweep_top_ps", "repetition_temperatures"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if 0.0 not in self.repetition_temperatures or 1.0 not in self.repetition_temperatures:
            raise ValueError(f"repetition_temperatures must include 0 and 1, got {self.repetition_temperatures}")
        if len(self.sweep_temperatures) + len(self.sweep_top_ks) + len(self.sweep_top_ps) < 3:
            raise ValueError("the sweeps (sweep_temperatures, sweep_top_ks, sweep_top_ps) need >= 3 settings")
        # Every setting must be a valid sampler: this raises a ValueError naming the knob.
        SamplerConfig(temperature=self.view_temperature, top_k=self.view_top_k, top_p=self.view_top_p,
                      min_p=self.view_min_p, repetition_penalty=self.repetition_penalty)
        for t in self.sweep_temperatures:
            if t <= 0:
                raise ValueError(f"sweep_temperatures must be > 0 (argmax has no diversity), got {t}")
        for k in self.sweep_top_ks:
            SamplerConfig(top_k=k)
            if k < 1:
                raise ValueError(f"sweep_top_ks must be >= 1, got {k}")
        for p in self.sweep_top_ps:
            SamplerConfig(top_p=p)
        for t in self.repetition_temperatures:
            SamplerConfig(temperature=t)
        if self.view_top_k < 1 or self.view_top_p >= 1 or self.view_min_p <= 0:
            raise ValueError("view_top_k must be >= 1, view_top_p < 1 and view_min_p > 0 (item 1 checks them)")
        if not 0 < self.min_rank_correlation <= 1:
            raise ValueError(f"min_rank_correlation must be in (0, 1], got {self.min_rank_correlation}")

    def check_fits(self, max_seq_len: int) -> None:
        """The prompt plus the longest generation must fit the model's window."""
        longest = max(self.view_tokens, self.sweep_tokens, self.repetition_tokens)
        if self.prompt_tokens + longest > max_seq_len:
            raise ValueError(f"prompt_tokens ({self.prompt_tokens}) + the longest generation ({longest}: "
                             f"view_tokens / sweep_tokens / repetition_tokens) exceeds the model's "
                             f"max_seq_len ({max_seq_len})")


def make_prompts(stream: Sequence[int], n: int, length: int) -> list[list[int]]:
    """``n`` windows of ``length`` ids, evenly spaced over ``stream``."""
    if len(stream) < length:
        raise ValueError(f"the token stream ({len(stream)} ids) is shorter than prompt_tokens ({length})")
    starts = np.linspace(0, len(stream) - length, n).astype(int)
    return [[int(t) for t in stream[s : s + length]] for s in starts]


# --- item 1: the dashboard, headless --------------------------------------------------------


def _filter_violations(view: Any, kind: str, value: float) -> tuple[int, float]:
    """Steps of ``view`` whose kept set differs from what ``kind`` promises; max |sum - 1|."""
    out = view.output
    bad, renorm = 0, 0.0
    for s in range(len(view.steps)):
        before = out.tempered_probs[0, s].double()  # (V,) the distribution the filter acted on
        after = out.sampled_probs[0, s].double()
        kept = after > 0
        renorm = max(renorm, abs(float(after.sum()) - 1))
        if kind == "top_p":  # the smallest most-likely prefix whose mass reaches p
            sp, order = before.sort(descending=True)
            need = int((sp.cumsum(0) < value).sum()) + 1
            expected = torch.zeros_like(kept)
            expected[order[:need]] = True
        elif kind == "min_p":
            expected = before >= value * before.max()
        elif kind == "top_k":
            expected = torch.zeros_like(kept)
            expected[before.topk(int(value)).indices] = True
        else:  # argmax: a one-hot on the model's best id
            expected = torch.zeros_like(kept)
            expected[out.model_probs[0, s].argmax()] = True
        bad += int(not torch.equal(kept, expected))
    return bad, renorm


def top_p_kept(probs: torch.Tensor, p: float) -> int:
    """How many ids top-p keeps from ``probs`` ``(V,)``: the smallest most-likely set of mass >= p."""
    return int((probs.double().sort(descending=True).values.cumsum(0) < p).sum()) + 1


def dashboard_item(model: nn.Module, tokenizer: Any, prompt_text: str, cfg: SamplingConfig,
                   stop_id: int | None = None) -> ItemResult:
    """Item 1: the dashboard's table on a few settings; each filter keeps exactly what it promises
    (invariants), and top-p's kept set follows the model's uncertainty where top-k's stays at k
    (the finding, over the model's distributions at every step the dashboard shows)."""
    from nlpcurriculum.apps.sampler_dashboard import render_page, sampler_view

    settings = {
        "plain": SamplerConfig(temperature=1.0),
        "temperature": SamplerConfig(temperature=cfg.view_temperature),
        "top_k": SamplerConfig(top_k=cfg.view_top_k),
        "top_p": SamplerConfig(top_p=cfg.view_top_p),
        "min_p": SamplerConfig(min_p=cfg.view_min_p),
        "argmax": SamplerConfig(temperature=0.0),
    }
    views = {name: sampler_view(model, tokenizer, prompt_text, sc, cfg.view_tokens, cfg.seed, stop_id=stop_id)
             for name, sc in settings.items()}
    metrics: dict[str, float] = {}
    checks = {"top_p": cfg.view_top_p, "min_p": cfg.view_min_p, "top_k": cfg.view_top_k, "argmax": 0.0}
    renorm_error = 0.0
    for name, value in checks.items():
        bad, renorm = _filter_violations(views[name], name, value)
        metrics[f"{name}.violating_steps"] = bad
        renorm_error = max(renorm_error, renorm)
    for name, v in views.items():
        metrics[f"{name}.steps"] = len(v.steps)
        metrics[f"{name}.mean_kept"] = float(np.mean([s.kept for s in v.steps]))
        metrics[f"{name}.mean_entropy_after"] = float(np.mean([s.entropy_after for s in v.steps]))
        metrics[f"{name}.mean_entropy_model"] = float(np.mean([s.entropy_model for s in v.steps]))
    metrics["max_renormalization_error"] = renorm_error
    # The first step of every setting sees the same prefix: its entropies are directly comparable.
    first = {name: v.steps[0] for name, v in views.items()}
    metrics["first_step.entropy_before.plain"] = first["plain"].entropy_before
    metrics["first_step.entropy_before.temperature"] = first["temperature"].entropy_before
    violations = sum(metrics[f"{n}.violating_steps"] for n in checks)
    metrics["violating_steps"] = violations
    lower_t_sharper = first["temperature"].entropy_before - first["plain"].entropy_before
    if cfg.view_temperature > 1:
        lower_t_sharper = -lower_t_sharper
    metrics["first_step.entropy_shift"] = lower_t_sharper
    # top-p on the model's own distributions: entropy of each step's distribution vs ids kept
    entropies, kept = [], []
    for v in views.values():
        for s in range(len(v.steps)):
            probs = v.output.model_probs[0, s].double()  # (V,)
            entropies.append(float(-torch.xlogy(probs, probs).sum()))
            kept.append(float(top_p_kept(probs, cfg.view_top_p)))
    adaptivity = spearman(entropies, kept)
    metrics |= {"top_p_adaptivity.distributions": len(kept), "top_p_adaptivity.spearman": adaptivity,
                "top_p_adaptivity.min_kept": min(kept), "top_p_adaptivity.max_kept": max(kept)}
    summary = "\n".join(f"{n:12s} {v.cfg.label():18s} kept {metrics[f'{n}.mean_kept']:8.1f}  "
                        f"H after {metrics[f'{n}.mean_entropy_after']:.3f}  sample {v.sample_text!r}"
                        for n, v in views.items())
    return ItemResult(
        item=ITEMS[0],
        metrics=metrics,
        texts={"dashboard.html": render_page(list(views.values()),
                                             "Sampler dashboard snapshot (headless, base model)"),
               "dashboard.txt": summary + "\n"},
        findings=[
            Finding.at_most(f"on the model's real distributions, top-p={cfg.view_top_p:g} keeps exactly the "
                            f"smallest most-likely set with mass >= p, min-p={cfg.view_min_p:g} exactly the "
                            f"ids with p >= min_p * max p, top-k={cfg.view_top_k} exactly k ids and argmax a "
                            "one-hot (steps that differ)", "violating_steps", violations,
                            cfg.checks.max_violating_steps, kind=INVARIANT),
            Finding.at_most("every filtered distribution is renormalized (max |sum - 1|)",
                            "max_renormalization_error", renorm_error,
                            cfg.checks.max_renormalization_error, kind=INVARIANT),
            Finding.at_most(f"temperature {cfg.view_temperature:g} moves the entropy of the first step "
                            f"{'down' if cfg.view_temperature < 1 else 'up'} from T=1 (signed change)",
                            "first_step.entropy_shift", lower_t_sharper, cfg.checks.max_entropy_shift,
                            kind=INVARIANT),
            Finding.at_least(f"top-p={cfg.view_top_p:g} adapts to the model's uncertainty (top-k keeps k at "
                             "every step): Spearman correlation of a step's entropy and the ids top-p keeps, "
                             f"over the model's {len(kept)} next-token distributions of the dashboard",
                             "top_p_adaptivity.spearman", adaptivity, cfg.checks.min_top_p_adaptivity),
        ],
    )


# --- item 2: entropy vs diversity -----------------------------------------------------------


@dataclass(frozen=True)
class SweepRow:
    family: str
    value: float
    cfg: SamplerConfig
    entropy: float
    distinct1: float
    distinct2: float
    self_bleu: float


def sweep_settings(cfg: SamplingConfig) -> list[tuple[str, float, SamplerConfig]]:
    """(family, knob value, sampler) for every setting of item 2."""
    rows = [("temperature", t, SamplerConfig(temperature=t)) for t in cfg.sweep_temperatures]
    rows += [("top_k", k, SamplerConfig(top_k=k)) for k in cfg.sweep_top_ks]
    rows += [("top_p", p, SamplerConfig(top_p=p)) for p in cfg.sweep_top_ps]
    return rows


def measure_setting(model: nn.Module, prompts: list[list[int]], sc: SamplerConfig, n_samples: int,
                    n_tokens: int, seed: int) -> tuple[float, float, float, float, list[list[int]]]:
    """(mean step entropy, distinct-1, distinct-2, self-BLEU, samples) of one sampler.

    Diversity is measured among the samples of the same prompt, then averaged over prompts.
    """
    out = sample(model, prompts, n_tokens, sc, n_samples=n_samples,
                 generator=torch.Generator().manual_seed(seed))
    groups = [out.tokens[i * n_samples : (i + 1) * n_samples] for i in range(len(prompts))]
    d1 = float(np.mean([distinct_n(g, 1) for g in groups]))
    d2 = float(np.mean([distinct_n(g, 2) for g in groups]))
    sb = float(np.mean([self_bleu(g) for g in groups]))
    return float(out.entropy_sampled.mean()), d1, d2, sb, out.tokens


def diversity_item(model: nn.Module, prompts: list[list[int]], cfg: SamplingConfig,
                   decode: Callable[[list[int]], str]) -> ItemResult:
    """Item 2: sweep temperature / top-k / top-p; mean step entropy vs distinct-n and self-BLEU."""
    import matplotlib.pyplot as plt

    rows, examples = [], []
    for family, value, sc in sweep_settings(cfg):
        h, d1, d2, sb, toks = measure_setting(model, prompts, sc, cfg.samples_per_prompt,
                                              cfg.sweep_tokens, cfg.seed)
        rows.append(SweepRow(family, value, sc, h, d1, d2, sb))
        examples.append(f"== {sc.label()}\n" + "\n".join(f"  {decode(t)!r}" for t in toks[:2]))
    ent = [r.entropy for r in rows]
    rho_d2 = spearman(ent, [r.distinct2 for r in rows])
    rho_d1 = spearman(ent, [r.distinct1 for r in rows])
    rho_sb = spearman(ent, [r.self_bleu for r in rows])
    metrics: dict[str, float] = {"settings": len(rows), "spearman.entropy_distinct2": rho_d2,
                                 "spearman.entropy_distinct1": rho_d1, "spearman.entropy_self_bleu": rho_sb,
                                 "neg_spearman.entropy_self_bleu": -rho_sb}
    for r in rows:
        key = f"{r.family}_{r.value:g}"
        metrics |= {f"entropy.{key}": r.entropy, f"distinct1.{key}": r.distinct1,
                    f"distinct2.{key}": r.distinct2, f"self_bleu.{key}": r.self_bleu}

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    markers = {"temperature": "o-", "top_k": "s-", "top_p": "^-"}
    for family in markers:
        fam = sorted((r for r in rows if r.family == family), key=lambda r: r.entropy)
        if not fam:
            continue
        for ax, attr in zip(axes, ("distinct1", "distinct2", "self_bleu")):
            ax.plot([r.entropy for r in fam], [getattr(r, attr) for r in fam], markers[family], label=family)
            for r in fam:
                ax.annotate(f"{r.value:g}", (r.entropy, getattr(r, attr)), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
    for ax, name, rho in zip(axes, ("distinct-1", "distinct-2", "self-BLEU-4"), (rho_d1, rho_d2, rho_sb)):
        ax.set(xlabel="mean per-step entropy of the sampled distribution (nats)", ylabel=name,
               title=f"{name} vs entropy (Spearman {rho:+.2f})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(prompts)} prompts x {cfg.samples_per_prompt} samples x {cfg.sweep_tokens} tokens "
                 "per setting (labels: the knob's value)")
    fig.tight_layout()
    table = "\n".join(f"{r.cfg.label():12s} entropy {r.entropy:6.3f}  distinct-1 {r.distinct1:.3f}  "
                      f"distinct-2 {r.distinct2:.3f}  self-BLEU {r.self_bleu:.3f}" for r in rows)
    t_rows = [r for r in rows if r.family == "temperature"]
    return ItemResult(
        item=ITEMS[1],
        metrics=metrics,
        series={"distinct2_vs_temperature": [(int(round(r.value * 100)), r.distinct2) for r in t_rows],
                "entropy_vs_temperature": [(int(round(r.value * 100)), r.entropy) for r in t_rows]},
        figures={"entropy_vs_diversity.png": fig},
        texts={"sweep.txt": table + "\n\n" + "\n".join(examples) + "\n"},
        findings=[
            Finding.at_least("across the temperature / top-k / top-p settings, higher mean per-step entropy "
                             "gives more diverse samples (Spearman rank correlation of entropy and distinct-2)",
                             "spearman.entropy_distinct2", rho_d2, cfg.min_rank_correlation),
            Finding.at_least("and samples that resemble each other less (minus Spearman of entropy and "
                             "self-BLEU)", "neg_spearman.entropy_self_bleu", -rho_sb, cfg.min_rank_correlation),
        ],
    )


# --- item 3: argmax and repetition ----------------------------------------------------------


def _key(sc: SamplerConfig) -> str:
    """A metric-name-safe label: ``"T=1 k=20"`` -> ``"T1_k20"`` (MLflow rejects ``=``)."""
    return sc.label().replace("=", "").replace(" ", "_")


def repeat_profile(seqs: Sequence[Sequence[int]], n: int) -> list[float]:
    """Per position t, the share of sequences whose n-gram ending at t already occurred earlier."""
    length = min(len(s) for s in seqs)
    prof = np.zeros(length)
    for s in seqs:
        seen: set[tuple] = set()
        for t in range(n - 1, length):
            gram = tuple(s[t - n + 1 : t + 1])
            prof[t] += gram in seen
            seen.add(gram)
    return (prof / len(seqs)).tolist()


def repetition_item(model: nn.Module, prompts: list[list[int]], cfg: SamplingConfig,
                    decode: Callable[[list[int]], str]) -> ItemResult:
    """Item 3: argmax (T=0) vs sampling: repeated n-grams, longest repeated span, loops over time.

    The findings pair argmax with T=1 per prompt (argmax's one continuation against the mean of
    T=1's ``samples_per_prompt``): a sampler whose temperature changed nothing would tie on every
    prompt and fail.
    """
    import matplotlib.pyplot as plt

    settings = [SamplerConfig(temperature=t) for t in sorted(cfg.repetition_temperatures)]
    settings.append(SamplerConfig(temperature=0.0, repetition_penalty=cfg.repetition_penalty))
    n = cfg.rep_n
    metrics: dict[str, float] = {}
    profiles, texts, stats, per_prompt = {}, [], {}, {}
    for sc in settings:
        k = 1 if sc.greedy else cfg.samples_per_prompt  # argmax: every sample would be the same
        out = sample(model, prompts, cfg.repetition_tokens, sc, n_samples=k,
                     generator=torch.Generator().manual_seed(cfg.seed))
        seqs = out.tokens  # prompt-major: k continuations of prompt 0, then of prompt 1, ...
        name = _key(sc)
        rep = float(np.mean([repetition_rate(s, n) for s in seqs]))
        rep2 = float(np.mean([repetition_rate(s, 2) for s in seqs]))
        span = float(np.mean([longest_repeated_span(s) for s in seqs]))
        stats[name] = (rep, span)
        groups = [seqs[i * k:(i + 1) * k] for i in range(len(prompts))]
        per_prompt[name] = ([float(np.mean([repetition_rate(s, n) for s in g])) for g in groups],
                            [float(np.mean([longest_repeated_span(s) for s in g])) for g in groups])
        metrics |= {f"rep{n}.{name}": rep, f"rep2.{name}": rep2, f"longest_repeat.{name}": span,
                    f"distinct{n}.{name}": distinct_n(seqs, n)}
        profiles[name] = repeat_profile(seqs, n)
        texts.append(f"== {name} (rep-{n} {rep:.3f}, longest repeated span {span:.1f} tokens)\n"
                     + "\n".join(f"  {decode(s)!r}" for s in seqs[:: max(1, k)][:3]))
    greedy, sampled = _key(SamplerConfig(temperature=0.0)), _key(SamplerConfig(temperature=1.0))
    gap = stats[greedy][0] - stats[sampled][0]
    span_gap = stats[greedy][1] - stats[sampled][1]
    metrics |= {f"rep{n}_gap.argmax_minus_T1": gap, "longest_repeat_gap.argmax_minus_T1": span_gap}
    P = len(prompts)
    rep_finding = Finding.compare(
        f"argmax (temperature 0) repeats more than T=1 sampling: rep-{n} of argmax minus rep-{n} at "
        f"T=1 ({stats[greedy][0]:.3f} vs {stats[sampled][0]:.3f}), paired by prompt, {P} prompts",
        f"rep{n}_gap.argmax_minus_T1", per_prompt[greedy][0], per_prompt[sampled][0],
        margin=cfg.min_rep_gap)
    span_finding = Finding.compare(
        f"argmax falls into longer loops: its longest repeated span minus T=1's "
        f"({stats[greedy][1]:.1f} vs {stats[sampled][1]:.1f} tokens), paired by prompt, {P} prompts",
        "longest_repeat_gap.argmax_minus_T1", per_prompt[greedy][1], per_prompt[sampled][1],
        margin=cfg.checks.min_longest_repeat_gap)
    for f in (rep_finding, span_finding):
        metrics[f"{f.metric}.se"] = f.se

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = list(stats)
    ax1.bar(range(len(names)), [stats[m][0] for m in names], color="#1e88e5")
    ax1.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax1.set(ylabel=f"rep-{n}: share of repeated {n}-grams", title=f"Repetition in {cfg.repetition_tokens}-token "
            "continuations")
    for i, m in enumerate(names):
        ax1.annotate(f"span {stats[m][1]:.0f}", (i, stats[m][0]), ha="center", fontsize=7,
                     textcoords="offset points", xytext=(0, 3))
    for m, prof in profiles.items():
        cum = np.cumsum(prof) / np.arange(1, len(prof) + 1)
        ax2.plot(range(1, len(prof) + 1), cum, label=m)
    ax2.set(xlabel="generated position", ylabel=f"running share of positions repeating an earlier {n}-gram",
            title="Watching repetition build up")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return ItemResult(
        item=ITEMS[2],
        metrics=metrics,
        series={f"repeat_share.{m}": [(t + 1, v) for t, v in enumerate(p)] for m, p in profiles.items()},
        figures={"repetition.png": fig},
        texts={"repetition.txt": "\n".join(texts) + "\n"},
        findings=[rep_finding, span_finding],
    )


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        model: the trained model sampled from.
        tokenizer: its tokenizer (``decode`` for the texts, the dashboard's token labels).
        stream: a token stream the prompts are cut from (the val split).
        stop_id: the end-of-text id, if the tokenizer has one.
    """

    model: nn.Module
    tokenizer: Any
    stream: Sequence[int]
    stop_id: int | None = None


def run(cfg: SamplingConfig, inputs: Inputs) -> list[ItemResult]:
    """The three items on ``model``, prompts cut from ``stream``, ``cfg.num_threads`` threads."""
    model, tokenizer, stream, stop_id = inputs.model, inputs.tokenizer, inputs.stream, inputs.stop_id
    cfg.check_fits(model.config.max_seq_len)
    prompts = make_prompts(stream, cfg.n_prompts, cfg.prompt_tokens)
    decode = tokenizer.decode
    with torch_threads(cfg.num_threads):
        return [dashboard_item(model, tokenizer, decode(prompts[0]), cfg, stop_id),
                diversity_item(model, prompts, cfg, decode),
                repetition_item(model, make_prompts(stream, cfg.repetition_prompts, cfg.prompt_tokens),
                                cfg, decode)]
