"""Items of "Beam Search & Constrained Decoding" on the trained base model (stage ``beam_search``).

1. Beam search vs greedy on val prompts (sequence log-prob, length, repetition), the effect of the
   length-normalisation exponent ``alpha`` and of GNMT's coverage penalty ``beta``, and parity of
   our best beam with ``transformers``' ``generate(num_beams=k)`` on the same weights.
2. Constrained sampling: a JSON schema, an XML grammar and two regexes (dates, e-mails) compiled to
   DFAs and lifted to token masks; ``n_samples`` samples at temperature ``temperature``; parse and
   validation rates (``json`` + ``jsonschema``, ``xml.etree``, Python's ``re``) against an
   unconstrained baseline, and the per-token cost of the mask (ms/token both ways).
3. The beam's divergence and pruning decisions: a tree figure (PNG), an HTML page listing every
   step's candidates (kept / finished / pruned, with scores and parents), and lineage measures.
   The finding, over item 1's prompts: beam search collapses onto few lineages (its known lack of
   diversity), measured as the share of the k beams kept at the first step that still have a
   descendant among the final hypotheses (k of k if the search kept k distinct paths alive).

The "end of sequence" for item 1 is the end of a line (``stop_text``, default ``"\\n"``): the base
model almost never predicts the corpus' end-of-document token within a few dozen tokens, and
without any stop the length normalisation would have nothing to choose between (every hypothesis
would have the same length). Item 2 uses the real end-of-text token.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nlpcurriculum.decoding.beam import BeamResult, beam_search
from nlpcurriculum.decoding.constrained import (
    SampleBatch,
    TokenIndex,
    XmlGrammar,
    constrained_sample,
    json_schema_regex,
    ms_per_row_step,
    token_texts,
    validate_xml,
    xml_grammar_regex,
)
from nlpcurriculum.decoding.regex_automaton import compile_regex
from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = ["CONSTRAINTS", "ITEMS", "BeamSearchConfig", "Inputs", "repetition_rate", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(f"beam-search-and-constrained-decoding/{i}" for i in (1, 2, 3))

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1,
                 "maxItems": 3},
        "address": {"type": "object",
                    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 10},
                                   "zip": {"type": "integer", "minimum": 0}},
                    "required": ["city", "zip"], "additionalProperties": False},
    },
    "required": ["name", "age", "score", "active", "role", "tags", "address"],
    "additionalProperties": False,
}

NOTE_GRAMMAR = XmlGrammar(
    root="note",
    elements={"note": ["to", "from", "body", "list"], "to": "text", "from": "text", "body": "text",
              "list": ["item"], "item": "text"},
    min_children=1, max_children=3, max_text=10, max_depth=3,
)

# name -> (kind, spec, prompt text)
CONSTRAINTS: dict[str, tuple[str, Any, str]] = {
    "json_person": ("json", PERSON_SCHEMA, "The record as JSON:\n"),
    "xml_note": ("xml", NOTE_GRAMMAR, "The note as XML:\n"),
    "regex_date": ("regex", r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", "The date is "),
    "regex_email": ("regex", r"[a-z]{1,10}(\.[a-z]{1,8})?@[a-z]{2,10}\.(com|org|net)",
                    "Send mail to "),
}


@dataclass
class BeamSearchChecks:
    """Bounds of the findings that no knob above sets (params ``beam_search.checks``).

    Attributes:
        not_worse_tolerance: item 1: a beam's sequence counts as at least as likely as greedy's
            when its log-probability is at most this much lower (nats).
        min_not_worse_than_greedy: item 1: share of prompts where the beam's sequence is at least as
            likely as greedy's.
        min_length_gain: item 1: mean length at the largest alpha minus at the smallest.
        min_coverage_gain: item 1: coverage at the largest beta minus with the penalty off.
        min_hf_parity: item 1: share of beams equal to transformers generate's.
        min_valid_rate: item 2: share of constrained samples that parse and validate.
        min_valid_rate_gain: item 2: valid rate constrained minus unconstrained.
        min_trace_reconstructs_best: item 3: 1 when following parents rebuilds the best hypothesis.
        max_first_step_lineage_share: item 3: share of the first step's k kept beams with a
            descendant among the final hypotheses, mean over item 1's prompts.
    """

    not_worse_tolerance: float = 1e-4
    min_not_worse_than_greedy: float = 0.75
    min_length_gain: float = 1e-9
    min_coverage_gain: float = 0.1
    min_hf_parity: float = 1.0
    min_valid_rate: float = 1.0
    min_valid_rate_gain: float = 0.5
    min_trace_reconstructs_best: float = 1.0
    max_first_step_lineage_share: float = 0.75


@dataclass
class BeamSearchConfig:
    """The section ``beam_search`` of params/beam_search_and_constrained_decoding.yaml.

    Attributes:
        prompt_tokens: prompt length (ids from the val stream).
        n_prompts: val prompts for item 1 (evenly spaced through the stream).
        max_new_tokens: longest beam / greedy output (item 1, 3).
        num_beams: ``k``.
        stop_text: text of the token that ends a hypothesis in items 1 and 3 (one token).
        alphas: length-normalisation exponents compared (simple form; the first is the baseline).
        coverage_betas: coverage weights compared (at ``alpha = coverage_alpha``; first = off).
        coverage_alpha: ``alpha`` used in the coverage comparison.
        early_stopping: ``true``, ``false`` or ``"never"`` (as in ``transformers``).
        hf_compare: compare with ``transformers`` ``generate`` (llama-like models only).
        hf_prompts: prompts (and the first two alphas) in that comparison.
        n_samples: constrained samples in all, split evenly over the four constraints.
        n_baseline: unconstrained samples per constraint (the contrast).
        temperature: sampling temperature of item 2.
        batch_size: samples decoded together.
        max_constrained_tokens: cap on item 2's steps (the language's longest string + 1 if shorter).
        viz_steps: steps of the traced beam (item 3).
        seed: RNG seed.
        threads: torch threads.
        checks: the other bounds of the findings.
    """

    prompt_tokens: int = 16
    n_prompts: int = 8
    max_new_tokens: int = 32
    num_beams: int = 4
    stop_text: str = "\n"
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.6, 1.0, 2.0])
    coverage_betas: list[float] = field(default_factory=lambda: [0.0, 0.5, 2.0])
    coverage_alpha: float = 1.0
    early_stopping: Any = "never"
    hf_compare: bool = True
    hf_prompts: int = 4
    n_samples: int = 500
    n_baseline: int = 25
    temperature: float = 1.0
    batch_size: int = 125
    max_constrained_tokens: int = 400
    viz_steps: int = 12
    seed: int = 0
    threads: int = 1
    checks: BeamSearchChecks = field(default_factory=BeamSearchChecks)

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "n_prompts", "max_new_tokens", "num_beams", "hf_prompts",
                     "n_samples", "n_baseline", "batch_size", "max_constrained_tokens",
                     "viz_steps", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.alphas or not self.coverage_betas:
            raise ValueError("alphas and coverage_betas must be non-empty")
        if any(b < 0 for b in self.coverage_betas):
            raise ValueError(f"coverage_betas must be >= 0, got {self.coverage_betas}")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be true, false or 'never', got {self.early_stopping!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.n_samples < len(CONSTRAINTS):
            raise ValueError(f"n_samples must be >= {len(CONSTRAINTS)} (one per constraint)")
        if not self.stop_text:
            raise ValueError("stop_text must be non-empty")


def repetition_rate(tokens: Sequence[int], n: int = 3) -> float:
    """Fraction of the sequence's n-grams that already occurred earlier in it (0 = none)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else math.nan


# --- item 1 ------------------------------------------------------------------------------------


def beam_vs_greedy_item(model: nn.Module, prompts: list[list[int]], stop_id: int,
                        cfg: BeamSearchConfig, hf_model: Any = None) -> ItemResult:
    """Beam vs greedy, alpha sweep, coverage sweep, and the transformers parity check."""
    import matplotlib.pyplot as plt

    k, N, es = cfg.num_beams, cfg.max_new_tokens, cfg.early_stopping
    metrics: dict[str, float] = {}
    greedy = [beam_search(model, p, 1, N, stop_id, 0.0, early_stopping=True) for p in prompts]
    rows = {}
    for a in cfg.alphas:
        rows[a] = [beam_search(model, p, k, N, stop_id, a, early_stopping=es) for p in prompts]
    base = rows[cfg.alphas[0]]
    g_lp = [r.best.logprob for r in greedy]
    b_lp = [r.best.logprob for r in base]
    # compare per token too: beam with alpha = 0 may stop sooner
    metrics["greedy_logprob"] = _mean(g_lp)
    metrics["greedy_length"] = _mean([len(r.best.tokens) for r in greedy])
    metrics["greedy_repetition"] = _mean([repetition_rate(r.best.tokens) for r in greedy])
    metrics["greedy_logprob_per_token"] = _mean([r.best.logprob / len(r.best.tokens) for r in greedy])
    for a, res in rows.items():
        tag = f"alpha{a:g}"
        metrics[f"beam_{tag}_logprob"] = _mean([r.best.logprob for r in res])
        metrics[f"beam_{tag}_logprob_per_token"] = _mean([r.best.logprob / len(r.best.tokens) for r in res])
        metrics[f"beam_{tag}_length"] = _mean([len(r.best.tokens) for r in res])
        metrics[f"beam_{tag}_repetition"] = _mean([repetition_rate(r.best.tokens) for r in res])
    # the beam's answer at alpha_0 is at least as likely as greedy's, prompt by prompt
    not_worse = _mean([float(b >= g - cfg.checks.not_worse_tolerance) for b, g in zip(b_lp, g_lp)])
    metrics["beam_not_worse_than_greedy_frac"] = not_worse
    a_lo, a_hi = min(cfg.alphas), max(cfg.alphas)
    len_gain = metrics[f"beam_alpha{a_hi:g}_length"] - metrics[f"beam_alpha{a_lo:g}_length"]
    metrics["length_gain_alpha_max_vs_min"] = len_gain

    cov_rows = {}
    for b in cfg.coverage_betas:
        cov_rows[b] = [beam_search(model, p, k, N, stop_id, cfg.coverage_alpha, coverage_beta=b,
                                   early_stopping=es, track_coverage=True) for p in prompts]
        metrics[f"coverage_beta{b:g}_coverage"] = _mean([r.best.coverage for r in cov_rows[b]])
        metrics[f"coverage_beta{b:g}_length"] = _mean([len(r.best.tokens) for r in cov_rows[b]])
        metrics[f"coverage_beta{b:g}_logprob"] = _mean([r.best.logprob for r in cov_rows[b]])
    b0, b1 = cfg.coverage_betas[0], max(cfg.coverage_betas)
    cov_gain = metrics[f"coverage_beta{b1:g}_coverage"] - metrics[f"coverage_beta{b0:g}_coverage"]
    metrics["coverage_gain"] = cov_gain

    findings = [
        Finding.at_least("beam search (alpha=%g) finds a sequence at least as likely as greedy's "
                         "on (nearly) every prompt" % cfg.alphas[0],
                         "beam_not_worse_than_greedy_frac", not_worse,
                         cfg.checks.min_not_worse_than_greedy),
        Finding.at_least("a larger length-normalisation alpha selects longer hypotheses",
                         "length_gain_alpha_max_vs_min", len_gain, cfg.checks.min_length_gain),
        Finding.at_least("the coverage penalty selects hypotheses that cover the prompt more "
                         "(higher sum_i log min(coverage_i, 1))", "coverage_gain", cov_gain,
                         cfg.checks.min_coverage_gain),
    ]
    texts = {}
    if hf_model is not None:
        same, total, lines = 0, 0, []
        for p in prompts[: cfg.hf_prompts]:
            for a in cfg.alphas[:2]:
                ours = beam_search(model, p, k, N, stop_id, a, early_stopping=es).best.tokens
                theirs = hf_beam(hf_model, p, k, N, stop_id, a, es)
                same += ours == theirs
                total += 1
                lines.append(f"alpha={a:g} same={ours == theirs} ours={ours} hf={theirs}")
        metrics["hf_parity_frac"] = same / total
        texts["hf_parity.txt"] = "\n".join(lines) + "\n"
        findings.append(Finding.at_least(
            "our best beam equals transformers generate(num_beams=k, do_sample=False, "
            "length_penalty=alpha, early_stopping=%r) on the same weights" % (es,),
            "hf_parity_frac", same / total, cfg.checks.min_hf_parity, kind=INVARIANT))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    alphas = list(rows)
    axes[0].plot(alphas, [metrics[f"beam_alpha{a:g}_length"] for a in alphas], "o-", label="beam")
    axes[0].axhline(metrics["greedy_length"], color="grey", ls="--", label="greedy")
    axes[0].set(xlabel="alpha (score / len^alpha)", ylabel="mean length (tokens)",
                title=f"length vs alpha (k={k})")
    axes[0].legend()
    axes[1].plot(alphas, [metrics[f"beam_alpha{a:g}_logprob_per_token"] for a in alphas], "o-",
                 label="beam")
    axes[1].axhline(metrics["greedy_logprob_per_token"], color="grey", ls="--", label="greedy")
    axes[1].set(xlabel="alpha", ylabel="log-prob per token", title="likelihood per token")
    axes[1].legend()
    fig.tight_layout()
    return ItemResult(ITEMS[0], metrics=metrics, figures={"alpha.png": fig}, texts=texts,
                      findings=findings)


def hf_beam(hf_model: Any, prompt: Sequence[int], k: int, n: int, eos: int, alpha: float,
            early_stopping: Any) -> list[int]:
    """transformers' beam search answer (new tokens, cut after the first EOS)."""
    ids = torch.tensor([list(prompt)])
    out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), num_beams=k, do_sample=False,
                            length_penalty=alpha, early_stopping=early_stopping, max_new_tokens=n,
                            eos_token_id=eos, pad_token_id=eos)
    gen = out[0, len(prompt):].tolist()
    return gen[: gen.index(eos) + 1] if eos in gen else gen


# --- item 2 ------------------------------------------------------------------------------------


def check_output(kind: str, spec: Any, text: str) -> tuple[bool, bool]:
    """``(parses, valid)`` of one sample against its constraint."""
    if kind == "json":
        import jsonschema

        try:
            value = json.loads(text)
        except ValueError:
            return False, False
        try:
            jsonschema.validate(value, spec)
        except jsonschema.ValidationError:
            return True, False
        return True, True
    if kind == "xml":
        return validate_xml(text, spec)
    ok = re.fullmatch(spec, text, re.ASCII) is not None
    return ok, ok


def constraint_pattern(kind: str, spec: Any) -> str:
    if kind == "json":
        return json_schema_regex(spec)
    if kind == "xml":
        return xml_grammar_regex(spec)
    return spec


def constrained_item(model: nn.Module, encode: Callable[[str], list[int]],
                     decode: Callable[[list[int]], str], eos_id: int, vocab_size: int,
                     cfg: BeamSearchConfig) -> ItemResult:
    """Parse / validation rates of constrained vs unconstrained samples, and the mask's cost."""
    texts_of = token_texts(decode, vocab_size, special_ids=[eos_id])
    excluded = sum(t is None for t in texts_of)
    gen = torch.Generator().manual_seed(cfg.seed)
    per = cfg.n_samples // len(CONSTRAINTS)
    extra = cfg.n_samples - per * len(CONSTRAINTS)
    metrics: dict[str, float] = {"vocab_excluded_tokens": float(excluded)}
    examples, tot = [], {"n": 0, "parse": 0, "valid": 0, "bn": 0, "bparse": 0, "bvalid": 0}
    c_batches: list[SampleBatch] = []
    t_batches: list[SampleBatch] = []
    firsts: list[SampleBatch] = []  # each constraint's first batch: the shape of its cost baseline
    build = first_build = 0.0
    for j, (name, (kind, spec, prompt_text)) in enumerate(CONSTRAINTS.items()):
        dfa = compile_regex(constraint_pattern(kind, spec))
        longest = dfa.max_length()
        steps = cfg.max_constrained_tokens if longest is None else min(longest + 1, cfg.max_constrained_tokens)
        index = TokenIndex(dfa, texts_of, eos_id)
        prompt = encode(prompt_text)
        n = per + (1 if j < extra else 0)
        outs: list[SampleBatch] = []
        done = 0
        while done < n:
            b = min(cfg.batch_size, n - done)
            outs.append(constrained_sample(model, prompt, b, steps, eos_id, index, cfg.temperature, gen))
            if done == 0:
                first_build += index.build_seconds  # the index work done inside the first batch
            done += b
        ok_parse = ok_valid = 0
        for batch in outs:
            for ids, ended in zip(batch.ids, batch.ended):
                text = decode(ids)
                p, v = check_output(kind, spec, text)
                ok_parse += p
                ok_valid += v and ended
                if len(examples) < 4 * (j + 1):
                    examples.append(f"[{name}] {text!r}")
        c_batches += outs
        firsts.append(outs[0])
        build += index.build_seconds
        # the cost baseline: unconstrained, same batch size and number of steps as the first batch
        t_batches.append(constrained_sample(model, prompt, outs[0].rows, outs[0].steps, eos_id, None,
                                            cfg.temperature, gen))
        # the validity baseline: unconstrained samples of the same length budget
        base = constrained_sample(model, prompt, cfg.n_baseline, steps, eos_id, None, cfg.temperature, gen)
        b_parse = b_valid = 0
        for ids in base.ids:
            p, v = check_output(kind, spec, decode(ids))
            b_parse += p
            b_valid += v
        metrics[f"{name}_samples"] = float(n)
        metrics[f"{name}_parse_rate"] = ok_parse / n
        metrics[f"{name}_valid_rate"] = ok_valid / n
        metrics[f"{name}_baseline_valid_rate"] = b_valid / cfg.n_baseline
        metrics[f"{name}_dfa_states"] = float(dfa.n_states)
        metrics[f"{name}_states_indexed"] = float(index.states_indexed)
        metrics[f"{name}_max_steps"] = float(steps)
        metrics[f"{name}_longest_match_chars"] = float(longest if longest is not None else -1)
        tot["n"] += n
        tot["parse"] += ok_parse
        tot["valid"] += ok_valid
        tot["bn"] += cfg.n_baseline
        tot["bparse"] += b_parse
        tot["bvalid"] += b_valid
    metrics["samples"] = float(tot["n"])
    metrics["parse_rate"] = tot["parse"] / tot["n"]
    metrics["valid_rate"] = tot["valid"] / tot["n"]
    metrics["baseline_parse_rate"] = tot["bparse"] / tot["bn"]
    metrics["baseline_valid_rate"] = tot["bvalid"] / tot["bn"]
    # clock readings: apart from the deterministic metrics (ItemResult.timings)
    timings: dict[str, float] = {}
    c_ms, u_ms = ms_per_row_step(firsts), ms_per_row_step(t_batches)
    timings["constrained_ms_per_token"] = c_ms
    timings["unconstrained_ms_per_token"] = u_ms
    timings["overhead_ratio"] = c_ms / u_ms
    # the same, less the one-off cost of building each state's index and mask (a warm index)
    c_work = sum(b.steps * b.rows for b in firsts)
    warm_ms = 1000.0 * (sum(b.seconds for b in firsts) - first_build) / c_work
    timings["overhead_ratio_warm_index"] = warm_ms / u_ms
    timings["index_build_s"] = build
    mask_s = sum(b.mask_seconds for b in c_batches)
    timings["mask_share_of_time"] = mask_s / sum(b.seconds for b in c_batches)
    timings["all_constrained_ms_per_token"] = ms_per_row_step(c_batches)
    findings = [
        Finding.at_least(f"constrained decoding: every one of {tot['n']} samples parses and "
                         "validates (JSON schema, XML grammar, regexes)", "valid_rate",
                         metrics["valid_rate"], cfg.checks.min_valid_rate, kind=INVARIANT),
        Finding.at_least("constraints matter: constrained samples validate more often than "
                         "unconstrained ones", "valid_rate_gain",
                         metrics["valid_rate"] - metrics["baseline_valid_rate"],
                         cfg.checks.min_valid_rate_gain),
    ]
    metrics["valid_rate_gain"] = metrics["valid_rate"] - metrics["baseline_valid_rate"]
    report = (
        f"constrained: {tot['valid']}/{tot['n']} valid, {tot['parse']}/{tot['n']} parse; "
        f"unconstrained: {tot['bvalid']}/{tot['bn']} valid\n"
        f"ms per token (per batch row and step, equal batch and steps) constrained {c_ms:.3f} vs "
        f"unconstrained {u_ms:.3f}: ratio {c_ms / u_ms:.2f}, which includes building the index "
        f"lazily ({build:.2f} s in all); with a warm index the ratio is "
        f"{timings['overhead_ratio_warm_index']:.2f}; masking takes "
        f"{100 * timings['mask_share_of_time']:.0f}% of the constrained time\n"
        f"tokens excluded from the index (not valid UTF-8 alone, or special): {excluded}\n\n"
        + "\n".join(f"{name}: {constraint_pattern(k, s)}" for name, (k, s, _) in CONSTRAINTS.items())
        + "\n\nexamples:\n" + "\n".join(examples) + "\n")
    return ItemResult(ITEMS[1], metrics=metrics, timings=timings, texts={"constrained.txt": report},
                      findings=findings)


# --- item 3 ------------------------------------------------------------------------------------


def best_path(result: BeamResult) -> list[tuple[int, int]]:
    """``(step, rank)`` of each candidate on the best hypothesis' path, first step first."""
    best = result.best
    path = [(best.step, best.rank)]
    parent = best.parent
    for s in range(best.step - 1, -1, -1):
        cand = next(c for c in result.steps[s].candidates if c.status == "kept" and c.slot == parent)
        path.append((s, cand.rank))
        parent = cand.parent
    return path[::-1]


def lineages(result: BeamResult) -> list[int]:
    """Per step, how many of that step's kept beams have a descendant among the final hypotheses
    (``k`` = no beam wasted; 1 = every final hypothesis shares one ancestor there)."""
    kept = {(st.step, c.slot): c.parent for st in result.steps for c in st.candidates
            if c.status == "kept"}
    alive: set[tuple[int, int]] = set()
    for h in result.hypotheses:
        s, slot = h.step - 1, h.parent
        while s >= 0 and (s, slot) not in alive:
            alive.add((s, slot))
            s, slot = s - 1, kept[(s, slot)]
    n_steps = max((st.step for st in result.steps), default=-1)
    return [sum(1 for (s, _) in alive if s == step) for step in range(n_steps)]


def tree_figure(result: BeamResult, label: Callable[[int], str]) -> Any:
    """The beam as a tree: x = step, one row per candidate slot; kept (blue), finished (green),
    pruned (grey x); the best hypothesis' path in red."""
    import matplotlib.pyplot as plt

    k2 = max(len(s.candidates) for s in result.steps)
    fig, ax = plt.subplots(figsize=(min(2 + 1.4 * len(result.steps), 22), 0.55 * k2 + 2))
    ypos: dict[tuple[int, int], float] = {}  # (step, slot) of kept beams -> y
    path = set(best_path(result))
    styles = {"kept": ("o", "tab:blue"), "finished": ("*", "tab:green"),
              "rejected": ("*", "tab:olive"), "pruned": ("x", "lightgrey"), "pruned_eos": ("x", "khaki")}
    for st in result.steps:
        for c in st.candidates:
            y = -c.rank
            parent_y = 0.0 if st.step == 0 else ypos.get((st.step - 1, c.parent), 0.0)
            on_path = (st.step, c.rank) in path
            colour = "red" if on_path else ("tab:blue" if c.status == "kept" else "lightgrey")
            ax.plot([st.step, st.step + 1], [parent_y, y], color=colour,
                    lw=2.2 if on_path else (1.0 if c.status in ("kept", "finished") else 0.4), zorder=1)
            m, col = styles[c.status]
            ax.scatter([st.step + 1], [y], marker=m, color="red" if on_path else col, s=40, zorder=2)
            if c.status in ("kept", "finished", "rejected") or on_path:
                ax.annotate(f"{label(c.token)!s:.10}\n{c.score:.1f}", (st.step + 1, y), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
            if c.status == "kept":
                ypos[(st.step, c.slot)] = y
    ax.scatter([0], [0], color="black", s=40)
    ax.set(xlabel="step", ylabel="candidate rank (by running log-prob)",
           title="beam search tree: kept (blue), finished (green *), pruned (grey x), best path (red)")
    fig.tight_layout()
    return fig


def render_beam_html(result: BeamResult, label: Callable[[int], str], prompt_text: str, k: int,
                     notes: str = "") -> str:
    """A self-contained page: every step's candidates with parent, token, scores and decision."""
    why = {"kept": "kept: among the k best unfinished continuations",
           "finished": "finished (EOS within the top k) and in the final pool",
           "rejected": "finished, but beaten by better finished hypotheses (or search was over)",
           "pruned": "pruned: below the k best unfinished continuations",
           "pruned_eos": "pruned: ended with EOS but ranked below k"}
    colour = {"kept": "#dbeafe", "finished": "#bbf7d0", "rejected": "#fef9c3", "pruned": "#f3f4f6",
              "pruned_eos": "#fde68a"}
    path = set(best_path(result))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>beam search trace</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:0 0 1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.best{outline:2px solid red}"
        "code{background:#eee}</style></head><body>",
        f"<h1>Beam search trace (k={k})</h1><p>prompt: <code>{html.escape(prompt_text)}</code></p>",
        "<p>Each step considers the 2k best continuations by running log-prob. Rows outlined in "
        "red lie on the final best hypothesis' path. Legend: "
        + " ".join(f"<span style='background:{colour[s]}'>{html.escape(w)}</span>" for s, w in why.items())
        + "</p>",
        f"<p>best: <code>{html.escape(''.join(label(t) for t in result.best.tokens))}</code> "
        f"(log-prob {result.best.logprob:.2f}, score {result.best.score:.3f})</p>",
        f"<p>{html.escape(notes)}</p>" if notes else "",
    ]
    for st in result.steps:
        parts.append(f"<h3>step {st.step + 1}</h3><table><tr><th>rank</th><th>parent beam</th>"
                     "<th>parent text (tail)</th><th>token</th><th>token log-p</th>"
                     "<th>running log-p</th><th>score</th><th>decision</th></tr>")
        prev = result.beam_tokens[st.step - 1] if st.step > 0 else [[]]
        for c in st.candidates:
            tail = "".join(label(t) for t in (prev[c.parent] if c.parent < len(prev) else []))[-24:]
            cls = " class='best'" if (st.step, c.rank) in path else ""
            dec = why[c.status] + (f" (slot {c.slot})" if c.slot >= 0 else "")
            parts.append(
                f"<tr{cls} style='background:{colour[c.status]}'><td>{c.rank}</td><td>{c.parent}</td>"
                f"<td><code>{html.escape(tail)}</code></td><td><code>{html.escape(label(c.token))}</code></td>"
                f"<td>{c.token_logprob:.2f}</td><td>{c.logprob:.2f}</td><td>{c.score:.3f}</td>"
                f"<td>{html.escape(dec)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def divergence_item(model: nn.Module, prompt: list[int], stop_id: int, label: Callable[[int], str],
                    cfg: BeamSearchConfig, prompts: Sequence[list[int]] = ()) -> ItemResult:
    """Trace one beam search; tree PNG, HTML page and lineage / divergence measures; with
    ``prompts``, the lineage-collapse finding over a traced search of each."""
    res = beam_search(model, prompt, cfg.num_beams, cfg.viz_steps, stop_id, cfg.coverage_alpha,
                      early_stopping=cfg.early_stopping, record=True)
    path = best_path(res)
    rebuilt = [next(c.token for c in res.steps[s].candidates if c.rank == r) for s, r in path]
    greedy_leader = next((s for s, r in path if r != 0), -1)
    lin = lineages(res)
    counts = {s: 0 for s in ("kept", "finished", "rejected", "pruned", "pruned_eos")}
    for st in res.steps:
        for c in st.candidates:
            counts[c.status] += 1
    total = sum(counts.values())
    distinct_parents = [len({c.parent for c in st.candidates if c.status == "kept"}) for st in res.steps]
    metrics = {
        "steps": float(len(res.steps)),
        "trace_reconstructs_best": float(rebuilt == res.best.tokens),
        "best_path_first_non_top_step": float(greedy_leader + 1 if greedy_leader >= 0 else 0),
        "best_path_mean_rank": _mean([r for _, r in path]),
        "pruned_fraction": (counts["pruned"] + counts["pruned_eos"]) / total,
        "finished_candidates": float(counts["finished"] + counts["rejected"]),
        "mean_distinct_parents": _mean(distinct_parents),
        "min_surviving_lineages": float(min(lin)) if lin else float(cfg.num_beams),
    }
    series = {"surviving_lineages": [(i + 1, float(v)) for i, v in enumerate(lin)],
              "distinct_parents": [(i + 1, float(v)) for i, v in enumerate(distinct_parents)]}
    notes = (f"surviving lineages per step (beams with a descendant among the final hypotheses): "
             f"{lin}; distinct parents of the kept beams per step: {distinct_parents}; the best "
             f"path first leaves the top-ranked beam at step {metrics['best_path_first_non_top_step']:.0f} "
             f"(0 = never: greedy would have found it).")
    page = render_beam_html(res, label, "".join(label(t) for t in prompt), cfg.num_beams, notes)
    findings = [Finding.at_least(
        "the recorded trace is complete: following parents from the best hypothesis back to the "
        "prompt rebuilds its tokens", "trace_reconstructs_best", metrics["trace_reconstructs_best"],
        cfg.checks.min_trace_reconstructs_best, kind=INVARIANT)]
    if prompts:
        shares = []
        for p in prompts:
            traced = beam_search(model, p, cfg.num_beams, cfg.viz_steps, stop_id, cfg.coverage_alpha,
                                 early_stopping=cfg.early_stopping, record=True)
            first = lineages(traced)[:1]
            shares.append(first[0] / cfg.num_beams if first else 1.0)
        metrics["first_step_lineage_share"] = _mean(shares)
        metrics["first_step_lineage_prompts"] = float(len(shares))
        findings.append(Finding.at_most(
            f"beam search collapses onto few lineages: share of the {cfg.num_beams} beams kept at the first "
            f"step with a descendant among the final hypotheses after {cfg.viz_steps} steps (1 = every "
            f"first-step path survives), mean over {len(shares)} prompts", "first_step_lineage_share",
            metrics["first_step_lineage_share"], cfg.checks.max_first_step_lineage_share))
    return ItemResult(ITEMS[2], metrics=metrics, series=series,
                      figures={"tree.png": tree_figure(res, label)}, texts={"beam_trace.html": page},
                      findings=findings)


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        model: the trained model searched over.
        val_ids: the val token stream (prompts are cut from it).
        encode: text -> token ids (the stop text, the constraints' prompts).
        decode: token ids -> text.
        eos_id: the end-of-text id.
        hf_model: the same weights as a ``transformers`` model, for beam parity (optional).
    """

    model: nn.Module
    val_ids: Sequence[int]
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    eos_id: int
    hf_model: Any = None


def run(cfg: BeamSearchConfig, inputs: Inputs) -> list[ItemResult]:
    """All three items on ``inputs.model``, prompts cut from ``inputs.val_ids``."""
    model, val_ids, encode, decode = inputs.model, inputs.val_ids, inputs.encode, inputs.decode
    eos_id, hf_model = inputs.eos_id, inputs.hf_model
    stop = encode(cfg.stop_text)
    if len(stop) != 1:
        raise ValueError(f"stop_text {cfg.stop_text!r} must be one token, encodes to {stop}")
    need = cfg.prompt_tokens * cfg.n_prompts
    if len(val_ids) < need:
        raise ValueError(f"the val stream has {len(val_ids)} ids, need {need} for the prompts")
    stride = len(val_ids) // cfg.n_prompts
    prompts = [list(map(int, val_ids[i * stride : i * stride + cfg.prompt_tokens])) for i in range(cfg.n_prompts)]

    def label(t: int) -> str:  # printable token text for the figure and the page
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in decode([t]))

    with torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        r1 = beam_vs_greedy_item(model, prompts, stop[0], cfg, hf_model)
        r2 = constrained_item(model, encode, decode, eos_id, model.config.vocab_size, cfg)
        r3 = divergence_item(model, prompts[0], stop[0], label, cfg, prompts)
    return [r1, r2, r3]
