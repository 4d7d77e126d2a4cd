"""Experiments of "Pretraining Objectives": masked vs causal vs prefix LM at equal compute.

1. *Train masked LM vs causal LM vs prefix LM on toy text* (:func:`training_item`): three byte-level
   mini-formers of the same shape (vocabulary 257: the 256 bytes plus ``[MASK]``) trained on the
   same windows of the corpus, the same steps, batch and learning rate, with the three losses of
   :mod:`nlpcurriculum.training.objectives`. Each objective's own training loss is plotted; they
   are *not* comparable with each other (MLM scores 15% of the positions, the prefix LM about
   half), which is why item 2 defines shared probes. Equal tokens and equal parameter counts are
   invariants; the finding is a measured difference between two objectives on the use both are
   trained for, continuing a prompt: at equal compute the causal LM (every position scored)
   reaches a lower held-out continuation loss than the prefix LM (only the continuation scored),
   over several seeds (``compare_seeds``, paired: same initialisation and windows per seed).
   The MLM uses RoPE because with learned positions it sat at the most-frequent-byte plateau for
   500 steps: a choice made after a failure, so it is re-measured on fresh seeds (``fresh_seeds``,
   never used while choosing) and on the *test* split: the MLM with RoPE against the MLM with
   learned positions (the configuration that failed), paired by seed.
2. *Plot loss curves; compare which learns "English" faster* (:func:`probes_item`). "Learns
   English faster" is measured on held-out (validation) text with probes all three can answer:

   - **next-byte probe** (every evaluation step): predict the last byte of a held-out window from
     the bytes before it. Causal LM: its last position. Prefix LM: the whole context as a
     bidirectional prefix. MLM: the context followed by one ``[MASK]`` (a masked last position
     occurs in its training too). Accuracy and loss over the 256 bytes. *Faster* = the higher
     mean accuracy over the evaluation steps (area under the accuracy-vs-step curve / steps),
     and the final accuracy.
   - **continuation loss** (causal and prefix only): the first half of a window as the prompt,
     loss on the second half, as a language model is used. MLM has no left-to-right
     factorisation to score, so it has no value here.
   - **two-sided cloze** (at the end): one byte in the middle of a held-out span is hidden; the
     MLM reads both sides natively (``[MASK]`` in place); the causal and prefix LMs score each of
     the 256 candidates by the likelihood of the candidate *and the bytes after it* (the whole
     span's log-probability; for the prefix LM the left context is its prefix) and pick the best.
     The same hidden positions are also scored from the left context alone (top-1), so the gain
     from the right context is visible.

   The comparisons run over ``compare_seeds`` (all three objectives trained per seed, paired by
   seed), against controls: the most-frequent-byte guess, and the randomly initialised model of
   the same seed (the probe at step 0; for the cloze, the untrained MLM's right-context gain).
3. *Generate samples from each, note quirks* (:func:`samples_item`): greedy and temperature
   continuations of held-out prompts from the causal and prefix LMs (the prompt is the prefix LM's
   bidirectional prefix); for the MLM, iterative unmasking (Ghazvininejad et al. 2019,
   Mask-Predict: the prompt followed by ``[MASK]`` s, each pass fills the masked position the model
   is most confident about). The quirks are computed, not eyeballed: repeated 4-gram rate,
   invalid UTF-8 sequences, non-printable bytes, longest run of one byte, and for the MLM how
   often the fill order was not left to right. The finding: greedy decoding repeats itself more
   than temperature sampling, measured on ``repeat_prompts`` held-out prompts per seed's causal LM.

Byte tokens: losses are nats per byte.

Left out: span corruption and encoder-decoder T5, fine-tuning the three on a downstream task,
scaling the comparison with model size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.decoding.generate import generate
from nlpcurriculum.decoding.samplers import SamplerConfig
from nlpcurriculum.experiments.harness import BYTE_VOCAB, CorpusSplits, byte_tokens, torch_threads
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.objectives import (
    MASK_ID,
    OBJECTIVES,
    objective_loss,
    prefix_lm_mask,
)
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "Inputs",
    "ObjectiveRun",
    "PretrainingObjectivesConfig",
    "cloze_probe",
    "continuation_loss",
    "fresh_mlm_check",
    "lm_generate",
    "mlm_unmask",
    "next_byte_probe",
    "quirks",
    "repeat_rates",
    "run",
    "seed_measures",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "train": "pretraining-objectives/1",
    "probes": "pretraining-objectives/2",
    "samples": "pretraining-objectives/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())
VOCAB = BYTE_VOCAB + 1  # bytes + [MASK]


@dataclass
class PretrainingObjectivesChecks:
    """Bounds of the findings that no knob above sets (params ``pretraining_objectives.checks``).

    Attributes:
        max_tokens_seen_spread: item 1: max - min tokens seen by the three runs.
        max_params_spread: item 1: max - min parameter count of the three models.
        min_causal_minus_mlm_auc: item 2: mean held-out next-byte accuracy over probe steps, causal
            minus MLM (mean over ``compare_seeds``, paired, beyond two standard errors).
        min_prefix_minus_causal_continuation: item 1: held-out continuation loss of the prefix LM
            minus the causal LM's (nats/byte, mean over ``compare_seeds``, beyond two standard
            errors).
        min_greedy_minus_sampled_repeat: item 3: repeated-4-gram rate of greedy decoding minus
            sampling's (causal LM, pooled over ``repeat_prompts`` prompts, mean over
            ``compare_seeds``, beyond two standard errors).
        min_rope_minus_learned_mlm_acc: item 1: fresh seeds, test split: the RoPE MLM's final
            next-byte accuracy minus the learned-position MLM's (paired by seed).
    """

    max_tokens_seen_spread: float = 0.0
    max_params_spread: float = 0.0
    min_causal_minus_mlm_auc: float = 0.02
    min_greedy_minus_sampled_repeat: float = 0.05
    min_prefix_minus_causal_continuation: float = 0.02
    min_rope_minus_learned_mlm_acc: float = 0.02


@dataclass(kw_only=True)
class PretrainingObjectivesConfig:
    """The ``pretraining_objectives`` section of params/pretraining_objectives.yaml.

    Attributes:
        model: the shared architecture; ``vocab_size`` must be 257 (bytes + ``[MASK]``); its
            ``causal`` is set per objective (False for the MLM).
        train: the trainer knobs, the same for every objective (``eval_every``: probe interval).
        seq_len: training window T in bytes (the same windows for all three).
        mask_prob: MLM selection rate (BERT: 0.15).
        seed: model initialisation seed (the same for every objective).
        num_threads: torch intra-op threads.
        probe_windows: held-out windows of the next-byte probe and the continuation loss.
        cloze_probes: held-out spans of the two-sided cloze.
        cloze_left, cloze_right: bytes left / right of the hidden byte.
        sample_prompts: held-out prompts per sampling method.
        prompt_len: bytes of each prompt.
        sample_len: bytes generated per sample.
        temperature: sampling temperature (besides greedy).
        compare_seeds: seeds (``seed`` replaced) of every comparison of items 1-3: the three
            objectives are trained (and probed) once per seed; ``seed``'s runs are the main ones,
            whose curves, cloze and samples are shown. At least 2 distinct seeds.
        fresh_seeds: item 1: seeds never used while choosing the configuration, on which the MLM
            is retrained with the chosen RoPE and with learned positions and probed on the test
            split (empty: skipped). Disjoint from ``compare_seeds``.
        repeat_prompts: item 3: held-out prompts per seed of the greedy vs sampling finding.
        min_gain_over_unigram: item 2: every objective's final next-byte accuracy must beat the
            most-frequent-byte baseline by this much.
        min_right_context_gain: item 2: the MLM's two-sided cloze accuracy must beat its
            left-only accuracy by this much.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 64
    mask_prob: float = 0.15
    seed: int = 0
    num_threads: int = 1
    probe_windows: int = 256
    cloze_probes: int = 64
    cloze_left: int = 24
    cloze_right: int = 8
    sample_prompts: int = 3
    prompt_len: int = 24
    sample_len: int = 32
    temperature: float = 0.8
    compare_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fresh_seeds: list[int] = field(default_factory=lambda: [10, 11, 12])
    repeat_prompts: int = 16
    min_gain_over_unigram: float = 0.05
    min_right_context_gain: float = 0.01
    checks: PretrainingObjectivesChecks = field(default_factory=PretrainingObjectivesChecks)

    def __post_init__(self) -> None:
        m = self.model
        if m.vocab_size != VOCAB:
            raise ValueError(f"model.vocab_size must be {VOCAB} (256 bytes + [MASK]), got {m.vocab_size}")
        if not 4 <= self.seq_len <= m.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [4, model.max_seq_len={m.max_seq_len}]")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        for name in ("num_threads", "probe_windows", "cloze_probes", "cloze_left", "cloze_right",
                     "sample_prompts", "prompt_len", "sample_len", "repeat_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cloze_left + 1 + self.cloze_right > m.max_seq_len:
            raise ValueError("cloze_left + 1 + cloze_right must fit model.max_seq_len")
        if self.prompt_len + self.sample_len > m.max_seq_len:
            raise ValueError("prompt_len + sample_len must fit model.max_seq_len")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.train.eval_every < 1:
            raise ValueError("train.eval_every must be >= 1 (it is the probe interval)")
        if len(set(self.compare_seeds)) < 2 or len(set(self.compare_seeds)) != len(self.compare_seeds):
            raise ValueError(f"compare_seeds must be at least 2 distinct seeds, got {self.compare_seeds}")
        fresh = self.fresh_seeds
        if fresh and (len(set(fresh)) < 2 or len(set(fresh)) != len(fresh)
                      or set(fresh) & set(self.compare_seeds)):
            raise ValueError(f"fresh_seeds must be [] or at least 2 distinct seeds not in "
                             f"compare_seeds, got {fresh}")
        if fresh and self.model.position == "learned":
            raise ValueError("fresh_seeds compares model.position with learned positions: "
                             "model.position must be another scheme, got 'learned'")


# ---------------------------------------------------------------------------------------------
# probes


_SMALL_VAL = ("add documents or raise splits.val_fraction, or lower pretraining_objectives.seq_len, "
              "cloze_left, cloze_right or prompt_len")


def _windows(stream: Tensor, length: int, n: int, split: str = "val") -> Tensor:
    """``n`` non-overlapping windows of ``length`` tokens from the start of ``stream``: ``(n', L)``."""
    n = min(n, stream.numel() // length)
    if n < 1:
        raise CorpusTooSmallError(f"the {split} split ({stream.numel()} bytes) is too short for "
                                  f"windows of {length} bytes: "
                                  + (_SMALL_VAL if split == "val" else
                                     f"add documents or raise splits.{split}_fraction, or lower "
                                     "pretraining_objectives.seq_len"))
    return stream[: n * length].view(n, length)


def _prompts(stream: Tensor, length: int, n: int) -> Tensor:
    """``n`` prompts spread evenly over ``stream``, each starting after a space: ``(n, L)``."""
    last = stream.numel() - 2 * length
    if last < 1:
        raise CorpusTooSmallError(f"the val split ({stream.numel()} bytes) is too short for "
                                  f"prompts of {length} bytes: {_SMALL_VAL}")
    rows = []
    for i in range(n):
        start = i * last // n
        spaces = (stream[start:start + length] == ord(" ")).nonzero()
        start += int(spaces[0]) + 1 if len(spaces) else 0
        rows.append(stream[start:start + length])
    return torch.stack(rows)  # (n, L)


@torch.no_grad()
def next_byte_probe(model: MiniFormer, objective: str, windows: Tensor) -> tuple[float, float]:
    """Accuracy and loss (nats) of predicting each window's last byte from the bytes before it.

    Args:
        model: a model trained with ``objective``.
        objective: ``"causal"``, ``"mlm"`` or ``"prefix"`` (decides how the context is presented).
        windows: ``(N, L)`` held-out byte ids; the context is ``[:, :-1]``, the target ``[:, -1]``.
    """
    ctx, target = windows[:, :-1], windows[:, -1]
    N, Tc = ctx.shape
    if objective == "causal":
        logits = model(ctx).logits[:, -1]  # (N, V)
    elif objective == "prefix":
        mask = prefix_lm_mask(torch.full((N,), Tc), Tc)  # the whole context is the prefix
        logits = model(ctx, attn_mask=mask).logits[:, -1]
    else:
        inp = torch.cat([ctx, torch.full((N, 1), MASK_ID)], dim=1)  # (N, Tc+1): [MASK] at the end
        logits = model(inp).logits[:, -1]
    logits = logits[:, :BYTE_VOCAB]  # score over the bytes only
    acc = float((logits.argmax(-1) == target).float().mean())
    loss = float(F.cross_entropy(logits, target))
    return acc, loss


@torch.no_grad()
def continuation_loss(model: MiniFormer, objective: str, windows: Tensor) -> float:
    """Mean loss on the second half of each ``(N, L)`` window given the first half as the prompt.

    Causal: plain next-token loss on those positions. Prefix: the first half is the prefix.
    """
    if objective == "mlm":
        raise ValueError("continuation_loss is defined for the causal and prefix objectives only")
    x, y = windows[:, :-1], windows[:, 1:]
    N, T = x.shape
    P = T // 2
    mask = prefix_lm_mask(torch.full((N,), P), T) if objective == "prefix" else None
    logits = model(x, attn_mask=mask).logits[:, :, :BYTE_VOCAB]  # (N, T, 256)
    return float(F.cross_entropy(logits[:, P - 1:].reshape(-1, BYTE_VOCAB), y[:, P - 1:].reshape(-1)))


@torch.no_grad()
def _span_logprob(model: MiniFormer, objective: str, seqs: Tensor, start: int) -> Tensor:
    """Sum of ``log p(seq[t] | ...)`` for ``t >= start``: ``(N,)``; prefix = ``seq[:start]``."""
    x, y = seqs[:, :-1], seqs[:, 1:]
    N, T = x.shape
    mask = prefix_lm_mask(torch.full((N,), start), T) if objective == "prefix" else None
    logp = model(x, attn_mask=mask).logits[:, :, :BYTE_VOCAB].log_softmax(-1)  # (N, T, 256)
    tok = logp.gather(-1, y[..., None])[..., 0]  # (N, T): log p of each next byte
    return tok[:, start - 1:].sum(-1)


@torch.no_grad()
def cloze_probe(model: MiniFormer, objective: str, spans: Tensor, left: int) -> tuple[float, float]:
    """Two-sided and left-only accuracy of recovering the byte at index ``left`` of each span.

    MLM: ``[MASK]`` at the hidden position, with (two-sided) or without (left-only) the bytes
    after it. Causal / prefix: two-sided = the candidate (of 256) maximising the log-probability
    of itself and every later byte of the span; left-only = the top-1 next byte after the left
    context.

    Args:
        spans: ``(N, L)`` held-out byte ids, ``L > left``.
        left: index of the hidden byte (its left context length).

    Returns:
        ``(two_sided_accuracy, left_only_accuracy)``.
    """
    N, L = spans.shape
    target = spans[:, left]
    if objective == "mlm":
        masked = spans.clone()
        masked[:, left] = MASK_ID
        two = model(masked).logits[:, left, :BYTE_VOCAB].argmax(-1)
        one = model(masked[:, : left + 1]).logits[:, left, :BYTE_VOCAB].argmax(-1)
    else:
        two = torch.zeros(N, dtype=torch.long)
        ctx = spans[:, :left]  # (N, left): the left context
        if objective == "prefix":
            logits = model(ctx, attn_mask=prefix_lm_mask(torch.full((N,), left), left)).logits
        else:
            logits = model(ctx).logits
        one = logits[:, -1, :BYTE_VOCAB].argmax(-1)
        cands = torch.arange(BYTE_VOCAB)
        for i in range(N):
            seqs = spans[i].repeat(BYTE_VOCAB, 1)  # (256, L): one row per candidate
            seqs[:, left] = cands
            two[i] = int(_span_logprob(model, objective, seqs, left).argmax())
    return float((two == target).float().mean()), float((one == target).float().mean())


# ---------------------------------------------------------------------------------------------
# generation


@torch.no_grad()
def lm_generate(model: MiniFormer, objective: str, prompt: Tensor, n: int, temperature: float,
                generator: torch.Generator) -> list[int]:
    """Continue ``prompt`` (1-D ids) by ``n`` bytes; ``temperature`` 0 = greedy.

    The prefix LM reads the prompt as its bidirectional prefix; generated bytes are causal.
    """
    P = prompt.numel()

    def next_logits(ids: Tensor) -> Tensor:  # (1, T) -> (1, 256): scores over the bytes only
        mask = prefix_lm_mask(torch.tensor([P]), ids.size(1)) if objective == "prefix" else None
        return model(ids, attn_mask=mask).logits[:, -1, :BYTE_VOCAB]

    return generate(model, prompt, n, sampler=SamplerConfig(temperature=temperature),
                    generator=generator, next_logits=next_logits)


@torch.no_grad()
def mlm_unmask(model: MiniFormer, prompt: Tensor, n: int) -> tuple[list[int], list[int]]:
    """Iterative unmasking: ``prompt + [MASK] * n``; each pass fills the most confident mask.

    Returns:
        ``(bytes, order)``: the ``n`` filled bytes and the fill order (offsets into them).
    """
    ids = torch.cat([prompt, torch.full((n,), MASK_ID)])[None]  # (1, P + n)
    P = prompt.numel()
    order: list[int] = []
    for _ in range(n):
        probs = model(ids).logits[0, :, :BYTE_VOCAB].softmax(-1)  # (T, 256)
        conf, best = probs.max(-1)  # (T,)
        masked = ids[0] == MASK_ID
        conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
        pos = int(conf.argmax())
        ids[0, pos] = best[pos]
        order.append(pos - P)
    return ids[0, P:].tolist(), order


def quirks(samples: Sequence[bytes]) -> dict[str, float]:
    """Computed properties of generated byte strings.

    - ``repeat_4gram_rate``: 1 - distinct 4-grams / 4-grams (0 = no repetition);
    - ``invalid_utf8_per_byte``: U+FFFD replacements when decoding, per byte;
    - ``nonprintable_rate``: bytes outside printable ASCII, tab and newline (counts UTF-8
      continuation bytes too);
    - ``longest_run``: the longest run of one repeated byte;
    - ``space_rate``: share of spaces (English is ~17%).
    """
    grams: list[bytes] = [s[i:i + 4] for s in samples for i in range(len(s) - 3)]
    total = sum(len(s) for s in samples) or 1
    invalid = sum(s.decode("utf-8", errors="replace").count("\ufffd") for s in samples)
    printable = set(range(32, 127)) | {9, 10}
    nonprint = sum(1 for s in samples for b in s if b not in printable)
    run = 0
    for s in samples:
        cur = 0
        for i, b in enumerate(s):
            cur = cur + 1 if i and s[i - 1] == b else 1
            run = max(run, cur)
    return {
        "repeat_4gram_rate": 1 - len(set(grams)) / len(grams) if grams else 0.0,
        "invalid_utf8_per_byte": invalid / total,
        "nonprintable_rate": nonprint / total,
        "longest_run": float(run),
        "space_rate": sum(s.count(b" ") for s in samples) / total,
    }


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class ObjectiveRun:
    """One trained objective: model, training history and probe curves."""

    objective: str
    model: MiniFormer
    history: list[dict[str, float]]
    tokens_seen: int
    probes: dict[str, list[tuple[int, float]]]


def train_objective(objective: str, cfg: PretrainingObjectivesConfig, train_tokens: Tensor,
                    probe_windows: Tensor, probes_on: bool = True,
                    position: str | None = None) -> ObjectiveRun:
    """Train one objective; every ``train.eval_every`` steps run the held-out probes.

    With ``probes_on=False`` no probe runs (the probes touch no random state, so the trained model
    is the same) and ``probes`` stays empty. ``position`` replaces ``model.position``.
    """
    model_cfg = replace(cfg.model, causal=objective != "mlm",
                        position=position or cfg.model.position)
    seed_everything(cfg.seed)
    model = build_model(model_cfg)
    batcher = TokenBatcher(train_tokens, cfg.seq_len, seed=cfg.seed)  # same windows for all three
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    probes: dict[str, list[tuple[int, float]]] = {"next_byte_acc": [], "next_byte_loss": [],
                                                   "continuation_loss": []}

    def probe(step: int) -> None:
        model.eval()
        acc, loss = next_byte_probe(model, objective, probe_windows)
        probes["next_byte_acc"].append((step, acc))
        probes["next_byte_loss"].append((step, loss))
        if objective != "mlm":
            probes["continuation_loss"].append((step, continuation_loss(model, objective, probe_windows)))
        model.train()

    def on_step(step: int, metrics: dict[str, float]) -> None:
        if step % cfg.train.eval_every == 0 or step == cfg.train.max_steps:
            probe(step)

    if probes_on:
        probe(0)
    trainer = Trainer(model, cfg.train, batcher, None, on_step=on_step if probes_on else None,
                      loss_fn=objective_loss(objective, gen, cfg.mask_prob))
    result = trainer.train()
    return ObjectiveRun(objective, model.eval(), result.history, result.tokens_seen, probes)


# ---------------------------------------------------------------------------------------------
# items


@torch.no_grad()
def repeat_rates(model: MiniFormer, prompts: Tensor, n: int, temperature: float,
                 generator: torch.Generator) -> tuple[float, float]:
    """Repeated-4-gram rate (:func:`quirks`) of a causal LM's greedy and sampled continuations.

    Each of the ``(N, P)`` prompts is continued by ``n`` bytes greedily and at ``temperature``;
    the rate is pooled over the N continuations of each method. Returns ``(greedy, sampled)``.
    """
    greedy = [bytes(lm_generate(model, "causal", p, n, 0.0, generator)) for p in prompts]
    sampled = [bytes(lm_generate(model, "causal", p, n, temperature, generator)) for p in prompts]
    return quirks(greedy)["repeat_4gram_rate"], quirks(sampled)["repeat_4gram_rate"]


def seed_measures(cfg: PretrainingObjectivesConfig, runs: dict[str, ObjectiveRun], seed: int,
                  spans: Tensor, repeat_prompts: Tensor | None = None) -> dict[str, float]:
    """The numbers of one seed's three runs that the comparisons of items 1-3 pair by seed.

    Keys: ``<objective>.next_byte_acc_auc``, ``.next_byte_acc`` (final) and
    ``.untrained_next_byte_acc`` (the probe at step 0: the randomly initialised model);
    ``causal.continuation_loss``, ``prefix.continuation_loss`` (the last probe: the final model);
    ``mlm.right_context_gain`` and ``untrained_mlm.right_context_gain`` (two-sided minus left-only
    cloze accuracy of the trained MLM and of its initialisation, rebuilt from ``seed``);
    ``causal.greedy.repeat_4gram_rate`` and ``causal.sampled.repeat_4gram_rate`` (only with
    ``repeat_prompts``: :func:`repeat_rates`).
    """
    out: dict[str, float] = {}
    for name, r in runs.items():
        accs = [v for _, v in r.probes["next_byte_acc"]]
        out[f"{name}.next_byte_acc_auc"] = sum(accs) / len(accs)
        out[f"{name}.next_byte_acc"] = accs[-1]
        out[f"{name}.untrained_next_byte_acc"] = accs[0]
        if r.probes["continuation_loss"]:
            out[f"{name}.continuation_loss"] = r.probes["continuation_loss"][-1][1]
    if "mlm" in runs:
        two, one = cloze_probe(runs["mlm"].model, "mlm", spans, cfg.cloze_left)
        out["mlm.right_context_gain"] = two - one
        seed_everything(seed)  # the MLM's own initialisation (train_objective seeds the same way)
        untrained = build_model(replace(cfg.model, causal=False)).eval()
        two, one = cloze_probe(untrained, "mlm", spans, cfg.cloze_left)
        out["untrained_mlm.right_context_gain"] = two - one
    if "causal" in runs and repeat_prompts is not None:
        gen = torch.Generator().manual_seed(seed + 2)
        greedy, sampled = repeat_rates(runs["causal"].model, repeat_prompts, cfg.sample_len,
                                       cfg.temperature, gen)
        out["causal.greedy.repeat_4gram_rate"] = greedy
        out["causal.sampled.repeat_4gram_rate"] = sampled
    return out


def fresh_mlm_check(cfg: PretrainingObjectivesConfig, train_tokens: Tensor,
                    test_windows: Tensor) -> dict[str, list[float]]:
    """Item 1's re-check of a choice made after a failure: the MLM on ``fresh_seeds``.

    For each fresh seed the MLM is trained with ``model.position`` (RoPE, chosen because the MLM
    with learned positions sat at the most-frequent-byte plateau) and with learned positions, the
    same initialisation seed and windows, and probed once at the end on ``test_windows``, text of
    the test split that no choice looked at.

    Returns:
        ``{"seeds": [...], "chosen": [final next-byte accuracy per seed], "learned": [...]}``.
    """
    out: dict[str, list[float]] = {"seeds": [float(x) for x in cfg.fresh_seeds], "chosen": [],
                                   "learned": []}
    for seed in cfg.fresh_seeds:
        for arm, position in (("chosen", cfg.model.position), ("learned", "learned")):
            model = train_objective("mlm", replace(cfg, seed=seed), train_tokens, test_windows,
                                    probes_on=False, position=position).model
            out[arm].append(next_byte_probe(model, "mlm", test_windows)[0])
    return out


def _per_seed(per_seed: dict[int, dict[str, float]], key: str) -> list[float]:
    """``key`` of every seed of :func:`seed_measures`' results, in seed order."""
    return [m[key] for m in per_seed.values()]


def training_item(cfg: PretrainingObjectivesConfig, runs: dict[str, ObjectiveRun],
                  per_seed: dict[int, dict[str, float]] | None = None,
                  fresh: dict[str, list[float]] | None = None, test_unigram_acc: float = 0.0,
                  ) -> ItemResult:
    """Item 1: the three objectives trained at equal compute; each one's own training loss.

    ``per_seed`` (:func:`seed_measures` by seed) adds the causal vs prefix finding; ``fresh``
    (:func:`fresh_mlm_check`, with the most-frequent-byte accuracy on the same test windows) the
    re-check of the MLM's position scheme.
    """
    metrics: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    scored_share = {"causal": 1.0, "mlm": cfg.mask_prob, "prefix": None}
    lines = [f"{'objective':<8} {'params':>8} {'tokens seen':>12} {'final train loss':>17}  loss on"]
    for name, r in runs.items():
        tail = [h["loss"] for h in r.history[-20:]]
        metrics[f"{name}.final_train_loss"] = sum(tail) / len(tail)
        metrics[f"{name}.tokens_seen"] = float(r.tokens_seen)
        metrics[f"{name}.params"] = float(r.model.num_params())
        series[f"{name}.train_loss"] = [(int(h["step"]), float(h["loss"])) for h in r.history]
        share = scored_share[name]
        where = ("every position" if name == "causal" else
                 f"~{share:.0%} of positions (selected)" if name == "mlm" else
                 "the continuation after a random prefix (~half)")
        lines.append(f"{name:<8} {r.model.num_params():>8} {r.tokens_seen:>12} "
                     f"{metrics[f'{name}.final_train_loss']:>17.4f}  {where}")
    seen = [r.tokens_seen for r in runs.values()]
    sizes = [r.model.num_params() for r in runs.values()]
    metrics["tokens_seen_spread"] = float(max(seen) - min(seen))
    metrics["params_spread"] = float(max(sizes) - min(sizes))
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, pts in series.items():
        steps, vals = zip(*pts)
        k = max(1, len(vals) // 50)  # light smoothing: mean of k consecutive steps
        sm = [sum(vals[i:i + k]) / len(vals[i:i + k]) for i in range(0, len(vals), k)]
        ax.plot(steps[::k], sm, label=name.split(".")[0])
    ax.set(xlabel="optimizer step", ylabel="training loss (nats / scored byte)",
           title="each objective's own loss (not comparable across objectives)")
    ax.grid(alpha=0.3)
    ax.legend()
    findings = [
        Finding.at_most("equal compute: the three runs process the same number of tokens "
                        "(max - min tokens seen)", "tokens_seen_spread",
                        metrics["tokens_seen_spread"], cfg.checks.max_tokens_seen_spread,
                        kind=INVARIANT),
        Finding.at_most("equal model size: the three models have the same parameter count "
                        "(max - min)", "params_spread", metrics["params_spread"],
                        cfg.checks.max_params_spread, kind=INVARIANT),
    ]
    if per_seed is not None:
        seeds = list(per_seed)
        causal, prefix = _per_seed(per_seed, "causal.continuation_loss"), _per_seed(
            per_seed, "prefix.continuation_loss")
        for seed, c, p in zip(seeds, causal, prefix):
            metrics[f"causal.seed{seed}.continuation_loss"] = c
            metrics[f"prefix.seed{seed}.continuation_loss"] = p
        diff = Finding.compare(
            "at equal compute the causal LM, scored on every position, continues held-out prompts "
            "better than the prefix LM, scored on the continuation only (prefix minus causal "
            f"continuation loss, nats/byte, paired by seed, {len(seeds)} seeds)",
            "prefix_minus_causal_continuation_loss", prefix, causal,
            margin=cfg.checks.min_prefix_minus_causal_continuation)
        metrics["prefix_minus_causal_continuation_loss"] = diff.value
        metrics["prefix_minus_causal_continuation_loss.se"] = diff.se
        lines += ["", f"held-out continuation loss over seeds {seeds} (second half given the first): "
                  f"causal {sum(causal) / len(seeds):.4f}, prefix {sum(prefix) / len(seeds):.4f}; "
                  f"prefix - causal {diff.value:+.4f} +- {diff.se:.4f} (SE)"]
        findings.append(diff)
    if fresh is not None and fresh["seeds"]:
        seeds = [int(x) for x in fresh["seeds"]]
        chosen, learned, position = fresh["chosen"], fresh["learned"], cfg.model.position
        for seed, c, le in zip(seeds, chosen, learned):
            metrics[f"fresh.seed{seed}.mlm_{position}.next_byte_acc"] = c
            metrics[f"fresh.seed{seed}.mlm_learned.next_byte_acc"] = le
        metrics["fresh.test_unigram_next_byte_acc"] = test_unigram_acc
        over = Finding.compare(
            f"re-check on fresh seeds {seeds} and the test split: the MLM with {position} (chosen "
            "after the MLM with learned positions stayed at the most-frequent-byte plateau) beats "
            "that guess on held-out next-byte accuracy", f"fresh.mlm_{position}_gain_over_unigram",
            [c - test_unigram_acc for c in chosen], margin=cfg.min_gain_over_unigram)
        vs = Finding.compare(
            f"re-check on fresh seeds {seeds} and the test split: the MLM with {position} beats the "
            "MLM with learned positions on held-out next-byte accuracy (paired by seed; the same "
            "initialisation seed and windows)", f"fresh.mlm_{position}_minus_learned_acc", chosen,
            learned, margin=cfg.checks.min_rope_minus_learned_mlm_acc)
        for f in (over, vs):
            metrics[f.metric] = f.value
            metrics[f"{f.metric}.se"] = f.se
            findings.append(f)
        lines += ["", f"MLM re-check, fresh seeds {seeds}, test split: next-byte accuracy with "
                  f"{position} {sum(chosen) / len(seeds):.4f}, learned {sum(learned) / len(seeds):.4f}, "
                  f"most frequent byte {test_unigram_acc:.4f}"]
    return ItemResult(
        item=ITEM["train"], metrics=metrics, series=series, figures={"train_loss.png": fig},
        texts={"training.txt": "\n".join(lines) + "\n"}, findings=findings,
    )


def _unigram_accuracy(train_tokens: Tensor, windows: Tensor) -> float:
    top = int(torch.bincount(train_tokens, minlength=BYTE_VOCAB).argmax())
    return float((windows[:, -1] == top).float().mean())


def probes_item(cfg: PretrainingObjectivesConfig, runs: dict[str, ObjectiveRun], spans: Tensor,
                unigram_acc: float, per_seed: dict[int, dict[str, float]] | None = None) -> ItemResult:
    """Item 2: held-out probes vs steps, and which objective learns English faster.

    The curves, table and cloze of every objective are ``runs``' (the main seed); the findings
    compare ``per_seed`` (:func:`seed_measures` by seed; default: ``runs`` alone, whose
    comparisons cannot pass: one sample has no standard error).
    """
    metrics: dict[str, float] = {"unigram_next_byte_acc": unigram_acc}
    series: dict[str, list[tuple[int, float]]] = {}
    lines = [f"{'objective':<8} {'next-byte acc':>13} {'mean acc (AUC)':>14} {'next-byte loss':>14} "
             f"{'cont. loss':>10} {'cloze 2-sided':>13} {'cloze left':>10}"]
    for name, r in runs.items():
        accs = [v for _, v in r.probes["next_byte_acc"]]
        metrics[f"{name}.next_byte_acc"] = accs[-1]
        metrics[f"{name}.next_byte_acc_auc"] = sum(accs) / len(accs)
        metrics[f"{name}.next_byte_loss"] = r.probes["next_byte_loss"][-1][1]
        if r.probes["continuation_loss"]:
            metrics[f"{name}.continuation_loss"] = r.probes["continuation_loss"][-1][1]
        two, one = cloze_probe(r.model, name, spans, cfg.cloze_left)
        metrics[f"{name}.cloze_two_sided_acc"] = two
        metrics[f"{name}.cloze_left_only_acc"] = one
        for key, pts in r.probes.items():
            if pts:
                series[f"{name}.{key}"] = pts
        cont = metrics.get(f"{name}.continuation_loss", math.nan)
        lines.append(f"{name:<8} {accs[-1]:>13.4f} {metrics[f'{name}.next_byte_acc_auc']:>14.4f} "
                     f"{metrics[f'{name}.next_byte_loss']:>14.4f} {cont:>10.4f} {two:>13.4f} {one:>10.4f}")
    fastest = max(runs, key=lambda n: metrics[f"{n}.next_byte_acc_auc"])
    metrics["fastest_is_causal"] = float(fastest == "causal")
    lines += ["", f"faster = higher mean held-out next-byte accuracy over the probe steps: {fastest}",
              f"most-frequent-byte baseline accuracy: {unigram_acc:.4f}",
              "continuation loss: second half of a window given the first half (MLM: not defined)",
              f"cloze: byte {cfg.cloze_left} of {cfg.cloze_left + 1 + cfg.cloze_right}-byte spans; "
              "causal/prefix two-sided = best of 256 candidates by the span's log-probability"]

    if per_seed is None:
        per_seed = {cfg.seed: seed_measures(cfg, runs, cfg.seed, spans)}
    seeds = list(per_seed)
    for seed, m in per_seed.items():
        for key in ("next_byte_acc_auc", "next_byte_acc", "untrained_next_byte_acc"):
            for name in runs:
                metrics[f"seed{seed}.{name}.{key}"] = m[f"{name}.{key}"]
        for key in ("mlm.right_context_gain", "untrained_mlm.right_context_gain"):
            if key in m:
                metrics[f"seed{seed}.{key}"] = m[key]
    findings = []
    if "causal" in runs and "mlm" in runs:
        auc = Finding.compare(
            "at equal compute the causal LM learns held-out next-byte prediction faster than the "
            "MLM (mean accuracy over probe steps, causal minus MLM, paired by seed, "
            f"{len(seeds)} seeds; the MLM scores only {cfg.mask_prob:.0%} of positions; two runs of one "
            "objective would tie and fail)",
            "causal_minus_mlm_auc", _per_seed(per_seed, "causal.next_byte_acc_auc"),
            _per_seed(per_seed, "mlm.next_byte_acc_auc"), margin=cfg.checks.min_causal_minus_mlm_auc)
        metrics["causal_minus_mlm_auc"] = auc.value
        metrics["causal_minus_mlm_auc.se"] = auc.se
        findings.append(auc)
    if "mlm" in runs:
        metrics["mlm_right_context_gain"] = (metrics["mlm.cloze_two_sided_acc"]
                                             - metrics["mlm.cloze_left_only_acc"])
        right = Finding.compare(
            "the MLM uses the right context: its cloze accuracy with both sides minus left-only, "
            "against the same gain of its random initialisation (the control), paired by seed, "
            f"{len(seeds)} seeds", "mlm_right_context_gain_over_untrained",
            _per_seed(per_seed, "mlm.right_context_gain"),
            _per_seed(per_seed, "untrained_mlm.right_context_gain"), margin=cfg.min_right_context_gain)
        metrics["mlm_right_context_gain_over_untrained"] = right.value
        metrics["mlm_right_context_gain_over_untrained.se"] = right.se
        findings.append(right)
    worst = [min(m[f"{n}.next_byte_acc"] for n in runs) - unigram_acc for m in per_seed.values()]
    untrained = [max(m[f"{n}.untrained_next_byte_acc"] for n in runs) for m in per_seed.values()]
    metrics["untrained_best_next_byte_acc"] = sum(untrained) / len(untrained)
    gain = Finding.compare(
        "every objective learns English bytes beyond the most-frequent-byte guess (final held-out "
        f"next-byte accuracy minus the baseline's, worst objective per seed, {len(seeds)} seeds; "
        "an untrained model fails: the random initialisations score untrained_best_next_byte_acc)",
        "worst_gain_over_unigram", worst, margin=cfg.min_gain_over_unigram)
    metrics["worst_gain_over_unigram"] = gain.value
    metrics["worst_gain_over_unigram.se"] = gain.se
    findings.append(gain)

    fig = Figure(figsize=(12.0, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    for name, r in runs.items():
        s, v = zip(*r.probes["next_byte_acc"])
        ax0.plot(s, v, marker=".", label=name)
        if r.probes["continuation_loss"]:
            s, v = zip(*r.probes["continuation_loss"])
            ax1.plot(s, v, marker=".", label=name)
    ax0.axhline(unigram_acc, color="grey", linestyle="--", label="most frequent byte")
    ax0.set(xlabel="optimizer step", ylabel="held-out next-byte accuracy",
            title="shared probe: last byte of a window from its left context")
    ax1.set(xlabel="optimizer step", ylabel="loss on 2nd half (nats / byte)",
            title="continuation loss (causal vs prefix)")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return ItemResult(item=ITEM["probes"], metrics=metrics, series=series, findings=findings,
                      figures={"probes.png": fig}, texts={"probes.txt": "\n".join(lines) + "\n"})


def samples_item(cfg: PretrainingObjectivesConfig, runs: dict[str, ObjectiveRun],
                 prompts: Tensor, per_seed: dict[int, dict[str, float]] | None = None) -> ItemResult:
    """Item 3: samples from each objective, with computed quirks.

    The samples shown are ``runs``' (the main seed); the greedy-vs-sampling finding compares the
    repeat rates of ``per_seed`` (:func:`seed_measures` with ``repeat_prompts``; default: none,
    and the finding is left out).
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    metrics: dict[str, float] = {}
    out = ["Samples from held-out prompts ('|' marks the end of the prompt).", ""]
    sets: dict[str, list[bytes]] = {}
    out_of_order = 0
    for name, r in runs.items():
        methods = (["unmask"] if name == "mlm" else ["greedy", f"t{cfg.temperature:g}"])
        for method in methods:
            key = f"{name}.{method}"
            sets[key] = []
            out.append(f"== {key}")
            for p in prompts:
                if method == "unmask":
                    new, order = mlm_unmask(r.model, p, cfg.sample_len)
                    # a fill is "out of order" when a masked position left of it is still masked
                    remaining = set(range(cfg.sample_len))
                    for o in order:
                        out_of_order += o != min(remaining)
                        remaining.discard(o)
                else:
                    t = 0.0 if method == "greedy" else cfg.temperature
                    new = lm_generate(r.model, name, p, cfg.sample_len, t, gen)
                    order = []
                b = bytes(new)
                sets[key].append(b)
                text = (bytes(p.tolist()).decode("utf-8", "replace") + "|" +
                        b.decode("utf-8", "replace")).replace("\n", "\\n")
                out.append(f"  {text}")
                if order:
                    out.append(f"    fill order: {order}")
            q = quirks(sets[key])
            for k, v in q.items():
                metrics[f"{key}.{k}"] = v
            out.append("  quirks: " + ", ".join(f"{k}={v:.3f}" for k, v in q.items()))
            out.append("")
    n_fills = cfg.sample_len * len(prompts)
    if "mlm" in runs:
        metrics["mlm.unmask.out_of_order_rate"] = out_of_order / n_fills
    notes = ["Noted quirks (from the numbers above):"]
    for key in sets:
        q = {k.split(".")[-1]: v for k, v in metrics.items() if k.startswith(key + ".")}
        notes.append(f"- {key}: " + "; ".join([
            f"repeats {q['repeat_4gram_rate']:.0%} of its 4-grams" +
            (" (loops)" if q["repeat_4gram_rate"] > 0.3 else ""),
            f"{q['invalid_utf8_per_byte']:.1%} invalid UTF-8",
            f"longest single-byte run {int(q['longest_run'])}",
            f"spaces {q['space_rate']:.0%} (English ~17%)",
        ]))
    if "mlm" in runs:
        notes.append(f"- mlm.unmask: {metrics['mlm.unmask.out_of_order_rate']:.0%} of fills happened "
                     "while a position to their left was still masked (not left-to-right); with 15% "
                     "masking the MLM rarely saw long runs of [MASK], so a block of them tends to "
                     "fill with the same confident byte (space, 'e')")
    findings = []
    if per_seed and all("causal.greedy.repeat_4gram_rate" in m for m in per_seed.values()):
        greedy = _per_seed(per_seed, "causal.greedy.repeat_4gram_rate")
        sampled = _per_seed(per_seed, "causal.sampled.repeat_4gram_rate")
        for seed, g, t in zip(per_seed, greedy, sampled):
            metrics[f"seed{seed}.causal.greedy.repeat_4gram_rate"] = g
            metrics[f"seed{seed}.causal.sampled.repeat_4gram_rate"] = t
        loops = Finding.compare(
            f"greedy decoding of the causal LM repeats itself more than sampling at T="
            f"{cfg.temperature:g} (repeated-4-gram rate of {cfg.sample_len}-byte continuations "
            f"pooled over {cfg.repeat_prompts} held-out prompts, greedy minus sampled, paired by "
            f"seed, {len(greedy)} seeds; a sampler that ignored the temperature would tie)",
            "causal_greedy_minus_sampled_repeat", greedy, sampled,
            margin=cfg.checks.min_greedy_minus_sampled_repeat)
        metrics["causal_greedy_minus_sampled_repeat"] = loops.value
        metrics["causal_greedy_minus_sampled_repeat.se"] = loops.se
        findings.append(loops)
    return ItemResult(item=ITEM["samples"], metrics=metrics, findings=findings,
                      texts={"samples.txt": "\n".join(out + notes) + "\n"})


#: What :func:`run` reads: the corpus's train and val splits.
Inputs = CorpusSplits


def run(cfg: PretrainingObjectivesConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the three objectives on the train split and probe them on the val split.

    Every objective is trained once per seed of ``compare_seeds`` (and ``seed``); with
    ``fresh_seeds`` the MLM is retrained on those and probed on the test split (item 1).

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, val_texts = inputs.train_texts, inputs.val_texts
    with torch_threads(cfg.num_threads):
        train_tokens = byte_tokens(train_texts)
        val_tokens = byte_tokens(val_texts)
        probe_windows = _windows(val_tokens, cfg.seq_len, cfg.probe_windows)
        span_len = cfg.cloze_left + 1 + cfg.cloze_right
        rest = val_tokens[probe_windows.numel():]
        spans = _windows(rest if rest.numel() >= span_len else val_tokens, span_len, cfg.cloze_probes)
        prompts = _prompts(val_tokens, cfg.prompt_len, cfg.sample_prompts)
        repeat_prompts = _prompts(val_tokens, cfg.prompt_len, cfg.repeat_prompts)
        seeds = list(dict.fromkeys([cfg.seed, *cfg.compare_seeds]))  # the main seed first
        by_seed = {seed: {o: train_objective(o, replace(cfg, seed=seed), train_tokens, probe_windows)
                          for o in OBJECTIVES} for seed in seeds}
        runs = by_seed[cfg.seed]
        per_seed = {seed: seed_measures(cfg, by_seed[seed], seed, spans, repeat_prompts)
                    for seed in cfg.compare_seeds}
        fresh, test_unigram = None, 0.0
        if cfg.fresh_seeds:
            if not inputs.test_texts:
                raise CorpusTooSmallError("pretraining_objectives.fresh_seeds re-measures the MLM on "
                                          "the test split, which is empty: raise "
                                          "splits.test_fraction, or set fresh_seeds: []")
            test_windows = _windows(byte_tokens(inputs.test_texts), cfg.seq_len, cfg.probe_windows,
                                    "test")
            fresh = fresh_mlm_check(cfg, train_tokens, test_windows)
            test_unigram = _unigram_accuracy(train_tokens, test_windows)
        items = [training_item(cfg, runs, per_seed, fresh, test_unigram),
                 probes_item(cfg, runs, spans, _unigram_accuracy(train_tokens, probe_windows), per_seed),
                 samples_item(cfg, runs, prompts, per_seed)]
    return items
