"""Experiment of stage ``instruct``: item ``finetuning-vs-instruction-tuning-vs-rlhf/2``.

"Instruction-tune by prepending tasks ("Summarize: ...")": the base LM is fine-tuned on the
synthetic instruction records (``data/synthetic/instructions``: task types with paraphrased
instruction templates and a computable reference, :mod:`nlpcurriculum.data.synthetic.instructions`),
each written as the instruction and its input (the prompt), a blank line, then the response
closed by the end-of-text id (:mod:`nlpcurriculum.adaptation.instruct`).

Design:

* **Held-out instruction types.** ``unseen_types`` are never trained on; training uses the train
  split's records of the other (seen) types. Transfer to new *kinds* of instruction, not only to
  new inputs of known kinds, is the question FLAN asked (Wei et al. 2021, arXiv:2109.01652, held
  out whole task clusters).
* **Evaluation sets.** Seen types: records of the val and test splits (inputs never trained on);
  unseen types: records of every split (none was trained on); at most ``eval_per_type`` per type.
* **Arms**, each on every seed (the seed sets the order of the examples): ``masked`` (the loss on
  response tokens only) and ``unmasked`` (every next token, the ablation), both from the base
  model with the same trainer config; ``base`` is the untuned model (one, deterministic).
* **Measures**, per task type: exact match of the greedy response (arg-max decoding with the
  library's ``generate`` until end-of-text, scored by the task's ``is_correct``) and the
  teacher-forced loss per response token.

Findings (:meth:`~nlpcurriculum.results.Finding.compare`, bounds in ``checks``):

- instruction tuning raises exact match on held-out inputs of the seen types (mean over types,
  masked - base) by ``min_seen_gain`` (fails for a loop that does not learn the format: the base
  model, which never saw it, scores about 0);
- it does *not* transfer exact match to unseen types at this scale: masked - base at most
  ``max_unseen_gain`` (FLAN found zero-shot gains on held-out clusters only for models of ~8B
  parameters and up, and losses below; a model that did solve unseen types fails this);
- it does transfer the *format*: the response loss on unseen types falls below the base model's by
  ``min_unseen_nll_gain`` (fails when tuning only memorises the seen tasks' answers);
- masking the prompt helps at an equal budget: the response loss on seen types, masked -
  unmasked, below ``-min_masking_gain`` (fails when spending the gradient on the prompts costs
  nothing, as Shi et al. 2024, arXiv:2405.14394, found for some data).

Left out: RLHF (item 3 of the section), chat templates, packing, sampling-based evaluation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nlpcurriculum.data.synthetic.instructions import TASK_TYPES
from nlpcurriculum.experiments.harness import curve, map_seeds, plot_curves, torch_threads
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.trainer import TrainerConfig

__all__ = ["ITEMS", "InstructChecks", "InstructConfig", "Inputs", "Outputs", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("finetuning-vs-instruction-tuning-vs-rlhf/2",)

#: The arms, the reference first.
ARMS = ("base", "masked", "unmasked")


@dataclass
class InstructChecks:
    """Bounds of the findings (params ``instruct.checks``).

    Attributes:
        min_seen_gain: exact match (fraction, mean over seen types), masked - base, at least.
        max_unseen_gain: exact match on unseen types, masked - base, at most.
        min_unseen_nll_gain: response loss (nats/token) on unseen types, base - masked, at least.
        min_masking_gain: response loss on seen types, unmasked - masked, at least.
    """

    min_seen_gain: float = 0.1
    max_unseen_gain: float = 0.05
    min_unseen_nll_gain: float = 0.1
    min_masking_gain: float = 0.0


@dataclass
class InstructConfig:
    """Knobs of :func:`run` (the ``instruct`` params section).

    Attributes:
        unseen_types: task types held out of training (at least one; not all).
        separator: the text between prompt and response (part of the prompt).
        train: the tuning run (TrainerConfig fields); ``seed`` is replaced by each of ``seeds``.
        seeds: training seeds (order of the examples), >= 2 distinct.
        eval_per_type: evaluation records per task type, at most.
        max_new_tokens: greedy decoding budget per response.
        workers: runs side by side in processes (one per core).
        num_threads: torch threads per worker.
        checks: the findings' bounds.
    """

    unseen_types: list[str] = field(default_factory=lambda: ["uppercase", "sort_list"])
    separator: str = "\n\n"
    train: TrainerConfig = field(default_factory=TrainerConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_per_type: int = 40
    max_new_tokens: int = 64
    workers: int = 2
    num_threads: int = 1
    checks: InstructChecks = field(default_factory=InstructChecks)

    def __post_init__(self) -> None:
        unknown = set(self.unseen_types) - set(TASK_TYPES)
        if unknown or not self.unseen_types or set(self.unseen_types) >= set(TASK_TYPES):
            raise ValueError(f"unseen_types must be a non-empty proper subset of {TASK_TYPES}, "
                             f"got {self.unseen_types}")
        if len(set(self.seeds)) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least 2 distinct seeds, got {self.seeds}")
        for name in ("eval_per_type", "max_new_tokens", "workers", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def seen_types(self) -> list[str]:
        return [t for t in TASK_TYPES if t not in self.unseen_types]


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        base_config: the base model's ``MiniFormerConfig`` as a dict.
        base_state: the base model's ``state_dict``.
        records: the instruction records by split (``"train"``, ``"val"``, ``"test"``), each a
            dict with ``task_type``, ``input``, ``prompt``, ``response``.
        encode: ``encode(text) -> list[int]`` with the pipeline tokenizer (picklable: a module
            function or a ``functools.partial`` of one).
        decode: ``decode(ids) -> str``.
        eos: the end-of-text id.
    """

    base_config: dict[str, Any]
    base_state: dict[str, Any]
    records: dict[str, list[dict]]
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    eos: int


@dataclass
class Outputs:
    """The instruction-tuned model of the first seed (masked), for the stage to save."""

    state: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    train: TrainerConfig | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Data:
    """The encoded examples: training (seen types, train split) and evaluation (per type)."""

    train: list[Any]
    eval_records: dict[str, list[dict]]
    eval_examples: dict[str, list[Any]]
    dropped_long: int


def _prepare(cfg: InstructConfig, inputs: Inputs) -> _Data:
    from nlpcurriculum.adaptation.instruct import encode_example

    window = int(inputs.base_config["max_seq_len"])
    dropped = 0

    def encoded(recs: list[dict]) -> tuple[list[dict], list[Any]]:
        nonlocal dropped
        keep_r, keep_e = [], []
        for r in recs:
            ex = encode_example(inputs.encode, r["prompt"], r["response"], inputs.eos, cfg.separator)
            if len(ex.ids) > window + 1:  # the example does not fit the model's window
                dropped += 1
                continue
            keep_r.append(r)
            keep_e.append(ex)
        return keep_r, keep_e

    seen = set(cfg.seen_types)
    _, train = encoded([r for r in inputs.records["train"] if r["task_type"] in seen])
    if not train:
        raise ValueError(f"no training example of the seen types {sorted(seen)} fits the model's "
                         f"window of {window} tokens")
    eval_records, eval_examples = {}, {}
    for t in TASK_TYPES:
        splits = ("val", "test") if t in seen else ("train", "val", "test")
        recs = [r for s in splits for r in inputs.records.get(s, []) if r["task_type"] == t]
        rs, es = encoded(recs)
        eval_records[t], eval_examples[t] = rs[: cfg.eval_per_type], es[: cfg.eval_per_type]
    return _Data(train, eval_records, eval_examples, dropped)


def _evaluate(model, cfg: InstructConfig, inputs: Inputs, data: _Data) -> dict[str, Any]:
    """Exact match and response loss per task type (``nan`` for a type with no example)."""
    from nlpcurriculum.adaptation.instruct import greedy_responses, response_nll
    from nlpcurriculum.data.synthetic.instructions import is_correct

    out: dict[str, Any] = {"exact": {}, "nll": {}, "samples": {}}
    for t in TASK_TYPES:
        recs, exs = data.eval_records[t], data.eval_examples[t]
        if not exs:
            out["exact"][t] = out["nll"][t] = math.nan
            continue
        ids = greedy_responses(model, [e.prompt for e in exs], cfg.max_new_tokens, inputs.eos)
        texts = [inputs.decode(i) for i in ids]
        out["exact"][t] = float(np.mean([is_correct(r, s) for r, s in zip(recs, texts)]))
        out["nll"][t] = float(response_nll(model, exs, inputs.eos).mean())
        out["samples"][t] = (recs[0]["prompt"], recs[0]["response"], texts[0])
    return out


def _job(job: int, cfg: InstructConfig, inputs: Inputs, data: _Data, jobs: list[tuple[str, int]],
         keep: tuple[str, int]) -> dict[str, Any]:
    """One arm on one seed, in a worker: tune (unless ``base``), then evaluate."""
    import copy

    from nlpcurriculum.adaptation.instruct import InstructionBatcher
    from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
    from nlpcurriculum.training.trainer import Trainer, seed_everything

    arm, seed = jobs[job]
    with torch_threads(cfg.num_threads):
        seed_everything(seed)
        model = build_model(MiniFormerConfig.from_dict(inputs.base_config))
        model.load_state_dict(inputs.base_state)
        out: dict[str, Any] = {"history": []}
        if arm != "base":
            masked = arm == "masked"
            train = dataclasses.replace(cfg.train, seed=seed, progress=False)
            held = [e for t in cfg.seen_types for e in data.eval_examples[t]]
            batcher = InstructionBatcher(data.train, masked, inputs.eos, seed)
            val = InstructionBatcher(held, True, inputs.eos, seed) if held else None
            result = Trainer(model.train(), train, batcher, val).train()
            model.eval()
            out["history"] = [{k: v for k, v in h.items() if k != "tokens_per_s"}
                              for h in result.history]
            if (arm, seed) == keep:
                out["state"] = copy.deepcopy(model.state_dict())
                out["train"] = train
        out |= _evaluate(model, cfg, inputs, data)
        out["n_train"], out["dropped_long"] = len(data.train), data.dropped_long
        out["n_eval"] = {t: len(v) for t, v in data.eval_examples.items()}
    return out


def _macro(values: dict[str, float], types: list[str]) -> float:
    """Mean over the types that have examples."""
    vals = [values[t] for t in types if not math.isnan(values[t])]
    return float(np.mean(vals)) if vals else math.nan


def _figure(acc: dict[str, dict[str, np.ndarray]], unseen: list[str]) -> Figure:
    fig = Figure(figsize=(8.5, 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.27
    xs = np.arange(len(TASK_TYPES))
    for i, arm in enumerate(ARMS):
        means = [float(np.mean(acc[arm][t])) if not np.isnan(acc[arm][t]).all() else 0.0
                 for t in TASK_TYPES]  # a type without examples: no bar
        ax.bar(xs + (i - 1) * width, means, width, label=arm)
    ax.set_xticks(xs, [f"{t}\n(unseen)" if t in unseen else t for t in TASK_TYPES], fontsize=8)
    ax.set_ylabel("exact match (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.set_title("greedy exact match per task type: seen vs unseen instruction types", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def run(cfg: InstructConfig, inputs: Inputs, outputs: Outputs | None = None,
        log: Callable[[str], None] = print) -> list[ItemResult]:
    """Tune masked and unmasked on every seed, evaluate them and the base model per task type."""
    keep = ("masked", cfg.seeds[0])
    jobs = [("base", cfg.seeds[0])] + [(arm, s) for s in cfg.seeds for arm in ARMS[1:]]
    log(f"instruct: {len(jobs) - 1} runs of {cfg.train.max_steps} steps ({len(cfg.seeds)} seeds x "
        f"masked, unmasked), unseen types {cfg.unseen_types}, {cfg.workers} workers")
    data = _prepare(cfg, inputs)
    done = map_seeds(_job, list(range(len(jobs))), cfg.workers, cfg, inputs, data, jobs, keep)
    by = dict(zip(jobs, done))
    base = by[("base", cfg.seeds[0])]
    seen, unseen, n = cfg.seen_types, list(cfg.unseen_types), len(cfg.seeds)

    def get(arm: str, s: int) -> dict[str, Any]:
        return base if arm == "base" else by[(arm, s)]

    # arm -> type -> (seeds,)
    acc = {a: {t: np.array([get(a, s)["exact"][t] for s in cfg.seeds]) for t in TASK_TYPES} for a in ARMS}
    nll = {a: {t: np.array([get(a, s)["nll"][t] for s in cfg.seeds]) for t in TASK_TYPES} for a in ARMS}
    macro = {a: {g: np.array([_macro(get(a, s)["exact"], types) for s in cfg.seeds])
                 for g, types in (("seen", seen), ("unseen", unseen))} for a in ARMS}
    macro_nll = {a: {g: np.array([_macro(get(a, s)["nll"], types) for s in cfg.seeds])
                     for g, types in (("seen", seen), ("unseen", unseen))} for a in ARMS}

    metrics: dict[str, float] = {"train_examples": base["n_train"],
                                 "examples_too_long": base["dropped_long"]}
    for t in TASK_TYPES:
        metrics[f"eval_examples.{t}"] = base["n_eval"][t]
    for a in ARMS:
        for g in ("seen", "unseen"):
            metrics[f"{a}.exact_match.{g}"] = float(macro[a][g].mean())
            metrics[f"{a}.response_nll.{g}"] = float(macro_nll[a][g].mean())
            if a != "base":
                metrics[f"{a}.exact_match.{g}.se"] = float(macro[a][g].std(ddof=1) / math.sqrt(n))
        for t in TASK_TYPES:
            if base["n_eval"][t]:  # a type none of whose examples fits the window has no score
                metrics[f"{a}.exact_match.{t}"] = float(acc[a][t].mean())
                metrics[f"{a}.response_nll.{t}"] = float(nll[a][t].mean())

    c = cfg.checks
    findings = [
        Finding.compare(
            f"instruction tuning (response-masked loss) raises greedy exact match on held-out "
            f"inputs of the seen types {seen} (mean over types) above the base model's by more "
            f"than {c.min_seen_gain:g} ({n} seeds)",
            "seen_exact_match_gain", macro["masked"]["seen"], macro["base"]["seen"],
            margin=c.min_seen_gain, higher_is_better=True),
        Finding.compare(
            f"at this scale instruction tuning does not transfer exact match to the unseen types "
            f"{unseen}: masked - base stays below {c.max_unseen_gain:g} (FLAN: zero-shot gains "
            f"on held-out task clusters appear only at ~8B parameters)",
            "unseen_exact_match_gain", macro["masked"]["unseen"], macro["base"]["unseen"],
            margin=-c.max_unseen_gain, higher_is_better=False),
        Finding.compare(
            f"instruction tuning transfers the answer format: the teacher-forced response loss on "
            f"the unseen types {unseen} falls below the base model's by more than "
            f"{c.min_unseen_nll_gain:g} nats/token (masked - base)",
            "unseen_response_nll_change", macro_nll["masked"]["unseen"], macro_nll["base"]["unseen"],
            margin=c.min_unseen_nll_gain, higher_is_better=False),
        Finding.compare(
            f"masking the loss to the responses helps at an equal budget: the response loss on "
            f"held-out inputs of the seen types is below the unmasked ablation's by more than "
            f"{c.min_masking_gain:g} nats/token (masked - unmasked, paired by seed)",
            "masked_minus_unmasked_seen_nll", macro_nll["masked"]["seen"], macro_nll["unmasked"]["seen"],
            margin=c.min_masking_gain, higher_is_better=False),
    ]

    curves = {f"{a} seed {s}": curve(by[(a, s)]["history"]) for a in ARMS[1:] for s in cfg.seeds}
    series = {f"{a}.val_loss.seed{s}": curve(by[(a, s)]["history"]) for a in ARMS[1:] for s in cfg.seeds}
    series |= {f"{a}.train_loss.seed{s}": curve(by[(a, s)]["history"], "loss")
               for a in ARMS[1:] for s in cfg.seeds}
    figures = {
        "exact_match.png": _figure(acc, unseen),
        "val_loss_curves.png": plot_curves(
            curves, "response loss on held-out seen-type examples (masked targets)",
            ylabel="response loss (nats / token)"),
    }
    rows = [f"{'task type':<16} {'':<7} " + " ".join(f"{a + ' EM':>12} {a + ' nll':>13}" for a in ARMS)]
    for t in TASK_TYPES:
        rows.append(f"{t:<16} {'unseen' if t in unseen else 'seen':<7} " + " ".join(
            f"{acc[a][t].mean():>12.3f} {nll[a][t].mean():>13.3f}" for a in ARMS))
    for g in ("seen", "unseen"):
        rows.append(f"{'mean ' + g:<24} " + " ".join(
            f"{macro[a][g].mean():>12.3f} {macro_nll[a][g].mean():>13.3f}" for a in ARMS))
    samples = []
    tuned = by[keep]
    for t in TASK_TYPES:
        if t in tuned["samples"]:
            prompt, ref, got = tuned["samples"][t]
            samples.append(f"--- {t} ({'unseen' if t in unseen else 'seen'})\n{prompt}\n"
                           f"  reference: {ref!r}\n  masked seed {cfg.seeds[0]}: {got!r}\n"
                           f"  base: {base['samples'][t][2]!r}")
    text = (f"Instruction tuning on {base['n_train']} examples of {seen} for {cfg.train.max_steps} "
            f"steps; exact match (EM) and response loss (nll, nats/token), mean over seeds "
            f"{cfg.seeds}:\n" + "\n".join(rows) + "\n\nSamples (greedy):\n" + "\n".join(samples) + "\n")

    if outputs is not None:
        outputs.state, outputs.config = tuned["state"], dict(inputs.base_config)
        outputs.train, outputs.history = tuned["train"], tuned["history"]
    return [ItemResult(ITEMS[0], metrics=metrics, series=series, figures=figures,
                       texts={"instruct.txt": text}, findings=findings)]
