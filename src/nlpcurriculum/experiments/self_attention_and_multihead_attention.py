"""Experiments of "Self-Attention & Multihead Attention": one query by hand, many heads, the mask.

All three items read one small byte-level mini-former trained on the corpus (the
:class:`AttentionConfig` ``model`` and ``train`` sections), so what they show is learned
attention on real text, not random weights:

1. *Hand-wire dot-product attention for one token* (:func:`single_token_item`): take the trained
   model's query for the last character of a sample line and the keys/values of the whole line,
   and run :func:`~nlpcurriculum.nn.attention.single_token_attention`: scores ``q . k_j`` ->
   scaled by ``1/sqrt(hs)`` -> softmax -> weighted sum of values, every intermediate shown in a
   figure and a table. Checked (invariants): equal to
   ``torch.nn.functional.scaled_dot_product_attention`` and to the trained model's own attention
   row (to 1e-6), and the weights sum to 1. The finding: training makes that query selective. On
   every validation window the same head's last query is wired by hand in the trained model and
   in the untrained one (the control: the same initial weights); the normalised entropy of its
   weights (1 = uniform over the window) must drop, paired over the windows.
   Replicated: the same model trained from ``replication_seeds`` (other initialisations and
   batch orders) gives one mean gain per training run, and the gain must hold across runs
   (:func:`replication_findings`), so it is a property of training, not of one run.
2. *Scale to multi-head, plot per-head heatmaps* (:func:`multi_head_item`): every head of every
   layer on the sample line. Checked: our :class:`~nlpcurriculum.nn.attention.MultiHeadAttention`
   equals ``torch.nn.MultiheadAttention`` loaded with the same weights (fp32 tolerance), and the
   trained heads attend *differently* (mean pairwise Jensen-Shannon divergence between heads'
   attention rows), by a margin more than the randomly initialised model's heads on the same
   windows (the control; paired over the windows); at initialisation all heads are close to
   uniform and alike. Replicated across training runs as in item 1.
3. *Mask out future tokens, verify the causal property* (:func:`causal_item`): replace the
   second half of validation windows by other bytes; with the causal mask every logit of the
   first half is *bit-for-bit* unchanged (max abs difference exactly 0, on the fused kernel and on
   the by-hand path), and so is the gradient of any past prediction with respect to future inputs;
   the same weights without the mask change past logits.

Vaswani et al. 2017, arXiv:1706.03762, sections 3.2.1-3.2.3. Byte tokens (vocabulary 256) keep
the stage independent of the tokenizer stage; a "token" in the figures is one byte (one
character for ASCII text).

Left out: cross-attention, attention variants (sparse, linear), heads of larger pretrained
models (nothing is downloaded).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from nlpcurriculum.experiments.harness import (
    BYTE_VOCAB,
    CorpusSplits,
    byte_tokens,
    curve,
    final_train_loss,
    plot_curves,
    torch_threads,
    train_run,
    uniform_loss,
)
from nlpcurriculum.interpret.heads import (
    attention_entropy,
    head_js_matrix,
    mean_attention_distance,
    mean_pairwise_js,
    previous_token_weight,
)
from nlpcurriculum.interpret.qkv import capture_qkv
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model, record_activations
from nlpcurriculum.nn.attention import single_token_attention
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import TrainerConfig, TrainResult, seed_everything

__all__ = [
    "ITEM",
    "ITEMS",
    "AttentionConfig",
    "Inputs",
    "Outputs",
    "byte_label",
    "causal_item",
    "last_query_entropy",
    "multi_head_item",
    "pick_sample",
    "replication_findings",
    "run",
    "run_means",
    "single_token_item",
    "torch_multihead_parity",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "single_token": "self-attention-and-multihead-attention/1",
    "multi_head": "self-attention-and-multihead-attention/2",
    "causal": "self-attention-and-multihead-attention/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())


@dataclass
class AttentionChecks:
    """Bounds of the findings that no knob above sets (params ``attention.checks``).

    Attributes:
        max_past_logit_change_masked: item 3: past-logit change, causal mask on, fused kernel.
        max_past_logit_change_masked_by_hand: item 3: the same on the by-hand attention path.
        max_future_gradient_masked: item 3: gradient of past predictions w.r.t. future inputs,
            mask on.
        min_selectivity_gain: item 1: normalised entropy of the hand-wired last query's weights,
            untrained minus trained, mean over validation windows (beyond two standard errors).
    """

    max_past_logit_change_masked: float = 0.0
    max_past_logit_change_masked_by_hand: float = 0.0
    max_future_gradient_masked: float = 0.0
    min_selectivity_gain: float = 0.05


@dataclass(kw_only=True)
class AttentionConfig:
    """The ``attention`` section of params/self_attention_and_multihead_attention.yaml.

    Attributes:
        model: the byte-level mini-former whose attention is inspected (``vocab_size`` 256).
        train: how it is trained on the corpus.
        seq_len: training window, in bytes.
        seed: model initialisation seed.
        num_threads: torch intra-op threads for the stage.
        sample_chars: length of the sample line shown in the figures (bytes).
        demo_layer: layer of the hand-wired single query (item 1).
        demo_head: head of the hand-wired single query.
        stat_windows: validation windows the head statistics and the causal test use.
        perturb_from: item 3: first replaced position; 0 means ``seq_len // 2``.
        parity_tol: item 1: max abs difference allowed against torch's attention (fp32).
        mha_parity_tol: item 2: max abs difference allowed against ``nn.MultiheadAttention``.
        min_head_js: item 2: how much higher (nats) the trained heads' mean pairwise JS
            divergence must be than the randomly initialised model's on the same windows (mean
            over windows, beyond two standard errors).
        max_init_head_js: item 2: the same quantity at initialisation must stay below this
            (heads start alike: near-uniform attention).
        min_unmasked_change: item 3: the past-logit change the unmasked model must show.
        replication_seeds: further training runs (initialisation and batch-order seeds besides
            ``seed``) over which the findings of items 1-2 are replicated: one mean per run,
            paired with its own untrained initialisation.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 64
    seed: int = 0
    num_threads: int = 1
    sample_chars: int = 32
    demo_layer: int = 0
    demo_head: int = 0
    stat_windows: int = 32
    perturb_from: int = 0
    parity_tol: float = 1e-6
    mha_parity_tol: float = 1e-5
    min_head_js: float = 0.05
    max_init_head_js: float = 0.01
    min_unmasked_change: float = 1e-3
    replication_seeds: tuple[int, ...] = ()
    checks: AttentionChecks = field(default_factory=AttentionChecks)

    def __post_init__(self) -> None:
        m = self.model
        if m.vocab_size != BYTE_VOCAB:
            raise ValueError(f"model.vocab_size must be {BYTE_VOCAB} (byte tokens), got {m.vocab_size}")
        if not 2 <= self.seq_len <= m.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} must be in [2, model.max_seq_len={m.max_seq_len}]")
        if not 2 <= self.sample_chars <= self.seq_len:
            raise ValueError(f"sample_chars={self.sample_chars} must be in [2, seq_len={self.seq_len}]")
        if not 0 <= self.demo_layer < m.n_layers:
            raise ValueError(f"demo_layer={self.demo_layer} must be < model.n_layers={m.n_layers}")
        if not 0 <= self.demo_head < m.n_heads:
            raise ValueError(f"demo_head={self.demo_head} must be < model.n_heads={m.n_heads}")
        if not 0 <= self.perturb_from < self.seq_len:
            raise ValueError(f"perturb_from={self.perturb_from} must be in [0, seq_len)")
        if self.seed in self.replication_seeds:
            raise ValueError(f"replication_seeds must not repeat seed={self.seed}")
        if self.stat_windows < 1 or self.num_threads < 1:
            raise ValueError("stat_windows and num_threads must be >= 1")
        if not m.causal:
            raise ValueError("model.causal must be true: item 3 tests the causal mask")


def byte_label(b: int) -> str:
    """A printable label for a byte token: the character, ``␣`` for space, escapes otherwise."""
    if b == 32:
        return "␣"
    if 33 <= b < 127:
        return chr(b)
    return {10: "\\n", 9: "\\t"}.get(b, f"x{b:02x}")


def pick_sample(texts: Sequence[str], n_chars: int) -> Tensor:
    """The first ``n_chars`` bytes of the first line of ``texts`` that is printable ASCII and long
    enough (a readable sentence for the figures); else the first ``n_chars`` bytes of the text.

    Returns:
        ``(n_chars,)`` int64 byte ids.
    """
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if len(line) >= n_chars and line.isascii() and line.isprintable() and " " in line:
                return byte_tokens([line[:n_chars]])
    stream = byte_tokens(texts)
    if stream.numel() < n_chars:
        raise ValueError(f"the texts hold {stream.numel()} bytes, fewer than sample_chars={n_chars}")
    return stream[:n_chars]


# ---------------------------------------------------------------------------------------------
# item 1: one query by hand


def last_query_entropy(model: MiniFormer, windows: Tensor, layer: int, head: int) -> list[float]:
    """Normalised entropy ``H / log T`` of each window's last query, wired by hand in one head.

    Args:
        model: a mini-former.
        windows: ``(N, T)`` token ids; the query is each window's last token, the keys all of it.
        layer, head: which attention.

    Returns:
        N values in [0, 1]: 1 = uniform over the T keys, 0 = all weight on one key.
    """
    with torch.no_grad():
        qkv = capture_qkv(model, windows)[layer]
    attn = model.blocks[layer].attn
    kv_head = head // (attn.n_heads // attn.n_kv_heads)
    T = windows.size(1)
    out = []
    for n in range(windows.size(0)):
        w = single_token_attention(qkv.q[n, head, -1], qkv.k[n, kv_head], qkv.v[n, kv_head]).weights
        out.append(float(-torch.xlogy(w, w).sum()) / math.log(T))
    return out


def single_token_item(
    model: MiniFormer, sample: Tensor, layer: int, head: int, tol: float,
    control: MiniFormer | None = None, windows: Tensor | None = None, min_selectivity_gain: float = 0.05,
) -> ItemResult:
    """Hand-wired attention of the sample's last token in one head of a trained model.

    Args:
        model: the trained mini-former.
        sample: ``(T,)`` byte ids; the query is the last one, the keys/values all of them.
        layer: which block's attention.
        head: which query head.
        tol: the parity tolerance of the invariants.
        control: the same model untrained; with ``windows``, the finding compares the last query's
            normalised entropy (:func:`last_query_entropy`) in the two, paired over the windows.
        windows: ``(N, T)`` validation windows of that finding.
        min_selectivity_gain: its margin (untrained minus trained normalised entropy).
    """
    qkv = capture_qkv(model, sample[None])[layer]
    attn = model.blocks[layer].attn
    kv_head = head // (attn.n_heads // attn.n_kv_heads)  # grouped-query: the K/V head this head reads
    q = qkv.q[0, head, -1]  # (hs,): the last token's query
    K, V = qkv.k[0, kv_head], qkv.v[0, kv_head]  # (T, hs) each
    r = single_token_attention(q, K, V)

    reference = F.scaled_dot_product_attention(q[None, None, None], K[None, None], V[None, None])
    diff_sdpa = float((r.output - reference[0, 0, 0]).abs().max())
    sum_error = abs(float(r.weights.sum()) - 1.0)

    findings = [
        Finding.at_most(
            "the hand-wired output (scores -> scale -> softmax -> weighted sum) equals "
            "torch.nn.functional.scaled_dot_product_attention",
            "max_abs_diff_vs_torch_sdpa", diff_sdpa, tol, kind=INVARIANT),
        Finding.at_most("the attention weights sum to 1", "weight_sum_error", sum_error, tol,
        kind=INVARIANT),
    ]
    metrics = {
        "max_abs_diff_vs_torch_sdpa": diff_sdpa,
        "weight_sum_error": sum_error,
        "raw_score_std": float(r.scores.std()),
        "scaled_score_std": float(r.scaled_scores.std()),
        "max_weight": float(r.weights.max()),
        "attended_position": int(r.weights.argmax()),
        "head_dim": int(q.numel()),
    }
    if model.position.name != "alibi":  # ALiBi adds a score bias the single query leaves out
        with torch.no_grad():
            row = model(sample[None], return_attn=True).attentions[layer][0, head, -1]  # (T,)
        diff_model = float((r.weights - row).abs().max())
        metrics["max_abs_diff_vs_model_weights"] = diff_model
        findings.append(Finding.at_most(
            "the hand-wired weights equal the trained model's own attention row",
            "max_abs_diff_vs_model_weights", diff_model, tol, kind=INVARIANT))

    if control is not None and windows is not None:
        trained = last_query_entropy(model, windows, layer, head)
        untrained = last_query_entropy(control, windows, layer, head)
        metrics["last_query_entropy.trained"] = float(np.mean(trained))
        metrics["last_query_entropy.untrained"] = float(np.mean(untrained))
        selective = Finding.compare(
            f"training makes the hand-wired query selective: normalised entropy of layer {layer} head "
            f"{head}'s last-token weights, untrained minus trained (1 = uniform; paired over "
            f"{len(trained)} validation windows)", "selectivity_gain", untrained, trained,
            margin=min_selectivity_gain)
        metrics["selectivity_gain"] = selective.value
        metrics["selectivity_gain.se"] = selective.se
        findings.append(selective)

    labels = [byte_label(int(b)) for b in sample]
    return ItemResult(
        item=ITEM["single_token"],
        metrics=metrics,
        figures={"single_token.png": _single_token_figure(r, V, labels, layer, head)},
        texts={"single_token.txt": _single_token_table(r, V, labels, layer, head)},
        findings=findings,
    )


def _single_token_table(r, V: Tensor, labels: list[str], layer: int, head: int) -> str:
    hs = len(r.output)
    lines = [
        f"Query: the last token {labels[-1]!r} of {''.join(labels)!r}",
        f"layer {layer}, head {head}; head size d = {hs}, so scores are multiplied by "
        f"1/sqrt({hs}) = {1 / math.sqrt(hs):.4f}",
        "",
        f"{'j':>3} {'token':>6} {'q.k_j':>9} {'/sqrt(d)':>9} {'softmax':>8} {'|w_j v_j|':>10}",
    ]
    for j, label in enumerate(labels):
        lines.append(
            f"{j:>3} {label:>6} {float(r.scores[j]):>9.4f} {float(r.scaled_scores[j]):>9.4f} "
            f"{float(r.weights[j]):>8.4f} {float(r.weights[j] * V[j].norm()):>10.4f}"
        )
    lines += [
        "",
        f"sum of weights = {float(r.weights.sum()):.7f}",
        "output = sum_j w_j v_j = [" + ", ".join(f"{float(x):.3f}" for x in r.output) + "]",
    ]
    return "\n".join(lines) + "\n"


def _single_token_figure(r, V: Tensor, labels: list[str], layer: int, head: int) -> Figure:
    T = len(labels)
    x = np.arange(T)
    fig = Figure(figsize=(11.0, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], r.scores, "1. raw scores  q . k_j", "C0"),
        (axes[0, 1], r.scaled_scores, f"2. scaled  q . k_j / sqrt({len(r.output)})", "C1"),
        (axes[1, 0], r.weights, "3. softmax weights (sum = 1)", "C2"),
    ]
    for ax, values, title, color in panels:
        ax.bar(x, values.numpy(), color=color)
        ax.set_title(title)
        ax.set_xticks(x, labels=labels, fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[1, 1]
    # each row j is w_j * v_j; the bottom row is their sum, the output
    contributions = (r.weights[:, None] * V).numpy()  # (T, hs)
    table = np.vstack([contributions, r.output.numpy()[None, :]])  # (T+1, hs)
    lim = float(np.abs(table).max()) or 1.0
    image = ax.imshow(table, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.axhline(T - 0.5, color="black", linewidth=1.5)
    ax.set_yticks(list(range(T + 1)), labels=labels + ["= out"], fontsize=6)
    ax.set_xlabel("value feature")
    ax.set_title("4. weighted values  w_j v_j  and their sum")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(
        f"Dot-product attention for one query: token {labels[-1]!r} (last of the line), "
        f"layer {layer}, head {head} of the trained model"
    )
    return fig


# ---------------------------------------------------------------------------------------------
# item 2: many heads


def torch_multihead_parity(attn, x: Tensor) -> tuple[float, float]:
    """Max abs differences (output, per-head weights) between ``attn`` and ``nn.MultiheadAttention``.

    Torch's module stores ``in_proj_weight`` as the stacked ``[W_q; W_k; W_v]``, the same layout as
    our fused ``qkv`` projection, so the weights copy over unchanged. Positions are left out
    (``position=None``): torch's module knows none of them.

    Args:
        attn: a causal :class:`~nlpcurriculum.nn.attention.MultiHeadAttention` with ``nkv == nh``.
        x: ``(B, T, C)`` input.
    """
    if attn.n_kv_heads != attn.n_heads:
        raise ValueError("nn.MultiheadAttention has no grouped-query attention (needs nkv == nh)")
    T = x.size(1)
    has_bias = attn.qkv.bias is not None
    ref = nn.MultiheadAttention(attn.d_model, attn.n_heads, bias=has_bias, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.qkv.weight)
        ref.out_proj.weight.copy_(attn.proj.weight)
        if has_bias:
            ref.in_proj_bias.copy_(attn.qkv.bias)
            ref.out_proj.bias.copy_(attn.proj.bias)
        ours, w_ours = attn(x, need_weights=True)  # causal by default
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch: True = may NOT attend
        theirs, w_theirs = ref(x, x, x, attn_mask=future, need_weights=True, average_attn_weights=False)
    return float((ours - theirs).abs().max()), float((w_ours - w_theirs).abs().max())


def multi_head_item(
    model: MiniFormer,
    init_model: MiniFormer,
    windows: Tensor,
    sample: Tensor,
    train_result: TrainResult,
    cfg: AttentionConfig,
) -> ItemResult:
    """Per-head heatmaps of the trained model, head-diversity numbers and torch parity.

    Args:
        model: the trained model.
        init_model: the same architecture at initialisation (its heads for comparison).
        windows: ``(N, T)`` validation windows for the statistics.
        sample: ``(T_s,)`` the sample line for the heatmaps.
        train_result: the training run (its curves).
        cfg: the stage config.
    """
    with torch.no_grad():
        trained = model(windows, return_attn=True).attentions  # n_layers x (N, nh, T, T)
        initial = init_model(windows, return_attn=True).attentions
        sample_maps = model(sample[None], return_attn=True).attentions
    js_trained = [mean_pairwise_js(w) for w in trained]
    js_init = [mean_pairwise_js(w) for w in initial]
    mean_trained, mean_init = float(np.mean(js_trained)), float(np.mean(js_init))

    with record_activations(model) as acts, torch.no_grad():
        model(windows[:8])
    attn0 = model.blocks[0].attn
    if attn0.n_kv_heads == attn0.n_heads:
        diff_out, diff_w = torch_multihead_parity(attn0, acts["layer0.norm1"])
    else:
        diff_out = diff_w = float("nan")

    metrics: dict[str, float] = {
        "mean_head_js_trained": mean_trained,
        "mean_head_js_init": mean_init,
        "final_train_loss": final_train_loss(train_result.history),
    }
    if math.isfinite(diff_out):
        metrics["max_abs_diff_vs_nn_multihead"] = diff_out
        metrics["max_abs_weight_diff_vs_nn_multihead"] = diff_w
    if train_result.final_val_loss is not None:  # None when train.eval_every is 0
        metrics["final_val_loss"] = float(train_result.final_val_loss)
        metrics["bits_per_byte"] = float(train_result.final_val_loss) / math.log(2)
    lines = [f"{'layer':>5} {'head':>4} {'entropy':>8} {'distance':>8} {'prev-token w':>12}"]
    for i, w in enumerate(trained):
        metrics[f"layer{i}.head_js"] = js_trained[i]
        ent, dist, prev = attention_entropy(w), mean_attention_distance(w), previous_token_weight(w)
        for h in range(w.size(1)):
            lines.append(f"{i:>5} {h:>4} {float(ent[h]):>8.3f} {float(dist[h]):>8.2f} "
                         f"{float(prev[h]):>12.3f}")
    table = (
        "Per-head statistics of the trained model on validation windows (rows t >= 1):\n"
        "entropy in nats (log(t+1) = uniform), distance = mean tokens looked back, "
        "prev-token w = mean weight on token t-1.\n\n" + "\n".join(lines) + "\n\n"
        f"mean pairwise JS divergence between heads: trained {mean_trained:.4f}, "
        f"at initialisation {mean_init:.4f} nats (max ln 2 = 0.693)\n"
    )
    # the control: the same windows through the randomly initialised model, window by window
    per_window_trained = [_mean_layer_js(trained, n) for n in range(windows.size(0))]
    per_window_init = [_mean_layer_js(initial, n) for n in range(windows.size(0))]
    diverse = Finding.compare(
        "trained heads attend differently, far more than the randomly initialised model's: mean "
        "pairwise Jensen-Shannon divergence between heads' attention rows (nats, mean over layers), "
        f"trained - initialised, paired over {windows.size(0)} validation windows",
        "head_js_gain_over_init", per_window_trained, per_window_init, margin=cfg.min_head_js)
    metrics["head_js_gain_over_init"] = diverse.value
    metrics["head_js_gain_over_init.se"] = diverse.se
    findings = [
        diverse,
        Finding.at_most(
            "at initialisation the heads are alike (all close to uniform attention)",
            "mean_head_js_init", mean_init, cfg.max_init_head_js),
    ]
    if math.isfinite(diff_out):
        findings.append(Finding.at_most(
            "our multi-head attention equals torch.nn.MultiheadAttention with the same weights "
            "(fp32, outputs)", "max_abs_diff_vs_nn_multihead", diff_out, cfg.mha_parity_tol,
            kind=INVARIANT))
    labels = [byte_label(int(b)) for b in sample]
    return ItemResult(
        item=ITEM["multi_head"],
        metrics=metrics,
        series={"val_loss": curve(train_result.history),
                "train_loss": curve(train_result.history, "loss")},
        figures={
            "heads.png": _heads_figure(sample_maps, labels),
            "head_divergence.png": _divergence_figure(trained, initial),
            "loss.png": plot_curves(
                {"validation": curve(train_result.history)},
                "byte-level mini-former on the corpus",
                hlines={"uniform over 256 bytes": uniform_loss(BYTE_VOCAB)},
            ),
        },
        texts={"heads.txt": table},
        findings=findings,
    )


def _mean_layer_js(maps: list[Tensor], n: int) -> float:
    """Window ``n``'s mean pairwise head JS divergence, averaged over the layers' maps."""
    return float(np.mean([mean_pairwise_js(w[n:n + 1]) for w in maps]))


def _heads_figure(maps: list[Tensor], labels: list[str]) -> Figure:
    n_layers, nh = len(maps), maps[0].size(1)
    T = len(labels)
    fig = Figure(figsize=(3.3 * nh, 3.3 * n_layers + 0.6), layout="constrained")
    axes = np.array(fig.subplots(n_layers, nh, squeeze=False))
    for i in range(n_layers):
        for h in range(nh):
            ax = axes[i, h]
            ax.imshow(maps[i][0, h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {i}, head {h}", fontsize=9)
            ax.set_xticks(range(T), labels=labels, fontsize=5)
            ax.set_yticks(range(T), labels=labels, fontsize=5)
            if h == 0:
                ax.set_ylabel("query")
            if i == n_layers - 1:
                ax.set_xlabel("key")
    fig.suptitle("Attention weights per head (rows: queries, columns: keys; causal: upper triangle 0)")
    return fig


def _divergence_figure(trained: list[Tensor], initial: list[Tensor]) -> Figure:
    n_layers = len(trained)
    fig = Figure(figsize=(3.2 * n_layers + 1.0, 6.2), layout="constrained")
    axes = np.array(fig.subplots(2, n_layers, squeeze=False))
    image = None
    for row, (name, maps) in enumerate((("trained", trained), ("initialisation", initial))):
        for i, w in enumerate(maps):
            m = head_js_matrix(w).numpy()
            image = axes[row, i].imshow(m, cmap="magma", vmin=0.0, vmax=math.log(2))
            axes[row, i].set_title(
                f"{name}, layer {i}\nmean off-diag {mean_pairwise_js(w):.3f}", fontsize=9)
            axes[row, i].set_xlabel("head")
            axes[row, i].set_ylabel("head")
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.8, label="JS divergence (nats)")
    fig.suptitle("How differently heads attend: pairwise Jensen-Shannon divergence")
    return fig


# ---------------------------------------------------------------------------------------------
# item 3: the causal mask


def _future_influence(model: MiniFormer, idx: Tensor) -> Tensor:
    """``(T, T)``: ``[t, s]`` = norm of the gradient of prediction ``t`` w.r.t. input embedding ``s``.

    Prediction ``t`` is the log-probability the model gives the token at ``t + 1`` (the observed
    next byte; the last position uses its own argmax).
    """
    held: dict[str, Tensor] = {}

    def leaf(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        held["emb"] = out.detach().requires_grad_(True)  # a leaf we can differentiate against
        return held["emb"]

    handle = model.tok_emb.register_forward_hook(leaf)
    try:
        logp = model(idx[None]).logits[0].log_softmax(-1)  # (T, V)
    finally:
        handle.remove()
    T = idx.numel()
    nxt = torch.cat([idx[1:], logp[-1].argmax()[None]])  # (T,): the token each position predicts
    rows = []
    for t in range(T):
        (grad,) = torch.autograd.grad(logp[t, nxt[t]], held["emb"], retain_graph=t < T - 1)
        rows.append(grad[0].norm(dim=-1))  # (T,)
    return torch.stack(rows).detach()  # (T, T)


def causal_item(model: MiniFormer, windows: Tensor, cfg: AttentionConfig) -> ItemResult:
    """Perturb the future, measure the past: with and without the causal mask.

    Args:
        model: the trained (causal) model.
        windows: ``(N, T)`` validation windows.
        cfg: the stage config (``perturb_from``, thresholds).
    """
    N, T = windows.shape
    t0 = cfg.perturb_from or T // 2
    g = torch.Generator().manual_seed(cfg.seed)
    shift = torch.randint(1, BYTE_VOCAB, (N, T - t0), generator=g)
    perturbed = windows.clone()
    perturbed[:, t0:] = (windows[:, t0:] + shift) % BYTE_VOCAB  # every future byte is different

    unmasked = MiniFormer(replace(model.config, causal=False)).eval()
    unmasked.load_state_dict(model.state_dict())

    with torch.no_grad():
        a, b = model(windows).logits, model(perturbed).logits  # (N, T, V): fused kernel
        a_hand = model(windows, return_attn=True).logits  # the by-hand path
        b_hand = model(perturbed, return_attn=True).logits
        c, d = unmasked(windows).logits, unmasked(perturbed).logits
    past_fused = float((a[:, :t0] - b[:, :t0]).abs().max())
    past_hand = float((a_hand[:, :t0] - b_hand[:, :t0]).abs().max())
    future_fused = float((a[:, t0:] - b[:, t0:]).abs().max())
    past_unmasked = float((c[:, :t0] - d[:, :t0]).abs().max())
    per_pos_masked = (a - b).abs().amax(dim=(0, 2))  # (T,)
    per_pos_unmasked = (c - d).abs().amax(dim=(0, 2))  # (T,)

    n_inf = min(T, 32)
    influence_masked = _future_influence(model, windows[0, :n_inf])
    influence_unmasked = _future_influence(unmasked, windows[0, :n_inf])
    upper = torch.ones(n_inf, n_inf, dtype=torch.bool).triu(1)  # s > t: the future of t
    future_grad = float(influence_masked[upper].max())
    future_grad_unmasked = float(influence_unmasked[upper].max())

    findings = [
        Finding.at_most(
            "with the causal mask, replacing future tokens leaves every past logit exactly "
            "unchanged (fused attention kernel)", "max_abs_past_logit_change_masked", past_fused,
            cfg.checks.max_past_logit_change_masked, kind=INVARIANT),
        Finding.at_most(
            "... and on the by-hand attention path (the one that returns weights)",
            "max_abs_past_logit_change_masked_by_hand", past_hand,
            cfg.checks.max_past_logit_change_masked_by_hand, kind=INVARIANT),
        Finding.at_most(
            "with the mask, the gradient of every past prediction w.r.t. future inputs is exactly 0",
            "max_future_gradient_masked", future_grad, cfg.checks.max_future_gradient_masked,
            kind=INVARIANT),
        Finding.at_least(
            "without the mask, the same weights and perturbation change past logits",
            "max_abs_past_logit_change_unmasked", past_unmasked, cfg.min_unmasked_change),
    ]
    metrics = {
        "perturb_from": t0,
        "max_abs_past_logit_change_masked": past_fused,
        "max_abs_past_logit_change_masked_by_hand": past_hand,
        "max_abs_future_logit_change_masked": future_fused,
        "max_abs_past_logit_change_unmasked": past_unmasked,
        "max_future_gradient_masked": future_grad,
        "max_future_gradient_unmasked": future_grad_unmasked,
    }
    fig = _causal_figure(per_pos_masked, per_pos_unmasked, t0, influence_masked, influence_unmasked)
    text = (
        f"{N} validation windows of {T} bytes; bytes {t0}..{T - 1} replaced by other bytes.\n"
        f"max |change| of logits at positions < {t0}: masked {past_fused!r} (fused), "
        f"{past_hand!r} (by hand); unmasked {past_unmasked:.4f}\n"
        f"max |change| at positions >= {t0} (masked): {future_fused:.4f}  (the perturbation matters)\n"
        f"max gradient of a prediction w.r.t. a future input: masked {future_grad!r}, "
        f"unmasked {future_grad_unmasked:.4g}\n"
    )
    return ItemResult(
        item=ITEM["causal"], metrics=metrics, figures={"causal.png": fig},
        texts={"causal.txt": text}, findings=findings,
    )


def _causal_figure(masked: Tensor, unmasked: Tensor, t0: int, inf_m: Tensor, inf_u: Tensor) -> Figure:
    fig = Figure(figsize=(15.0, 4.6), layout="constrained")
    ax0, ax1, ax2 = fig.subplots(1, 3)
    pos = np.arange(masked.numel())
    ax0.plot(pos, unmasked.numpy(), marker=".", label="no mask")
    ax0.plot(pos, masked.numpy(), marker=".", label="causal mask")
    ax0.axvline(t0 - 0.5, color="grey", linestyle="--", label=f"bytes >= {t0} replaced")
    ax0.set_xlabel("position")
    ax0.set_ylabel("max |logit change|")
    ax0.set_title("change of each position's logits")
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
    vmax = float(max(inf_m.max(), inf_u.max()))
    for ax, m, name in ((ax1, inf_m, "causal mask"), (ax2, inf_u, "no mask")):
        image = ax.imshow(m.numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_title(f"{name}: |d log p(next | t) / d input s|")
        ax.set_xlabel("input position s")
        ax.set_ylabel("prediction at t")
    fig.colorbar(image, ax=[ax1, ax2], shrink=0.8)
    return fig


# ---------------------------------------------------------------------------------------------


#: What :func:`run` reads: the corpus's train split and its val split (curves, statistics, the
#: sample line, the causal test).
Inputs = CorpusSplits


@dataclass
class Outputs:
    """What :func:`run` builds besides the items, for the stage to save: the trained model."""

    model: MiniFormer | None = None


def run_means(model: MiniFormer, init_model: MiniFormer, windows: Tensor, cfg: AttentionConfig) -> dict[str, float]:
    """One training run's window means of the items 1-2 statistics, trained and at initialisation."""
    with torch.no_grad():
        trained = model(windows, return_attn=True).attentions
        initial = init_model(windows, return_attn=True).attentions
    return {
        "entropy.trained": float(np.mean(last_query_entropy(model, windows, cfg.demo_layer, cfg.demo_head))),
        "entropy.untrained": float(np.mean(last_query_entropy(init_model, windows, cfg.demo_layer, cfg.demo_head))),
        "head_js.trained": float(np.mean([mean_pairwise_js(w) for w in trained])),
        "head_js.untrained": float(np.mean([mean_pairwise_js(w) for w in initial])),
    }


def replication_findings(runs: list[dict[str, float]], cfg: AttentionConfig) -> tuple[Finding, Finding]:
    """Items 1-2's findings over training runs: one sample per run (its window mean), paired
    with the run's own initialisation; the margins are the window-level findings' margins.

    A gain that one lucky initialisation produced, or that comes from the windows rather than
    from training, fails here: the standard error is the spread between runs.
    """
    n = len(runs)
    selective = Finding.compare(
        f"across {n} training runs (seeds {cfg.seed}, {', '.join(map(str, cfg.replication_seeds))}), "
        f"training makes layer {cfg.demo_layer} head {cfg.demo_head}'s last query selective: "
        "normalised entropy, untrained minus trained, one window mean per run",
        "seeds.selectivity_gain", [r["entropy.untrained"] for r in runs],
        [r["entropy.trained"] for r in runs], margin=cfg.checks.min_selectivity_gain)
    diverse = Finding.compare(
        f"across {n} training runs, trained heads attend more differently than their own "
        "initialisation's: mean pairwise head JS divergence (nats), trained - initialised, one "
        "window mean per run", "seeds.head_js_gain_over_init", [r["head_js.trained"] for r in runs],
        [r["head_js.untrained"] for r in runs], margin=cfg.min_head_js)
    return selective, diverse


def run(cfg: AttentionConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Train the byte-level model on the train split and run the three items.

    Args:
        cfg: the stage config.
        inputs: the corpus splits.
        outputs: when given, receives the trained model (in eval mode) as ``outputs.model``.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    train_texts, val_texts = inputs.train_texts, inputs.val_texts
    with torch_threads(cfg.num_threads):
        train = TokenBatcher(byte_tokens(train_texts), cfg.seq_len, seed=cfg.seed)
        val = TokenBatcher(byte_tokens(val_texts), cfg.seq_len, mode="sequential")
        seed_everything(cfg.seed)
        init_model = build_model(cfg.model).eval()
        model, result = train_run(
            None, cfg.train, train, val, seed=cfg.seed, model=copy.deepcopy(init_model))
        windows = torch.cat([x for x, _ in val.eval_batches(cfg.stat_windows, 1)])  # (N, T)
        sample = pick_sample(val_texts, cfg.sample_chars)
        results = [
            single_token_item(model, sample, cfg.demo_layer, cfg.demo_head, cfg.parity_tol,
                              init_model, windows, cfg.checks.min_selectivity_gain),
            multi_head_item(model, init_model, windows, sample, result, cfg),
            causal_item(model, windows, cfg),
        ]
        if cfg.replication_seeds:
            runs = [run_means(model, init_model, windows, cfg)]
            for seed in cfg.replication_seeds:
                seed_everything(seed)
                init_s = build_model(cfg.model).eval()
                batches = TokenBatcher(byte_tokens(train_texts), cfg.seq_len, seed=seed)
                model_s, _ = train_run(None, cfg.train, batches, val, seed=seed,
                                       model=copy.deepcopy(init_s))
                runs.append(run_means(model_s.eval(), init_s, windows, cfg))
            for r, finding in zip(results[:2], replication_findings(runs, cfg)):
                r.findings.append(finding)
                r.metrics[finding.metric] = finding.value
                r.metrics[finding.metric + ".se"] = finding.se
    if outputs is not None:
        outputs.model = model
    return results
