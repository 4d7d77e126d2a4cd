"""Experiments of "Grouped Query Attention": conversion, decode speed, the number of groups.

1. *Convert your mini-former to grouped-query layout* (:func:`conversion_item`): a multi-head
   byte-level mini-former is trained on the corpus, then converted with
   :func:`~nlpcurriculum.models.gqa.convert_to_gqa` (mean-pooled K/V heads, Ainslie et al. 2023,
   arXiv:2305.13245) to ``nkv = nh / 4``; validation loss right after the conversion and after a
   brief uptraining (``uptrain_fraction`` of the original steps; the paper uses 5%). The
   multi-head model gets the same extra steps as a control, so the quality gap is not mixed up
   with extra training, and a GQA model of the same shape trained from scratch for the same
   total steps (training + uptraining) is the control of the conversion itself. Each of
   ``seeds`` trains its own source model, conversion, uptraining and scratch model; the
   findings compare the arms over the seeds, paired (:meth:`~nlpcurriculum.results.Finding.compare`).
   Two exactness checks: ``nkv = nh`` is the identity, and a model whose heads inside a group
   are identical converts without any change in its logits.
2. *Measure speed vs vanilla multi-head on a large batch* (:func:`speed_item`): batched cached
   greedy decoding (:mod:`nlpcurriculum.decoding.batched`) of ``batch`` prompts of
   ``prompt_len`` held-out bytes, ``new_tokens`` new ones, one thread, best of ``repeats``;
   decode tokens/s of MHA vs GQA (``nh / 4``) and the ratio. The GQA model's cached output is
   checked against its own uncached forward pass (teacher-forced argmax).
3. *Ablate the number of groups, plot latency* (:func:`ablation_item`): every divisor of ``nh``
   from 1 (multi-query) to ``nh`` (multi-head): per-step decode latency, KV-cache bytes (measured
   vs ``2 * L * nkv * hs * 4 B * B * T``) and validation loss after conversion and uptraining.

Why GQA is faster at decode time: each step reads every weight once for the whole batch but the
KV cache once *per row*; at batch 64 and a few hundred cached positions the cache reads rival
the weight reads (Pope et al. 2022, arXiv:2211.05102), and GQA divides them by ``nh / nkv``.
The project's :class:`~nlpcurriculum.nn.kv_cache.KVCache` grows by concatenation (copying the
whole cache every step), which also scales with ``nkv``.

Byte tokens (vocabulary 256), RoPE positions (decoding runs past the training length).

Items 2 and 3 (speed, the number of groups) use the first seed's models.

Left out: GPU kernels (the timing is a 1-thread CPU measurement), paged / preallocated caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from matplotlib.figure import Figure

from nlpcurriculum.decoding.batched import DecodeRun, greedy_batched, teacher_forced_argmax
from nlpcurriculum.experiments.harness import (
    BYTE_VOCAB,
    CorpusSplits,
    byte_tokens,
    curve,
    mean_loss,
    torch_threads,
)
from nlpcurriculum.models.gqa import convert_to_gqa
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "GQAConfig",
    "GroupRun",
    "Inputs",
    "identical_heads_error",
    "kv_formula_bytes",
    "run",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "convert": "grouped-query-attention/1",
    "speed": "grouped-query-attention/2",
    "ablation": "grouped-query-attention/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class GQAChecks:
    """Bounds of the findings that no knob above sets (params ``gqa.checks``).

    Attributes:
        max_identity_diff: item 1: max |logit diff| converting with n_kv_heads = n_heads.
        max_identical_heads_diff: item 1: max |logit diff| converting a model whose heads within
            each group are identical.
        min_uptraining_recovery: item 1: val loss converted minus uptrained (nats), paired over
            seeds.
        min_gain_vs_scratch: item 1: val loss of GQA trained from scratch for the same total
            steps minus the converted and uptrained GQA's (nats), paired over seeds.
        min_cached_match_rate: item 2: cached batched decode argmax equal to the uncached forward's.
        max_kv_bytes_formula_error: item 3: sum of |measured - formula| KV-cache bytes.
        min_latency_ratio: item 3: MHA's decode step latency over the fewest K/V heads'.
    """

    max_identity_diff: float = 1e-5
    max_identical_heads_diff: float = 1e-4
    min_uptraining_recovery: float = 0.01
    min_gain_vs_scratch: float = 0.01
    min_cached_match_rate: float = 1.0
    max_kv_bytes_formula_error: float = 0.0
    min_latency_ratio: float = 1.05


@dataclass(kw_only=True)
class GQAConfig:
    """The ``gqa`` section of params/grouped_query_attention.yaml.

    Attributes:
        model: the multi-head source model (``n_kv_heads`` must equal ``n_heads``), byte vocab.
        train: its training knobs.
        seq_len: training window in bytes.
        uptrain_fraction: uptraining steps as a fraction of ``train.max_steps`` (at least 1).
        uptrain_lr: peak learning rate of uptraining (warmup 10% of its steps, cosine).
        groups: K/V head counts of the ablation (divisors of ``n_heads``); ``n_heads / 4`` (the
            speed comparison) and ``n_heads`` are added when missing.
        val_batches: validation batches of ``train.batch_size`` windows for the quality numbers.
        batch: decoding batch size.
        prompt_len: prompt bytes per row.
        new_tokens: bytes generated per row.
        repeats: timing rounds (each times every group count once; best of).
        check_rows: rows of the cached-vs-uncached output check.
        seeds: one run of item 1 per seed (source model, conversion, uptraining, scratch
            control); items 2 and 3 use the first seed's models.
        workers: processes that run the seeds after the first side by side (one thread each)
            before the first seed's work and the timings; 1 = one after the other.
        num_threads: torch intra-op threads (the timings assume 1).
        min_speedup: item 2's target: GQA(nh/4) decode tokens/s over MHA's.
        max_uptrained_gap: item 1: GQA(nh/4) after uptraining may trail the equally uptrained MHA
            by at most this many nats/byte (mean over seeds, beyond two standard errors).
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 128
    uptrain_fraction: float = 0.2
    uptrain_lr: float = 1e-3
    groups: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    val_batches: int = 8
    batch: int = 64
    prompt_len: int = 192
    new_tokens: int = 64
    repeats: int = 3
    check_rows: int = 8
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    workers: int = 2
    num_threads: int = 1
    min_speedup: float = 1.5
    max_uptrained_gap: float = 0.1
    checks: GQAChecks = field(default_factory=GQAChecks)

    def __post_init__(self) -> None:
        m = self.model
        if m.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens), got {m.vocab_size}")
        if m.n_kv_heads != m.n_heads:
            raise ValueError(f"model.n_kv_heads must equal model.n_heads (the multi-head source), "
                             f"got {m.n_kv_heads} vs {m.n_heads}")
        if m.n_heads % 4:
            raise ValueError(f"model.n_heads must be a multiple of 4 (GQA at n_heads/4), got {m.n_heads}")
        if m.position == "learned" and self.prompt_len + self.new_tokens > m.max_seq_len:
            raise ValueError("prompt_len + new_tokens exceeds model.max_seq_len of learned positions")
        if not 2 <= self.seq_len <= m.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len={m.max_seq_len}]")
        for g in self.groups:
            if g < 1 or m.n_heads % g:
                raise ValueError(f"groups entry {g} must divide model.n_heads={m.n_heads}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if not 0.0 < self.uptrain_fraction <= 1.0:
            raise ValueError(f"uptrain_fraction must be in (0, 1], got {self.uptrain_fraction}")
        for name in ("val_batches", "batch", "prompt_len", "new_tokens", "repeats", "check_rows",
                     "num_threads", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.new_tokens < 2:
            raise ValueError("new_tokens must be >= 2 (one from the prefill, the rest decoded)")

    @property
    def gqa_groups(self) -> int:
        """``n_heads / 4``: the K/V head count of the speed comparison."""
        return self.model.n_heads // 4

    @property
    def seed(self) -> int:
        """The first seed: items 2 and 3 use its models."""
        return self.seeds[0]

    @property
    def all_groups(self) -> list[int]:
        return sorted(set(self.groups) | {self.gqa_groups, self.model.n_heads})


def kv_formula_bytes(cfg: MiniFormerConfig, batch: int, seq_len: int, bytes_per_elem: int = 4) -> int:
    """``2 * n_layers * n_kv_heads * head_dim * bytes_per_elem * batch * T`` (keys and values)."""
    return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * bytes_per_elem * batch * seq_len


@torch.no_grad()
def identical_heads_error(cfg: MiniFormerConfig, n_kv_heads: int, seed: int = 0) -> float:
    """Max |logit difference| after converting a random model whose K/V heads are identical
    inside each group (the conversion must then be exact)."""
    seed_everything(seed)
    m = build_model(replace(cfg, n_kv_heads=cfg.n_heads)).eval()
    nh, hs, r = cfg.n_heads, cfg.head_dim, cfg.n_heads // n_kv_heads
    for block in m.blocks:
        for t in (block.attn.qkv.weight, block.attn.qkv.bias):
            if t is None:
                continue
            for part in (1, 2):  # the key rows, then the value rows (queries are part 0)
                heads = t[part * nh * hs: (part + 1) * nh * hs].view(nh, hs, *t.shape[1:])
                for g in range(n_kv_heads):
                    heads[g * r + 1: (g + 1) * r] = heads[g * r]  # copy the group's first head
    x = torch.randint(0, cfg.vocab_size, (2, min(16, cfg.max_seq_len)))
    converted = convert_to_gqa(m, n_kv_heads).eval()
    return float((m(x).logits - converted(x).logits).abs().max())


@dataclass
class GroupRun:
    """One K/V head count: quality and decode numbers."""

    n_kv_heads: int
    loss_converted: float
    loss_uptrained: float
    decode_s: float
    prefill_s: float
    tokens_per_s: float
    ms_per_step: float
    cache_bytes: int
    formula_bytes: int
    uptrain_curve: list[tuple[int, float]]
    round_decode_s: list[float] = field(default_factory=list)


def _uptrain(model: MiniFormer, cfg: GQAConfig, train: TokenBatcher, val: TokenBatcher,
             seed: int | None = None) -> tuple[float, list]:
    steps = max(1, round(cfg.uptrain_fraction * cfg.train.max_steps))
    tcfg = replace(cfg.train, max_steps=steps, lr=cfg.uptrain_lr, warmup_steps=max(0, steps // 10),
                   eval_every=max(1, steps // 4))
    train.load_state_dict({**train.state_dict(), "position": 0, "epoch": 0})
    train.generator.manual_seed((cfg.seed if seed is None else seed) + 7)  # every uptraining of a seed sees the same batches
    result = Trainer(model, tcfg, train, val).train()
    model.eval()
    return mean_loss(model, val, cfg.train.batch_size, cfg.val_batches), curve(result.history)


@dataclass(frozen=True)
class SeedArms:
    """Item 1's validation losses of one seed (nats / byte), every arm from the same source."""

    seed: int
    mha: float  # the trained multi-head source
    converted: float  # mean-pooled to n_heads / 4 K/V heads, before uptraining
    uptrained: float  # ... after uptraining
    mha_uptrained: float  # the source given the same extra steps (control of the extra training)
    scratch: float  # GQA of the same shape trained from scratch for all the steps (control)


def _scratch_loss(cfg: GQAConfig, seed: int, train_tokens: torch.Tensor, val: TokenBatcher) -> float:
    """Val loss of a GQA model (``n_heads / 4`` K/V heads) trained from scratch for the source's
    steps plus the uptraining steps: the conversion's budget."""
    steps = cfg.train.max_steps + max(1, round(cfg.uptrain_fraction * cfg.train.max_steps))
    seed_everything(seed)
    model = build_model(replace(cfg.model, n_kv_heads=cfg.gqa_groups))
    Trainer(model, replace(cfg.train, max_steps=steps),
            TokenBatcher(train_tokens, cfg.seq_len, seed=seed), val).train()
    model.eval()
    return mean_loss(model, val, cfg.train.batch_size, cfg.val_batches)


def _seed_arms_job(cfg: GQAConfig, seed: int, train_tokens: torch.Tensor,
                   val_tokens: torch.Tensor) -> SeedArms:
    """:func:`_seed_arms` in a worker process (one torch thread), from plain tensors."""
    torch.set_num_threads(1)
    return _seed_arms(cfg, seed, train_tokens, TokenBatcher(val_tokens, cfg.seq_len, mode="sequential"))


def _other_seeds(cfg: GQAConfig, train_tokens: torch.Tensor, val_tokens: torch.Tensor,
                 val: TokenBatcher) -> list[SeedArms]:
    """Item 1 on ``seeds[1:]``: side by side in ``workers`` processes (one thread each), before
    anything is timed, or one after the other here when ``workers <= 1``. Each seed's arms are
    the same either way (seeded, one thread)."""
    seeds = cfg.seeds[1:]
    if cfg.workers <= 1 or len(seeds) <= 1:
        return [_seed_arms(cfg, seed, train_tokens, val) for seed in seeds]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(cfg.workers, len(seeds)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_seed_arms_job, cfg, seed, train_tokens, val_tokens) for seed in seeds]
        return [job.result() for job in jobs]


def _seed_arms(cfg: GQAConfig, seed: int, train_tokens: torch.Tensor, val: TokenBatcher) -> SeedArms:
    """Item 1 on one more seed: train the source, convert, uptrain, control; no timing."""
    train = TokenBatcher(train_tokens, cfg.seq_len, seed=seed)
    seed_everything(seed)
    mha = build_model(cfg.model)
    Trainer(mha, cfg.train, train, val).train()
    mha.eval()
    base = mean_loss(mha, val, cfg.train.batch_size, cfg.val_batches)
    state = {k: v.clone() for k, v in mha.state_dict().items()}
    gqa = convert_to_gqa(mha, cfg.gqa_groups).eval()
    converted = mean_loss(gqa, val, cfg.train.batch_size, cfg.val_batches)
    uptrained, _ = _uptrain(gqa, cfg, train, val, seed)
    control = build_model(cfg.model)
    control.load_state_dict(state)
    mha_up, _ = _uptrain(control, cfg, train, val, seed)
    return SeedArms(seed, base, converted, uptrained, mha_up, _scratch_loss(cfg, seed, train_tokens, val))


#: What :func:`run` reads: the corpus's train and val splits.
Inputs = CorpusSplits


def run(cfg: GQAConfig, inputs: Inputs) -> list[ItemResult]:
    """Train the MHA source, convert it to every group count, uptrain, time batched decoding.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, val_texts = inputs.train_texts, inputs.val_texts
    with torch_threads(cfg.num_threads):
        val_tokens = byte_tokens(val_texts)
        train_tokens = byte_tokens(train_texts)
        train = TokenBatcher(train_tokens, cfg.seq_len, seed=cfg.seed)
        val = TokenBatcher(val_tokens, cfg.seq_len, mode="sequential")
        # the other seeds first, side by side: nothing is timed while they run
        others = _other_seeds(cfg, train_tokens, val_tokens.clone(), val)
        seed_everything(cfg.seed)
        mha = build_model(cfg.model)
        base = Trainer(mha, cfg.train, train, val).train()
        mha.eval()
        base_loss = mean_loss(mha, val, cfg.train.batch_size, cfg.val_batches)
        state = {k: v.clone() for k, v in mha.state_dict().items()}

        need = cfg.batch * cfg.prompt_len
        if val_tokens.numel() < need:  # the val split is small: tile it (only the timing uses it)
            val_tokens = val_tokens.repeat(need // val_tokens.numel() + 1)
        prompts = val_tokens[:need].view(cfg.batch, cfg.prompt_len)  # (B, P)

        models: dict[int, MiniFormer] = {}
        quality: dict[int, tuple[float, float, list]] = {}
        check: dict[str, float] = {}
        for g in cfg.all_groups:
            src = build_model(cfg.model)
            src.load_state_dict(state)
            model = convert_to_gqa(src, g).eval()
            if g == cfg.model.n_heads:
                x = prompts[:2, :32]
                with torch.no_grad():
                    check["identity_max_abs_diff"] = float((mha(x).logits - model(x).logits).abs().max())
            loss_conv = mean_loss(model, val, cfg.train.batch_size, cfg.val_batches)
            loss_up, up_curve = _uptrain(model, cfg, train, val)  # for g == nh: the MHA control
            quality[g] = (loss_conv, loss_up, up_curve)
            models[g] = model
        # timing round-robin: every repeat times each group count once, so a busy spell on a
        # shared machine hits all of them alike; the per-round decode times are kept for the
        # round-by-round ratios of the timing findings, and the best run of each for the tables
        best: dict[int, DecodeRun] = {}
        rounds: dict[int, list[float]] = {g: [] for g in models}
        for model in models.values():  # one untimed warm-up round: first calls pay one-off costs
            greedy_batched(model, prompts[:, :8], 2)
        for r in range(cfg.repeats):
            order = list(models) if r % 2 == 0 else list(models)[::-1]
            for g in order:
                dec = greedy_batched(models[g], prompts, cfg.new_tokens)
                rounds[g].append(dec.decode_s)
                if g not in best or dec.decode_s < best[g].decode_s:
                    best[g] = dec
        T = cfg.prompt_len + cfg.new_tokens - 1  # the last new token is never fed back
        steps = cfg.new_tokens - 1
        runs: dict[int, GroupRun] = {}
        for g, dec in best.items():
            loss_conv, loss_up, up_curve = quality[g]
            runs[g] = GroupRun(
                g, loss_conv, loss_up, dec.decode_s, dec.prefill_s,
                cfg.batch * steps / dec.decode_s, 1000 * dec.decode_s / steps, dec.cache_bytes,
                kv_formula_bytes(models[g].config, cfg.batch, T), up_curve, rounds[g])
        # cached decoding == uncached forward, on the GQA model of the speed comparison
        gq = models[cfg.gqa_groups]
        rows = prompts[: cfg.check_rows]
        run = greedy_batched(gq, rows, cfg.new_tokens, keep_logits=True)
        argmax, logits = teacher_forced_argmax(gq, rows, run.tokens)
        check["cached_match_rate"] = float((argmax == run.tokens).float().mean())
        check["cached_logit_max_abs_diff"] = float((logits - run.logits).abs().max())
        check["identical_heads_max_abs_diff"] = identical_heads_error(cfg.model, cfg.gqa_groups, cfg.seed)
        # item 1's arms on every seed: the first from the runs above, the others afresh
        first = runs[cfg.gqa_groups]
        arms = [SeedArms(cfg.seed, base_loss, first.loss_converted, first.loss_uptrained,
                         runs[cfg.model.n_heads].loss_uptrained,
                         _scratch_loss(cfg, cfg.seed, train_tokens, val))]
        arms += others

    return [conversion_item(cfg, base_loss, curve(base.history), runs, check, arms),
            speed_item(cfg, runs, check), ablation_item(cfg, runs)]


def conversion_item(cfg: GQAConfig, base_loss: float, base_curve: list, runs: dict[int, GroupRun],
                    check: dict[str, float], arms: list[SeedArms]) -> ItemResult:
    """Item 1: conversion exactness, and quality before / after uptraining against the MHA
    control and GQA trained from scratch, over seeds."""
    nh, g = cfg.model.n_heads, cfg.gqa_groups
    up_steps = max(1, round(cfg.uptrain_fraction * cfg.train.max_steps))
    mha, gqa = runs[nh], runs[g]
    metrics = {
        "mha_val_loss": base_loss,
        "mha_uptrained_val_loss": mha.loss_uptrained,
        "gqa_converted_val_loss": gqa.loss_converted,
        "gqa_uptrained_val_loss": gqa.loss_uptrained,
        "conversion_loss_increase": gqa.loss_converted - base_loss,
        "uptrain_steps": float(up_steps),
        "seeds": float(len(arms)),
        **check,
    }
    for a in arms:
        metrics |= {f"seed{a.seed}.mha_val_loss": a.mha, f"seed{a.seed}.gqa_converted_val_loss": a.converted,
                    f"seed{a.seed}.gqa_uptrained_val_loss": a.uptrained,
                    f"seed{a.seed}.mha_uptrained_val_loss": a.mha_uptrained,
                    f"seed{a.seed}.gqa_scratch_val_loss": a.scratch}
    conv, up = [a.converted for a in arms], [a.uptrained for a in arms]
    mha_up, scratch = [a.mha_uptrained for a in arms], [a.scratch for a in arms]
    recovery = Finding.compare(
        "brief uptraining recovers quality lost by mean-pooling (val loss converted - uptrained, "
        "nats, paired over seeds; an uptraining that does not learn fails)", "uptraining_recovery",
        conv, up, margin=cfg.checks.min_uptraining_recovery)
    gap = Finding.compare(
        f"after uptraining, GQA with {g} K/V heads is within {cfg.max_uptrained_gap:g} nats of the "
        "equally uptrained MHA (val loss gap, paired over seeds: a non-inferiority bound; a "
        "conversion that loses the heads' information fails)", "uptrained_gap_vs_mha", up, mha_up,
        margin=-cfg.max_uptrained_gap, higher_is_better=False)
    vs_scratch = Finding.compare(
        f"converting the trained MHA and uptraining beats GQA with {g} K/V heads trained from "
        "scratch for the same total steps (val loss scratch - converted, nats, paired over seeds; "
        "fails if the MHA's training transfers nothing)", "gain_vs_scratch", scratch, up,
        margin=cfg.checks.min_gain_vs_scratch)
    for f in (recovery, gap, vs_scratch):  # means over seeds, as the findings judge them
        metrics |= {f.metric: f.value, f"{f.metric}.se": f.se}
    lines = [f"MHA ({nh} K/V heads) trained {cfg.train.max_steps} steps: val loss {base_loss:.4f}",
             f"uptraining: {up_steps} steps ({cfg.uptrain_fraction:.0%}), lr {cfg.uptrain_lr:g}",
             f"{'K/V heads':>9} {'converted':>10} {'uptrained':>10}"]
    for k, r in runs.items():
        lines.append(f"{k:>9} {r.loss_converted:>10.4f} {r.loss_uptrained:>10.4f}"
                     + ("   (MHA control: same extra steps)" if k == nh else ""))
    lines += ["", f"over seeds {cfg.seeds} (val loss, nats / byte): seed, MHA, converted, uptrained, "
              "MHA + same steps, GQA from scratch (same total steps)"]
    lines += [f"  {a.seed}: {a.mha:.4f} {a.converted:.4f} {a.uptrained:.4f} {a.mha_uptrained:.4f} "
              f"{a.scratch:.4f}" for a in arms]
    lines += [f"  {f.metric}: mean {f.value:+.4f} SE {f.se:.4f} n {f.n} (bound {f.threshold:+g}) "
              f"{'pass' if f.passed else 'FAIL'}" for f in (recovery, gap, vs_scratch)]
    lines += ["", f"identity conversion (nkv = nh) max |logit diff|: {check['identity_max_abs_diff']:.2e}",
              f"identical heads per group, nkv = {g}: max |logit diff| {check['identical_heads_max_abs_diff']:.2e}"]
    fig = Figure(figsize=(12.0, 4.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    ks = list(runs)
    ax0.plot(ks, [runs[k].loss_converted for k in ks], marker="o", label="right after mean-pooling")
    ax0.plot(ks, [runs[k].loss_uptrained for k in ks], marker="o", label=f"after {up_steps} uptraining steps")
    ax0.axhline(base_loss, color="grey", linestyle="--", label="MHA before uptraining")
    ax0.set_xscale("log", base=2)
    ax0.set(xlabel="K/V heads (groups)", ylabel="validation loss (nats / byte)",
            title="quality of the converted model")
    steps, vals = zip(*base_curve)
    ax1.plot(steps, vals, label="MHA training")
    for k in (g, nh):
        s, v = zip(*runs[k].uptrain_curve)
        ax1.plot([cfg.train.max_steps + x for x in s], v, marker=".",
                 label=f"uptraining, {k} K/V heads" + (" (MHA control)" if k == nh else ""))
    ax1.set(xlabel="optimizer step", ylabel="validation loss", title="training, then uptraining")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return ItemResult(
        item=ITEM["convert"], metrics=metrics, figures={"conversion.png": fig},
        texts={"conversion.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.at_most("converting with n_kv_heads = n_heads is the identity (max |logit diff|)",
                            "identity_max_abs_diff", check["identity_max_abs_diff"],
                            cfg.checks.max_identity_diff, kind=INVARIANT),
            Finding.at_most("a model whose heads inside each group are identical converts exactly "
                            "(max |logit diff|)", "identical_heads_max_abs_diff",
                            check["identical_heads_max_abs_diff"], cfg.checks.max_identical_heads_diff,
                            kind=INVARIANT),
            recovery,
            gap,
            vs_scratch,
        ],
    )


def speed_item(cfg: GQAConfig, runs: dict[int, GroupRun], check: dict[str, float]) -> ItemResult:
    """Item 2: batched cached decode tokens/s, MHA vs GQA (nh/4)."""
    nh, g = cfg.model.n_heads, cfg.gqa_groups
    mha, gqa = runs[nh], runs[g]
    faster = Finding.timing_ratio(
        f"GQA ({g} K/V heads) decodes at batch {cfg.batch} faster than MHA (median over "
        f"{cfg.repeats} interleaved rounds of MHA decode time / GQA decode time)", "speedup",
        mha.round_decode_s, gqa.round_decode_s, cfg.min_speedup)
    speedup = faster.value
    metrics = {"cached_match_rate": check["cached_match_rate"],
               "cached_logit_max_abs_diff": check["cached_logit_max_abs_diff"],
               "kv_bytes_ratio": mha.cache_bytes / gqa.cache_bytes}
    timings = {"speedup": speedup, "speedup.se": faster.se, "best_of_rounds_speedup":
               gqa.tokens_per_s / mha.tokens_per_s,
               "mha.tokens_per_s": mha.tokens_per_s, "gqa.tokens_per_s": gqa.tokens_per_s}
    text = "\n".join([
        f"batched cached greedy decoding: batch {cfg.batch}, prompt {cfg.prompt_len} bytes, "
        f"{cfg.new_tokens} new bytes, {cfg.num_threads} thread(s), best of {cfg.repeats} "
        "(round-robin over the group counts)",
        f"model: d_model {cfg.model.d_model}, {cfg.model.n_layers} layers, {nh} heads, {cfg.model.position}",
        f"{'':>12} {'K/V heads':>9} {'decode tok/s':>12} {'ms/step':>8} {'prefill s':>9} {'KV MiB':>7}",
        *(f"{name:>12} {r.n_kv_heads:>9} {r.tokens_per_s:>12.0f} {r.ms_per_step:>8.2f} "
          f"{r.prefill_s:>9.3f} {r.cache_bytes / 2**20:>7.2f}" for name, r in (("MHA", mha), ("GQA", gqa))),
        f"speedup (median over rounds of the decode-time ratio): {speedup:.2f}x "
        f"(target >= {cfg.min_speedup}, by 2 robust SE)",
        f"cached decode vs uncached forward ({cfg.check_rows} rows): argmax match "
        f"{check['cached_match_rate']:.4f}, max |logit diff| {check['cached_logit_max_abs_diff']:.2e}",
        "reproduce: python -m nlpcurriculum profile default && dvc repro gqa  "
        "(or python stages/gqa.py with the splits in place)",
    ]) + "\n"
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.bar([f"MHA ({nh} K/V)", f"GQA ({g} K/V)"], [mha.tokens_per_s, gqa.tokens_per_s], color=["C0", "C1"])
    ax.set(ylabel="decode tokens / s (1 CPU thread)",
           title=f"batch {cfg.batch}, prompt {cfg.prompt_len}: {speedup:.2f}x")
    ax.grid(alpha=0.3, axis="y")
    return ItemResult(
        item=ITEM["speed"], metrics=metrics, timings=timings, figures={"speed.png": fig},
        texts={"speed.txt": text},
        findings=[
            faster,
            Finding.at_least("the GQA model's cached batched decode equals its uncached forward "
                             "argmax (match rate)", "cached_match_rate", check["cached_match_rate"],
                             cfg.checks.min_cached_match_rate, kind=INVARIANT),
        ],
    )


def ablation_item(cfg: GQAConfig, runs: dict[int, GroupRun]) -> ItemResult:
    """Item 3: latency, KV bytes and quality against the number of K/V heads."""
    nh = cfg.model.n_heads
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}  # clock readings, apart from the deterministic metrics
    lines = [f"{'K/V heads':>9} {'ms/step':>8} {'tok/s':>8} {'KV bytes':>10} {'formula':>10} "
             f"{'loss conv':>9} {'loss up':>8}"]
    for k, r in runs.items():
        timings[f"kv{k}.ms_per_step"] = r.ms_per_step
        metrics[f"kv{k}.kv_bytes"] = float(r.cache_bytes)
        metrics[f"kv{k}.loss_converted"] = r.loss_converted
        metrics[f"kv{k}.loss_uptrained"] = r.loss_uptrained
        lines.append(f"{k:>9} {r.ms_per_step:>8.2f} {r.tokens_per_s:>8.0f} {r.cache_bytes:>10} "
                     f"{r.formula_bytes:>10} {r.loss_converted:>9.4f} {r.loss_uptrained:>8.4f}")
    metrics["kv_bytes_formula_error"] = float(sum(abs(r.cache_bytes - r.formula_bytes) for r in runs.values()))
    lo = min(runs)
    latency = Finding.timing_ratio(
        f"fewer K/V heads decode faster: MHA's decode time over {lo} K/V head(s)'s (median over "
        f"{cfg.repeats} interleaved rounds)", "latency_ratio_mha_over_fewest",
        runs[nh].round_decode_s, runs[lo].round_decode_s, cfg.checks.min_latency_ratio)
    timings["latency_ratio_mha_over_fewest"] = latency.value
    timings["latency_ratio_mha_over_fewest.se"] = latency.se
    ks = list(runs)
    fig = Figure(figsize=(13.0, 4.0), layout="constrained")
    a0, a1, a2 = fig.subplots(1, 3)
    a0.plot(ks, [runs[k].ms_per_step for k in ks], marker="o")
    a0.set(ylabel="ms per decode step (batch of all rows)", title="decode latency")
    a1.plot(ks, [runs[k].cache_bytes / 2**20 for k in ks], marker="o", label="measured")
    a1.plot(ks, [runs[k].formula_bytes / 2**20 for k in ks], linestyle="--", label="formula")
    a1.set(ylabel="KV cache MiB", title=f"KV cache, batch {cfg.batch}")
    a1.legend(fontsize=8)
    a2.plot(ks, [runs[k].loss_converted for k in ks], marker="o", label="converted")
    a2.plot(ks, [runs[k].loss_uptrained for k in ks], marker="o", label="uptrained")
    a2.set(ylabel="validation loss (nats / byte)", title="quality")
    a2.legend(fontsize=8)
    for ax in (a0, a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K/V heads (1 = MQA, %d = MHA)" % nh)
        ax.grid(alpha=0.3)
    return ItemResult(
        item=ITEM["ablation"], metrics=metrics, timings=timings, figures={"groups.png": fig},
        texts={"groups.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.at_most("measured KV-cache bytes equal 2 L nkv hs 4B B T for every group count "
                            "(sum of |differences|)", "kv_bytes_formula_error",
                            metrics["kv_bytes_formula_error"], cfg.checks.max_kv_bytes_formula_error,
                            kind=INVARIANT),
            latency,
        ],
    )
