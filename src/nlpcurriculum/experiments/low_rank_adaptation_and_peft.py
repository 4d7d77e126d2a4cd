"""The curriculum experiments of section "Low-Rank Adaptation (LoRA) & PEFT" (items 1-3).

The task: the pipeline's base LM (``models/base``, a RoPE / RMSNorm / SwiGLU mini-former) adapted
to topic classification (:mod:`nlpcurriculum.data.synthetic.classification`, 5 topics, a share
``signal`` of each document's words drawn from its topic's list, the rest neutral filler),
tokenized with the pipeline's tokenizer. The output head is swapped for a classification head
``Linear(C, classes)`` read at the last real token (the documents are right-padded and attention
is causal, so the padding changes nothing before it). Every arm trains that head; what else it
trains is the arm:

* ``head``: nothing else (a linear probe of the frozen base): the control every gain is over;
* ``full``: every parameter (full fine-tuning), the reference gain;
* ``lora_r<r>``: LoRA (:mod:`nlpcurriculum.adaptation.lora`) on the fused Q/K/V projection of
  every block (``lora_targets``), rank ``r`` with ``alpha`` fixed;
* ``prefix``: prefix tuning (:mod:`nlpcurriculum.adaptation.prefix`), ``prefix_len`` key/value
  entries per layer;
* ``adapter``: bottleneck adapters (:mod:`nlpcurriculum.adaptation.bottleneck`) of width
  ``bottleneck`` after both sublayers of every block.

Trainable parameters are counted honestly: the denominator is what full fine-tuning trains (the
backbone with the classification head; the LM head it replaces is gone), the numerator every
tensor with ``requires_grad`` (the classification head included). Each seed fixes the head's
init, the adapters' init and the batch order, the same for every arm (paired comparisons); the
documents are the same for every seed; accuracy is measured on ``n_test`` held-out documents.

* ``low-rank-adaptation-and-peft/1`` (:func:`lora_item`): LoRA injected into the base model.
  Invariants on the real base with random (non-zero) factors: our LoRA equals ``peft``'s LoRA given
  the same ``A``, ``B`` (max |logit difference|), merged equals unmerged, our merge-and-unload
  equals peft's ``merge_and_unload`` (weights), unmerge restores the base weights, and the adapter
  saved alone and loaded into a fresh base gives the same outputs; the trainable count equals
  ``r (in + out)`` per adapted layer. The finding: LoRA at ``main_rank`` beats the frozen base's
  head-only probe by ``min_lora_gain`` (an adapter that never reached the forward pass, or a
  frozen ``B``, would not).
* ``low-rank-adaptation-and-peft/2`` (:func:`rank_item`): the rank sweep, accuracy against
  trainable parameters (plot), with full fine-tuning and the head-only probe. The target (the
  LoRA paper: full fine-tuning's quality from a sliver of the parameters) as two findings: LoRA
  at ``main_rank`` keeps ``min_gain_share`` of full fine-tuning's gain over the probe (per seed
  ``lora - head - share (full - head)``, paired, > 0 by 2 SE), with at most
  ``max_trainable_fraction`` of the parameters trainable.
* ``low-rank-adaptation-and-peft/3`` (:func:`methods_item`): LoRA at ``main_rank`` vs prefix
  tuning vs bottleneck adapters at about the same trainable budget (the counts are in the table);
  invariants: the prefix matches ``peft``'s prefix tuning given the same prefix, the adapters start
  as the identity and equal the hand-written formula. Findings: each method beats the probe by
  ``min_peft_gain``, and LoRA is not worse than each other method by more than
  ``max_method_gap`` (non-inferiority, paired).

Left out: generation tasks, QLoRA, learning-rate sweeps per rank (one learning rate per method,
fixed in params before the run), and the ``adapters`` package as an oracle (it does not install
beside this project's transformers).
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from nlpcurriculum.adaptation.bottleneck import BottleneckAdapter, inject_bottleneck
from nlpcurriculum.adaptation.lora import (
    LoRAConfig,
    LoRALinear,
    count_parameters,
    inject_lora,
    load_adapter,
    mark_only_trainable,
    merge_lora,
    save_adapter,
    unload_lora,
    unmerge_lora,
)
from nlpcurriculum.adaptation.prefix import inject_prefix, prefix_parameters
from nlpcurriculum.data.synthetic.classification import ClassificationConfig, generate, label_names
from nlpcurriculum.experiments.harness import map_seeds, torch_threads
from nlpcurriculum.results import Finding, ItemResult

__all__ = ["ITEMS", "Inputs", "LoRAExperimentConfig", "build_arm", "encode_documents",
           "lora_item", "methods_item", "rank_item", "run", "train_arm"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("low-rank-adaptation-and-peft/1", "low-rank-adaptation-and-peft/2",
                          "low-rank-adaptation-and-peft/3")


@dataclass
class LearningRates:
    """Peak AdamW learning rate per method (params ``lora.lr``), fixed before the run."""

    head: float = 0.1
    full: float = 0.001
    lora: float = 0.01
    prefix: float = 0.1
    adapter: float = 0.03


@dataclass
class LoRAChecks:
    """Bounds of the findings and tolerances of the invariants (params ``lora.checks``).

    Attributes:
        max_peft_diff: our LoRA vs peft's on the same factors, max |logit difference|.
        max_merge_diff: merged vs unmerged logits.
        max_roundtrip_diff: adapter saved alone, loaded into a fresh base, vs the original.
        max_prefix_peft_diff: our prefix vs peft's prefix tuning on the same prefix.
        max_adapter_formula_diff: our adapters vs the formula by hand.
        min_lora_gain: item 1: LoRA at ``main_rank`` minus head-only accuracy.
        min_gain_share: item 2: share of full fine-tuning's gain LoRA at ``main_rank`` keeps.
        max_trainable_fraction: item 2: LoRA at ``main_rank``, trainable / full fine-tuning's.
        min_peft_gain: item 3: each method's accuracy minus head-only.
        max_method_gap: item 3: how far below another method LoRA may lie.
    """

    max_peft_diff: float = 1e-6
    max_merge_diff: float = 1e-5
    max_roundtrip_diff: float = 1e-6
    max_prefix_peft_diff: float = 1e-5
    max_adapter_formula_diff: float = 1e-6
    min_lora_gain: float = 0.05
    min_gain_share: float = 0.99
    max_trainable_fraction: float = 0.01
    min_peft_gain: float = 0.05
    max_method_gap: float = 0.02


@dataclass
class LoRAExperimentConfig:
    """Knobs of :func:`run` (the ``lora`` params section).

    Attributes:
        n_train, n_test: documents to train on / to measure accuracy on (held out).
        signal: share of topic words in a document.
        min_words, max_words: document length in words.
        max_tokens: documents are cut to this many tokens.
        data_seed: seeds the documents (the same for every training seed).
        lora_targets: layer names LoRA adapts (``"qkv"``: every block's fused Q/K/V projection).
        lora_alpha: the LoRA scaling numerator, fixed across ranks.
        lora_dropout: dropout on the LoRA branch.
        ranks: the rank sweep (item 2).
        main_rank: the rank of items 1 and 3 (must be in ``ranks``).
        prefix_len: prefix tuning's entries per layer.
        bottleneck: the adapters' width.
        steps: optimizer updates per run.
        warmup_steps: linear warmup, then linear decay to 0.
        batch_size: documents per update.
        lr: peak learning rate per method.
        seeds: one run per arm per seed, compared paired.
        parity_rank: rank of the parity checks (factors random, not trained).
        workers: runs side by side in processes.
        threads: torch threads per run.
        checks: bounds of the findings.
    """

    n_train: int = 2000
    n_test: int = 1000
    signal: float = 0.35
    min_words: int = 8
    max_words: int = 20
    max_tokens: int = 32
    data_seed: int = 0
    lora_targets: list[str] = field(default_factory=lambda: ["qkv"])
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    ranks: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    main_rank: int = 8
    prefix_len: int = 16
    bottleneck: int = 8
    steps: int = 120
    warmup_steps: int = 12
    batch_size: int = 16
    lr: LearningRates = field(default_factory=LearningRates)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    parity_rank: int = 4
    workers: int = 2
    threads: int = 1
    checks: LoRAChecks = field(default_factory=LoRAChecks)

    def __post_init__(self) -> None:
        if self.main_rank not in self.ranks:
            raise ValueError(f"main_rank {self.main_rank} must be one of ranks {self.ranks}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least two distinct seeds, got {self.seeds}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps}")
        for name in ("n_train", "n_test", "max_tokens", "batch_size", "prefix_len", "bottleneck"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the base LM and the tokenizer's ``encode``."""

    base: nn.Module
    encode: Any  # text -> list of token ids


@dataclass(frozen=True)
class Encoded:
    """Right-padded token ids with their lengths and labels (picklable, for the workers)."""

    ids: Tensor  # (N, max_tokens) int64, padded with 0 after the document
    lengths: Tensor  # (N,) real tokens per row
    labels: Tensor  # (N,)


def encode_documents(docs: Sequence[dict], encode: Any, max_tokens: int) -> Encoded:
    """Tokenize, cut to ``max_tokens``, right-pad with id 0."""
    rows = [list(encode(d["text"]))[:max_tokens] for d in docs]
    ids = torch.zeros(len(rows), max_tokens, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    lengths = torch.tensor([max(len(r), 1) for r in rows])
    labels = torch.tensor([int(d["label"]) for d in docs])
    return Encoded(ids, lengths, labels)


# ------------------------------------------------------------------ the classifier and its arms


def classifier(base: nn.Module, n_classes: int) -> nn.Module:
    """A copy of the base LM whose output head is ``Linear(C, n_classes)`` (module swap)."""
    model = copy.deepcopy(base)
    model.lm_head = nn.Linear(model.config.d_model, n_classes)
    return model


def class_logits(model: nn.Module, ids: Tensor, lengths: Tensor) -> Tensor:
    """``(N, classes)``: the head's scores averaged over each row's real tokens.

    The head is linear, so this is the head applied to the mean final hidden state (mean
    pooling); attention is causal, so the padding after a document changes none of its tokens.
    """
    out = model(ids).logits  # (N, T, classes)
    real = (torch.arange(ids.size(1))[None, :] < lengths[:, None]).to(out.dtype)  # (N, T)
    return (out * real[..., None]).sum(1) / lengths[:, None].to(out.dtype)  # (N, classes)


def build_arm(arm: str, base: nn.Module, n_classes: int, cfg: LoRAExperimentConfig,
              seed: int) -> nn.Module:
    """The classifier of ``arm`` with exactly the arm's parameters trainable."""
    torch.manual_seed(seed)
    model = classifier(base, n_classes)
    if arm == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if arm.startswith("lora_r"):
        inject_lora(model, _lora_config(cfg, int(arm.removeprefix("lora_r"))))
        keep: tuple[str, ...] = ("lora_", "lm_head.")
    elif arm == "prefix":
        inject_prefix(model, cfg.prefix_len)
        keep = ("prefix_", "lm_head.")
    elif arm == "adapter":
        inject_bottleneck(model, model.config.d_model, cfg.bottleneck)
        keep = ("adapter.", "lm_head.")
    elif arm == "head":
        keep = ("lm_head.",)
    else:
        raise ValueError(f"unknown arm {arm!r}")
    mark_only_trainable(model, keep)
    return model


def _lora_config(cfg: LoRAExperimentConfig, r: int) -> LoRAConfig:
    return LoRAConfig(tuple(cfg.lora_targets), r, cfg.lora_alpha, cfg.lora_dropout)


@torch.no_grad()
def accuracy(model: nn.Module, data: Encoded, batch: int = 250) -> float:
    """Share of documents whose arg-max class is the label."""
    model.eval()
    right = 0
    for s in range(0, data.ids.size(0), batch):
        logits = class_logits(model, data.ids[s:s + batch], data.lengths[s:s + batch])
        right += int((logits.argmax(-1) == data.labels[s:s + batch]).sum())
    return right / data.ids.size(0)


def _lr_at(step: int, cfg: LoRAExperimentConfig) -> float:
    """Linear warmup to 1, then linear decay to 0 (a multiplier of the peak rate)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return max(0.0, (cfg.steps - step) / (cfg.steps - cfg.warmup_steps))


def train_arm(job: int, jobs: list[tuple[str, int]], base_state: dict[str, Any],
              cfg: LoRAExperimentConfig, train: Encoded, test: Encoded,
              n_classes: int) -> dict[str, float]:
    """Train job ``jobs[job] = (arm, seed)``; return its accuracy, counts and seconds per step.

    A module-level function of picklable arguments, for :func:`map_seeds`' worker processes.
    """
    from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig

    arm, seed = jobs[job]
    with torch_threads(cfg.threads):
        base = MiniFormer(MiniFormerConfig.from_dict(base_state["config"]))
        base.load_state_dict(base_state["weights"])
        model = build_arm(arm, base, n_classes, cfg, seed)
        params = [p for p in model.parameters() if p.requires_grad]
        lr = getattr(cfg.lr, arm.split("_")[0])
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(1000 + seed)  # the same batches for every arm of a seed
        model.train()
        started = time.perf_counter()
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr * _lr_at(step, cfg)
            idx = torch.randint(0, train.ids.size(0), (cfg.batch_size,), generator=g)
            loss = F.cross_entropy(class_logits(model, train.ids[idx], train.lengths[idx]),
                                   train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds = (time.perf_counter() - started) / cfg.steps
        acc = accuracy(model, test)
    return {"accuracy": acc, "trainable": float(count_parameters(model, trainable_only=True)),
            "final_loss": float(loss.detach()), "seconds_per_step": seconds}


# ------------------------------------------------------------------------------------- items


def _arms(cfg: LoRAExperimentConfig) -> list[str]:
    return ["head", "full", *[f"lora_r{r}" for r in cfg.ranks], "prefix", "adapter"]


def _pm(xs: Sequence[float]) -> str:
    se = float(np.std(xs, ddof=1) / math.sqrt(len(xs))) if len(xs) > 1 else float("nan")
    return f"{np.mean(xs):.4f} +- {se:.4f}"


def lora_item(cfg: LoRAExperimentConfig, base: nn.Module, test: Encoded, n_classes: int,
              runs: dict[str, list[dict[str, float]]], full_params: int) -> ItemResult:
    """Item 1: LoRA injected into the base model, checked against peft; trained at main_rank."""
    ck = cfg.checks
    r = cfg.parity_rank
    torch.manual_seed(12345)
    ids, lengths = test.ids[:16], test.lengths[:16]
    plain = classifier(base, n_classes).eval()
    ours = copy.deepcopy(plain)
    lcfg = _lora_config(cfg, r)
    names = inject_lora(ours, lcfg)
    with torch.no_grad():  # B = 0 would make every parity below vacuous: random factors
        for n in names:
            nn.init.normal_(ours.get_submodule(n).lora_B, std=0.02)
    counted = mark_only_trainable(ours, ("lora_",))
    formula = sum(r * (ours.get_submodule(n).in_features + ours.get_submodule(n).out_features)
                  for n in names)
    peft_diff, peft_unload_diff = _peft_lora_parity(plain, ours, names, lcfg, ids, lengths)
    with torch.no_grad():
        unmerged = class_logits(ours, ids, lengths)
        merge_lora(ours)
        merge_diff = float((class_logits(ours, ids, lengths) - unmerged).abs().max())
        unmerge_lora(ours)
        restore_diff = max(float((ours.get_submodule(n).base.weight
                                  - plain.get_submodule(n).weight).abs().max()) for n in names)
        buffer = io.BytesIO()
        adapter_bytes = save_adapter(ours, lcfg, buffer)
        buffer.seek(0)
        fresh = copy.deepcopy(plain)
        load_adapter(fresh, buffer)
        roundtrip_diff = float((class_logits(fresh, ids, lengths) - unmerged).abs().max())
    model_bytes = sum(t.numel() * t.element_size() for t in plain.state_dict().values())
    main = f"lora_r{cfg.main_rank}"
    lora_acc = [x["accuracy"] for x in runs[main]]
    head_acc = [x["accuracy"] for x in runs["head"]]
    findings = [
        Finding.invariant("our LoRA equals peft's LoRA given the same A and B (max |logit diff|)",
                          "peft_max_abs_diff", peft_diff, peft_diff <= ck.max_peft_diff,
                          ck.max_peft_diff),
        Finding.invariant("merged LoRA weights give the unmerged logits", "merge_max_abs_diff",
                          merge_diff, merge_diff <= ck.max_merge_diff, ck.max_merge_diff),
        Finding.invariant("our merge-and-unload equals peft's merge_and_unload (max |weight diff|)",
                          "merge_and_unload_max_abs_diff", peft_unload_diff,
                          peft_unload_diff <= ck.max_merge_diff, ck.max_merge_diff),
        Finding.invariant("unmerge restores the base weights", "unmerge_max_abs_diff",
                          restore_diff, restore_diff <= ck.max_merge_diff, ck.max_merge_diff),
        Finding.invariant("the adapter saved alone and loaded into a fresh base gives the same "
                          "logits", "adapter_roundtrip_max_abs_diff", roundtrip_diff,
                          roundtrip_diff <= ck.max_roundtrip_diff, ck.max_roundtrip_diff),
        Finding.invariant("trainable parameters = r (in + out) per adapted layer",
                          "trainable_minus_formula", counted - formula, counted == formula),
        Finding.compare(f"LoRA r={cfg.main_rank} on {cfg.lora_targets} beats the frozen base's "
                        "head-only probe (a LoRA branch that never reaches the forward pass "
                        "would tie it)", "lora_minus_head_accuracy", lora_acc, head_acc,
                        margin=ck.min_lora_gain),
    ]
    lora_trainable = runs[main][0]["trainable"]
    text = "\n".join([
        f"LoRA on {cfg.lora_targets} of every block ({len(names)} layers), alpha {cfg.lora_alpha}",
        f"parity at r={r} with random factors: peft max |logit diff| {peft_diff:.3g}, merged vs "
        f"unmerged {merge_diff:.3g}, merge_and_unload weights {peft_unload_diff:.3g}, "
        f"adapter round trip {roundtrip_diff:.3g}",
        f"adapter file {adapter_bytes} bytes vs classifier weights {model_bytes} bytes",
        f"r={cfg.main_rank}: {int(lora_trainable)} trainable of {full_params} "
        f"({lora_trainable / full_params:.2%}, classification head included)",
        f"accuracy over seeds {cfg.seeds}: LoRA r={cfg.main_rank} {_pm(lora_acc)}, "
        f"head-only {_pm(head_acc)}",
    ])
    return ItemResult(
        item=ITEMS[0],
        metrics={"peft_max_abs_diff": peft_diff, "merge_max_abs_diff": merge_diff,
                 "merge_and_unload_max_abs_diff": peft_unload_diff,
                 "unmerge_max_abs_diff": restore_diff, "adapter_roundtrip_max_abs_diff":
                 roundtrip_diff, "adapter_bytes": float(adapter_bytes),
                 "classifier_bytes": float(model_bytes), "lora_layers": float(len(names)),
                 "lora_trainable": lora_trainable, "full_trainable": float(full_params),
                 "trainable_fraction": lora_trainable / full_params,
                 "lora_accuracy": float(np.mean(lora_acc)),
                 "head_accuracy": float(np.mean(head_acc))},
        texts={"lora.txt": text + "\n"},
        findings=findings,
    )


def _peft_lora_parity(plain: nn.Module, ours: nn.Module, names: list[str], lcfg: LoRAConfig,
                      ids: Tensor, lengths: Tensor) -> tuple[float, float]:
    """peft's LoRA on a copy of ``plain`` with ``ours``' factors: (max logit diff, max weight
    diff of ``merge_and_unload`` against our unload)."""
    import peft

    pcfg = peft.LoraConfig(r=lcfg.r, lora_alpha=lcfg.alpha, lora_dropout=lcfg.dropout,
                           target_modules=list(lcfg.targets), init_lora_weights=False)
    theirs = peft.LoraModel(copy.deepcopy(plain), pcfg, "default")
    modules = dict(theirs.model.named_modules())
    with torch.no_grad():
        for n in names:
            mine: LoRALinear = ours.get_submodule(n)
            modules[n].lora_A["default"].weight.copy_(mine.lora_A)
            modules[n].lora_B["default"].weight.copy_(mine.lora_B)
        theirs.eval()
        diff = float((class_logits(theirs.model, ids, lengths)
                      - class_logits(ours, ids, lengths)).abs().max())
        unloaded = theirs.merge_and_unload()
        mine_unloaded = unload_lora(copy.deepcopy(ours))
        a, b = mine_unloaded.state_dict(), unloaded.state_dict()
        if set(a) != set(b):
            return diff, float("inf")
        wdiff = max(float((a[k] - b[k]).abs().max()) for k in a)
    return diff, wdiff


def rank_item(cfg: LoRAExperimentConfig, runs: dict[str, list[dict[str, float]]],
              full_params: int) -> ItemResult:
    """Item 2: accuracy against trainable parameters over the rank sweep, with full fine-tuning."""
    ck = cfg.checks
    head = np.array([x["accuracy"] for x in runs["head"]])
    full = np.array([x["accuracy"] for x in runs["full"]])
    rows, metrics = [], {}
    for r in cfg.ranks:
        acc = np.array([x["accuracy"] for x in runs[f"lora_r{r}"]])
        n = runs[f"lora_r{r}"][0]["trainable"]
        share = float(np.mean(acc - head) / np.mean(full - head)) if np.mean(full - head) else math.nan
        metrics[f"r{r}_accuracy"] = float(acc.mean())
        metrics[f"r{r}_trainable"] = n
        metrics[f"r{r}_gain_share"] = share
        rows.append(f"{'lora r=' + str(r):>12} {int(n):>10} {n / full_params:>9.3%} "
                    f"{_pm(acc.tolist()):>18} {share:>8.3f}")
    for arm, acc in (("full", full), ("head", head)):
        n = runs[arm][0]["trainable"]
        rows.append(f"{arm:>12} {int(n):>10} {n / full_params:>9.3%} {_pm(acc.tolist()):>18} "
                    f"{(1.0 if arm == 'full' else 0.0):>8.3f}")
    main = np.array([x["accuracy"] for x in runs[f"lora_r{cfg.main_rank}"]])
    fraction = runs[f"lora_r{cfg.main_rank}"][0]["trainable"] / full_params
    per_seed = (main - head - ck.min_gain_share * (full - head)).tolist()
    findings = [
        Finding.compare(f"LoRA r={cfg.main_rank} keeps >= {ck.min_gain_share:.0%} of full "
                        "fine-tuning's accuracy gain over the head-only probe (per seed: lora - "
                        "head - share (full - head) > 0; a rank too small to fit the task fails)",
                        "gain_share_excess", per_seed, None, margin=0.0),
        Finding.at_most(f"LoRA r={cfg.main_rank} trains at most "
                        f"{ck.max_trainable_fraction:.0%} of the parameters full fine-tuning "
                        "trains (classification head included)", "trainable_fraction",
                        fraction, ck.max_trainable_fraction),
    ]
    metrics.update({"full_accuracy": float(full.mean()), "head_accuracy": float(head.mean()),
                    "full_trainable": float(full_params), "main_trainable_fraction": fraction,
                    "main_gain_share": metrics[f"r{cfg.main_rank}_gain_share"]})
    header = f"{'arm':>12} {'trainable':>10} {'fraction':>9} {'accuracy (mean +- SE)':>18} {'gain share':>8}"
    text = (f"rank sweep, LoRA on {cfg.lora_targets}, alpha {cfg.lora_alpha}, seeds {cfg.seeds}, "
            f"{cfg.n_test} held-out documents\n{header}\n" + "\n".join(rows) + "\n")
    return ItemResult(item=ITEMS[1], metrics=metrics, texts={"rank_sweep.txt": text},
                      figures={"accuracy_vs_params.png": _sweep_figure(cfg, runs)},
                      findings=findings)


def _sweep_figure(cfg: LoRAExperimentConfig, runs: dict[str, list[dict[str, float]]]) -> Figure:
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()

    def point(arm: str) -> tuple[float, float, float]:
        acc = [x["accuracy"] for x in runs[arm]]
        se = float(np.std(acc, ddof=1) / math.sqrt(len(acc)))
        return runs[arm][0]["trainable"], float(np.mean(acc)), se

    xs, ys, es = zip(*(point(f"lora_r{r}") for r in cfg.ranks))
    ax.errorbar(xs, ys, yerr=[2 * e for e in es], marker="o", capsize=3, label="LoRA (r = 1 .. 64)")
    for r, x, y in zip(cfg.ranks, xs, ys):
        ax.annotate(f"r={r}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for arm, style in (("full", "s"), ("head", "v"), ("prefix", "^"), ("adapter", "D")):
        x, y, e = point(arm)
        ax.errorbar([x], [y], yerr=[2 * e], marker=style, capsize=3, linestyle="none",
                    label={"full": "full fine-tuning", "head": "head only (frozen base)",
                           "prefix": f"prefix ({cfg.prefix_len})",
                           "adapter": f"adapter (m={cfg.bottleneck})"}[arm])
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("held-out accuracy (mean, +- 2 SE)")
    ax.set_title("topic classification from the base LM: accuracy vs trainable parameters")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def methods_item(cfg: LoRAExperimentConfig, base: nn.Module, test: Encoded, n_classes: int,
                 runs: dict[str, list[dict[str, float]]], full_params: int) -> ItemResult:
    """Item 3: LoRA vs prefix tuning vs bottleneck adapters at about the same trainable budget."""
    ck = cfg.checks
    prefix_diff, shifted_off_diff = _peft_prefix_parity(base, cfg.prefix_len, test)
    identity_diff, formula_diff = _adapter_checks(base, cfg.bottleneck, test)
    main = f"lora_r{cfg.main_rank}"
    acc = {m: [x["accuracy"] for x in runs[m]] for m in (main, "prefix", "adapter", "head", "full")}
    findings = [
        Finding.invariant("our prefix tuning equals peft's (past key/values, positions shifted "
                          "by the prefix) given the same prefix (float64; the residual is the "
                          "float32 RoPE tables both build)", "prefix_peft_max_abs_diff",
                          prefix_diff, prefix_diff <= ck.max_prefix_peft_diff,
                          ck.max_prefix_peft_diff),
        Finding.invariant("zero-initialised bottleneck adapters leave the base model's logits "
                          "unchanged", "adapter_identity_max_abs_diff", identity_diff,
                          identity_diff <= ck.max_adapter_formula_diff, ck.max_adapter_formula_diff),
        Finding.invariant("the adapted block equals the adapter formula written out by hand",
                          "adapter_formula_max_abs_diff", formula_diff,
                          formula_diff <= ck.max_adapter_formula_diff, ck.max_adapter_formula_diff),
    ]
    for m in (main, "prefix", "adapter"):
        findings.append(Finding.compare(
            f"{m} beats the head-only probe at its budget", f"{m}_minus_head_accuracy",
            acc[m], acc["head"], margin=ck.min_peft_gain))
    for m in ("prefix", "adapter"):
        findings.append(Finding.compare(
            f"LoRA r={cfg.main_rank} is not worse than {m} by more than {ck.max_method_gap} "
            "(non-inferiority, paired)", f"lora_minus_{m}_accuracy", acc[main], acc[m],
            margin=-ck.max_method_gap))
    rows = []
    metrics: dict[str, float] = {"prefix_peft_max_abs_diff": prefix_diff,
                                 "prefix_unshifted_vs_peft_max_abs_diff": shifted_off_diff,
                                 "adapter_identity_max_abs_diff": identity_diff,
                                 "adapter_formula_max_abs_diff": formula_diff}
    timings: dict[str, float] = {}
    for m in (main, "prefix", "adapter", "head", "full"):
        n = runs[m][0]["trainable"]
        metrics[f"{m}_accuracy"] = float(np.mean(acc[m]))
        metrics[f"{m}_trainable"] = n
        timings[f"{m}_seconds_per_step"] = float(np.median([x["seconds_per_step"] for x in runs[m]]))
        rows.append(f"{m:>10} {int(n):>9} {n / full_params:>8.3%} {_pm(acc[m]):>18} "
                    f"{timings[f'{m}_seconds_per_step'] * 1000:>8.1f}")
    header = f"{'method':>10} {'trainable':>9} {'fraction':>8} {'accuracy (mean +- SE)':>18} {'ms/step':>8}"
    text = (f"methods at a matched budget: LoRA r={cfg.main_rank} on {cfg.lora_targets}, prefix "
            f"{cfg.prefix_len} per layer, adapters m={cfg.bottleneck} after both sublayers\n"
            f"{header}\n" + "\n".join(rows) + "\n"
            f"prefix vs peft: {prefix_diff:.3g} (positions shifted as peft does); without the "
            f"shift {shifted_off_diff:.3g}\n")
    return ItemResult(item=ITEMS[2], metrics=metrics, timings=timings,
                      texts={"methods.txt": text}, findings=findings)


def _peft_prefix_parity(base: nn.Module, n_prefix: int, test: Encoded) -> tuple[float, float]:
    """Max |logit diff| of our prefix vs peft's on the base LM as HF Llama (both in float64),
    with the positions shifted (peft's layout) and without the shift (which does not match for
    RoPE)."""
    import peft

    from nlpcurriculum.models.hf_interop import to_hf_llama

    ids = test.ids[:4, :16]
    plain = copy.deepcopy(base).double().eval()  # float64: the check is sharp, not fp32 noise
    hf = to_hf_llama(plain).double().eval()
    theirs = peft.get_peft_model(hf, peft.PrefixTuningConfig(task_type="CAUSAL_LM",
                                                             num_virtual_tokens=n_prefix)).double()
    cfg = plain.config
    table = theirs.prompt_encoder["default"].embedding.weight.detach()  # (n, L * 2 * nkv * hs)
    layout = table.view(n_prefix, cfg.n_layers, 2, cfg.n_kv_heads, cfg.head_dim)
    diffs = []
    with torch.no_grad():
        reference = theirs(input_ids=ids).logits
        for shift in (True, False):
            ours = copy.deepcopy(plain)
            inject_prefix(ours, n_prefix, shift_positions=shift)
            for layer, (pk, pv) in enumerate(prefix_parameters(ours)):
                pk.copy_(layout[:, layer, 0].transpose(0, 1))  # (nkv, n, hs)
                pv.copy_(layout[:, layer, 1].transpose(0, 1))
            diffs.append(float((ours.eval()(ids).logits - reference).abs().max()))
    return diffs[0], diffs[1]


def _adapter_checks(base: nn.Module, bottleneck: int, test: Encoded) -> tuple[float, float]:
    """(identity diff at zero init, diff of one adapted block vs the formula by hand)."""
    ids = test.ids[:4, :16]
    plain = copy.deepcopy(base).eval()
    adapted = copy.deepcopy(base).eval()
    C = plain.config.d_model
    inject_bottleneck(adapted, C, bottleneck)
    with torch.no_grad():
        identity = float((adapted(ids).logits - plain(ids).logits).abs().max())
        torch.manual_seed(7)
        for m in adapted.modules():
            if isinstance(m, BottleneckAdapter):
                nn.init.normal_(m.up.weight, std=0.1)
                nn.init.normal_(m.up.bias, std=0.1)
        x = plain.tok_emb(ids)  # (B, T, C)
        blk, ref = adapted.blocks[0], plain.blocks[0]
        got, _ = blk(x, position=plain.position)

        def adapter(a: BottleneckAdapter, h: Tensor) -> Tensor:  # the formula, written out
            return h + F.gelu(h @ a.down.weight.T + a.down.bias) @ a.up.weight.T + a.up.bias

        y, _ = ref.attn(ref.norm1(x), position=plain.position)
        h = x + adapter(blk.attn.adapter, y)
        want = h + adapter(blk.mlp.adapter, ref.mlp(ref.norm2(h)))
        formula = float((got - want).abs().max())
    return identity, formula


def run(cfg: LoRAExperimentConfig, inputs: Inputs) -> list[ItemResult]:
    """Items 1-3 (see the module docstring)."""
    docs = generate(ClassificationConfig(n=cfg.n_train + cfg.n_test, task="topic",
                                         signal=cfg.signal, min_words=cfg.min_words,
                                         max_words=cfg.max_words), seed=cfg.data_seed)
    n_classes = len(label_names("topic"))
    train = encode_documents(docs[:cfg.n_train], inputs.encode, cfg.max_tokens)
    test = encode_documents(docs[cfg.n_train:], inputs.encode, cfg.max_tokens)
    base = inputs.base.eval()
    base_state = {"config": _config_dict(base), "weights": base.state_dict()}
    jobs = [(arm, seed) for arm in _arms(cfg) for seed in cfg.seeds]
    with torch_threads(cfg.threads):
        full_params = count_parameters(classifier(base, n_classes))
    results = map_seeds(train_arm, list(range(len(jobs))), cfg.workers, jobs, base_state, cfg,
                        train, test, n_classes)
    runs: dict[str, list[dict[str, float]]] = {}
    for (arm, _), res in zip(jobs, results):
        runs.setdefault(arm, []).append(res)
    with torch_threads(cfg.threads):
        return [lora_item(cfg, base, test, n_classes, runs, full_params),
                rank_item(cfg, runs, full_params),
                methods_item(cfg, base, test, n_classes, runs, full_params)]


def _config_dict(model: nn.Module) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(model.config)
