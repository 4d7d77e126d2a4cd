"""The "Positional Embeddings" experiments: five position schemes on the same tokens and budget.

Self-attention on its own cannot tell ``"dog bites man"`` from ``"man bites dog"``: it is
permutation-equivariant, so position has to be put in (see :mod:`nlpcurriculum.nn.positional` for
the four schemes). This module trains the same small mini-former five times on the same
byte-level tokens, once per scheme ("none" is the control), and checks each scheme's expected
finding against measured numbers:

1. **Sinusoidal** (Vaswani et al. 2017, arXiv:1706.03762): ``PE(p) . PE(p + k)`` depends only on
   the offset k, never on p (each sine/cosine pair turns by a fixed angle per step), measured over
   every p of the table (an invariant). The findings: its gain over no positions (as for every
   scheme), and a test of the reason it may trail them here: a unit-amplitude sinusoid added to
   small token embeddings outweighs them, which Vaswani et al.'s scaling of the embeddings by
   ``sqrt(d_model)`` undoes; the scaled and the plain sinusoidal model are compared on several
   seeds (paired by seed).
2. **Learned** (GPT-2/BERT): a learned table beats no positions on validation loss; it has no row
   beyond ``max_seq_len``, so its length extrapolation is *not applicable* and is reported so.
3. **RoPE** (Su et al. 2021, arXiv:2104.09864): the attention score of a rotated query and key
   depends only on their relative position, measured on the trained model's own layer-0 queries
   and keys by shifting every position by s; and it beats no positions.
4. **ALiBi** (Press et al. 2021, arXiv:2108.12409, "Train Short, Test Long"): validation loss at 4x
   the training context stays within a tolerance of the 1x loss, and degrades least of the
   schemes that can run at 4x.

Items 1-4 compare against the control over ``seeds``: every scheme, "none" included, is trained
once per seed at the same budget (same initialisation seed and batches for every scheme within a
seed), and each comparison is paired by seed (:meth:`~nlpcurriculum.results.Finding.compare`:
the mean effect must clear its margin by two standard errors). The first seed's models are the
ones whose curves, tables and attention are shown.
5. **3D animation** of a toy sequence being encoded (:mod:`nlpcurriculum.viz.position_3d`): a
   repeated token is one point before encoding and distinct points after (measured distance 0,
   then > 0: invariants), for the additive sinusoid and for RoPE's rotation. The finding: after
   encoding, positions farther apart in the sequence lie farther apart in space, measured as the
   rank correlation of offset and distance over every pair of positions, gained over the vectors
   before encoding (the control, where distance depends on the tokens alone).
6. **Ablate positions, watch attention collapse**: on a synthetic lag-copy task where order is
   everything (predict the token ``lag`` places back), a model without positions cannot find the
   right key, and its causal attention spreads toward uniform over the prefix (normalised
   entropy ``H_t / log(t + 1)`` near 1); with positions one head locks onto offset ``-lag``.

Data: the corpus splits as UTF-8 **bytes** (vocabulary 256). The project's BPE tokenizer would
work as well; bytes keep the ablations independent of it, need no training, and make every
sequence length an exact number of characters. "Validation loss" is nats per byte.

Length extrapolation: the model is trained at context T (``model.max_seq_len``) and evaluated on
the *same* first ``eval_tokens`` validation bytes cut into windows of ``m * T`` for each multiple
m; a scheme that extrapolates keeps (or lowers: more context) its loss, one that does not sees
positions it never trained on and degrades.

Figures are drawn by :mod:`.plots` from the plain numbers measured here.

Dimension legend: B batch, T sequence length, C = d_model, V vocabulary, L layers, nh heads,
hs head size, P table positions.

Left out: RoPE/ALiBi context-extension tricks (NTK, YaRN, position interpolation), relative
position buckets (T5), and NoPE's length generalisation at scale (Kazemnejad et al. 2023,
arXiv:2305.19466); models are tiny and trained for minutes, so absolute numbers are far from
published ones, only the comparisons are meant.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.experiments.positional_embeddings.plots import (
    plot_attention_entropy,
    plot_attention_heatmaps,
    plot_before_after,
    plot_comparison,
    plot_learned_similarity,
    plot_loss_by_position,
    plot_rope_shift,
    plot_sinusoidal_table,
)
from nlpcurriculum.metrics.stats import spearman
from nlpcurriculum.metrics.timing import torch_threads
from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model, record_activations
from nlpcurriculum.nn.attention import repeat_kv
from nlpcurriculum.nn.positional import RotaryPositions, SinusoidalPositions, sinusoidal_table
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.tokenizers.bytes import byte_tokens
from nlpcurriculum.training import TokenBatcher, Trainer, TrainerConfig, seed_everything
from nlpcurriculum.viz.position_3d import (
    Panel,
    additive_frames,
    min_same_token_distance,
    pca_3d,
    render_gif,
    render_html,
    rotary_frames,
)

__all__ = [
    "ITEM",
    "ITEMS",
    "SCHEMES",
    "AblationConfig",
    "Inputs",
    "LagCopyTask",
    "PositionalConfig",
    "ScaledSinusoidalPositions",
    "SchemeRun",
    "ablation_item",
    "animation_item",
    "attention_entropy",
    "context_losses",
    "layer0_qk",
    "offset_distance_rank_correlation",
    "offset_dot_spread",
    "rope_shift_error",
    "run",
    "corpus_jobs",
    "map_jobs",
    "scheme_item",
    "seed_losses",
    "sinusoidal_scaling",
    "train_scheme",
]

#: The schemes trained on the corpus, "none" first: it is every other scheme's control.
SCHEMES = ("none", "sinusoidal", "learned", "rope", "alibi")

#: Curriculum item ids, by scheme (items 1-4) and by name (items 5-6).
ITEM = {
    "sinusoidal": "positional-embeddings/1",
    "learned": "positional-embeddings/2",
    "rope": "positional-embeddings/3",
    "alibi": "positional-embeddings/4",
    "animation": "positional-embeddings/5",
    "ablation": "positional-embeddings/6",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())



@dataclass
class AblationConfig:
    """Item 6: the lag-copy task, trained without and with positions.

    Attributes:
        position: the scheme of the "with positions" model.
        seq_len: T of the task's sequences.
        lag: the target at position t is the input token at ``t - lag`` (no target before).
        n_symbols: the task's alphabet, token ids ``0..n_symbols-1`` (uniform, independent).
        max_steps: optimizer updates per model (the other knobs come from ``train``).
        batch_size: sequences per update.
        eval_sequences: fixed held-out sequences for the loss, the entropies and the heatmaps.
        min_uniformity: finding: the no-position model's mean normalised attention entropy is at
            least this (1 = exactly uniform over the visible prefix).
        min_entropy_gap: finding: no-position minus with-position mean normalised entropy.
        min_loss_gap: finding: no-position minus with-position loss, nats.
    """

    position: str = "rope"
    seq_len: int = 32
    lag: int = 3
    n_symbols: int = 16
    max_steps: int = 300
    batch_size: int = 32
    eval_sequences: int = 64
    min_uniformity: float = 0.75
    min_entropy_gap: float = 0.2
    min_loss_gap: float = 0.5

    def __post_init__(self) -> None:
        if self.position not in SCHEMES or self.position == "none":
            raise ValueError(f"position must be one of {SCHEMES[1:]}, got {self.position!r}")
        for name in ("seq_len", "lag", "max_steps", "batch_size", "eval_sequences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lag >= self.seq_len - 1:
            raise ValueError(f"lag={self.lag} leaves too few targets in seq_len={self.seq_len}")
        if self.n_symbols < 2:
            raise ValueError(f"n_symbols must be >= 2, got {self.n_symbols}")


@dataclass
class PositionalChecks:
    """Bounds of the findings that no knob above sets (params ``positional_embeddings.checks``).

    Attributes:
        max_degradation_minus_best_other: item 4: ALiBi's degradation at the longest context minus
            that of the other scheme with the least mean degradation (mean over seeds, paired,
            below the bound by two standard errors: a tie fails).
        max_same_token_distance_before: item 5: largest min same-token distance before encoding.
        min_sqrt_scale_gain: item 1: val loss of the plain sinusoidal model minus the one whose
            token embeddings are scaled by ``sqrt(d_model)`` (nats/byte, mean over seeds, beyond
            two standard errors).
        min_offset_distance_rho_gain: item 5: rank correlation of offset and distance over pairs
            of positions, after encoding minus before, per panel.
    """

    max_degradation_minus_best_other: float = 0.0
    max_same_token_distance_before: float = 0.0
    min_sqrt_scale_gain: float = 0.02
    min_offset_distance_rho_gain: float = 0.3


@dataclass(kw_only=True)
class PositionalConfig:
    """The whole stage: the ``positional_embeddings`` section of params/positional_embeddings.yaml.

    Attributes:
        model: the shared architecture; ``max_seq_len`` is the training context T (and the
            learned table's size), ``position`` is replaced by each scheme in turn.
        train: the trainer knobs, identical for every scheme (same seed: same batches).
        ablation: item 6.
        context_multiples: evaluate at these multiples of T (must include 1 and a larger one).
        eval_tokens: validation bytes used for every extrapolation loss (rounded down to a
            multiple of the longest context).
        toy_text: item 5's sequence; ASCII, with at least one repeated character.
        anim_frames: frames from "not encoded" to "encoded" in item 5.
        max_offset: item 1 checks ``PE(p) . PE(p+k)`` for offsets ``k = 1..max_offset``.
        sinusoidal_tolerance: item 1: max spread of the dot product over p, relative to
            ``|PE|^2`` (fp32 rounding is ~1e-6).
        rope_shifts: item 3 shifts every position by these amounts.
        rope_tolerance: item 3: max score change under a shift, relative to the largest score
            (fp32 angles ``p * theta`` lose about ``p * 6e-8`` rad).
        min_gain_over_none: items 1-3: val loss improvement over no positions, nats/byte (mean
            over ``seeds``, paired by seed, beyond two standard errors).
        alibi_max_degradation: item 4: val loss at the longest context minus at T, nats/byte
            (mean over ``seeds``, below it by two standard errors).
        min_separation: item 5: smallest distance between occurrences of a token after
            encoding, relative to the mean vector norm.
        seeds: seeds (``train.seed`` replaced) of every comparison of items 1-4: each scheme and
            the control are trained once per seed, and item 1's ``sqrt(d_model)``-scaled
            sinusoidal model too; ``train.seed``'s runs are the main ones (reused). At least 2
            (a paired comparison needs a spread), 3 or more by default.
        num_threads: torch CPU threads, set by the stage (not by the library), and per worker.
            1 by default: these matmuls are too small to gain from a second thread, and on a
            shared machine two contending threads run several times slower.
        num_workers: corpus models trained side by side in worker processes (one per core);
            1 trains them one after another in this process. The results do not depend on it.
        checks: the other bounds of the findings.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    ablation: AblationConfig = field(default_factory=AblationConfig)
    context_multiples: list[int] = field(default_factory=lambda: [1, 2, 4])
    eval_tokens: int = 16384
    toy_text: str = "to be or not to be"
    anim_frames: int = 24
    max_offset: int = 32
    sinusoidal_tolerance: float = 1e-4
    rope_shifts: list[int] = field(default_factory=lambda: [1, 7, 100, 1000])
    rope_tolerance: float = 1e-3
    min_gain_over_none: float = 0.1
    alibi_max_degradation: float = 0.05
    min_separation: float = 0.01
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_threads: int = 1
    num_workers: int = 1
    checks: PositionalChecks = field(default_factory=PositionalChecks)

    def __post_init__(self) -> None:
        multiples = list(self.context_multiples)
        if sorted(set(multiples)) != multiples or multiples[0] != 1 or len(multiples) < 2:
            raise ValueError(
                "context_multiples must be increasing, start at 1 and have a larger one, "
                f"got {multiples}"
            )
        if self.eval_tokens < 1 or self.anim_frames < 2 or self.max_offset < 1:
            raise ValueError("eval_tokens and max_offset must be >= 1, anim_frames >= 2")
        text = self.toy_text
        if not text.isascii() or len(set(text)) == len(text):
            raise ValueError(f"toy_text must be ASCII with a repeated character, got {text!r}")
        if len(text) > self.model.max_seq_len:
            raise ValueError(f"toy_text is longer than model.max_seq_len={self.model.max_seq_len}")
        if self.ablation.n_symbols > self.model.vocab_size:
            raise ValueError(
                f"ablation.n_symbols={self.ablation.n_symbols} exceeds "
                f"model.vocab_size={self.model.vocab_size}"
            )
        if self.model.vocab_size < 256:
            raise ValueError(f"byte tokens need model.vocab_size >= 256, got {self.model.vocab_size}")
        if self.num_threads < 1 or self.num_workers < 1:
            raise ValueError(f"num_threads and num_workers must be >= 1, got {self.num_threads}, "
                             f"{self.num_workers}")
        if not self.rope_shifts or min(self.rope_shifts) < 1:
            raise ValueError(f"rope_shifts must be positive ints, got {self.rope_shifts}")
        seeds = self.seeds
        if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be at least 2 distinct seeds, got {seeds}")


# --------------------------------------------------------------------------------------- data


class LagCopyTask:
    """Random sequences whose target at position t is the input at ``t - lag``.

    Order is the whole task: the model must find *the* key ``lag`` places back, and nothing in a
    token's content says where it is. Sequences are uniform over ``n_symbols`` symbols, so without
    position information the best a model can do is guess among the symbols it has seen.
    Positions ``t < lag`` have no target (``-100``, ignored by the loss).

    Worked example (lag 2): ``x = [5, 1, 4, 4, 2]`` -> ``y = [-100, -100, 5, 1, 4]``.

    Implements the trainer's batch-source interface (``next_batch``, ``eval_batches``,
    ``state_dict``, ``load_state_dict``).

    Args:
        seq_len: T.
        lag: the copy offset (>= 1).
        n_symbols: alphabet size.
        seed: seed of the training stream; evaluation uses a disjoint fixed stream.
    """

    IGNORE = -100

    def __init__(self, seq_len: int, lag: int, n_symbols: int, seed: int = 0) -> None:
        if not 1 <= lag < seq_len:
            raise ValueError(f"need 1 <= lag < seq_len, got lag={lag}, seq_len={seq_len}")
        self.seq_len, self.lag, self.n_symbols, self.seed = seq_len, lag, n_symbols, seed
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` fresh ``(x, y)`` pairs, each ``(n, T)`` int64."""
        x = torch.randint(0, self.n_symbols, (n, self.seq_len), generator=generator)
        y = torch.full_like(x, self.IGNORE)
        y[:, self.lag:] = x[:, : -self.lag]  # (n, T - lag): the token lag places back
        return x, y

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        return self.sample(batch_size, self.generator)

    def eval_batches(self, batch_size: int, n_batches: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The same ``n_batches`` batches every call (an independent seed, never trained on)."""
        generator = torch.Generator().manual_seed(self.seed + 1_000_003)
        for _ in range(n_batches):
            yield self.sample(batch_size, generator)

    def state_dict(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "lag": self.lag, "n_symbols": self.n_symbols,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = (self.seq_len, self.lag, self.n_symbols)
        theirs = (state.get("seq_len"), state.get("lag"), state.get("n_symbols"))
        if mine != theirs:
            raise ValueError(
                f"task state is for (seq_len, lag, n_symbols)={theirs}, this task is {mine}"
            )
        self.generator.set_state(state["generator"])


# ------------------------------------------------------------------------------- measurements


def offset_dot_spread(table: Tensor, max_offset: int) -> tuple[float, Tensor]:
    """How far ``PE(p) . PE(p + k)`` varies with p at fixed k, for ``k = 1..max_offset``.

    For the sinusoidal table ``PE(p) . PE(p+k) = sum_i cos(k * w_i)`` (``sin a sin(a+b) +
    cos a cos(a+b) = cos b``), the same for every p: the spread is 0 up to rounding. A learned
    table has no such structure.

    Args:
        table: ``(P, C)`` position vectors, ``P > max_offset``.
        max_offset: the largest offset k checked.

    Returns:
        ``(spread, mean_dot)``: the largest ``max_p - min_p`` of the dot product over all k,
        divided by the mean ``|PE(p)|^2``; and ``(max_offset + 1,)`` the mean dot product at each
        offset ``0..max_offset``.
    """
    table = table.double()
    P = table.size(0)
    if P <= max_offset:
        raise ValueError(f"table has {P} positions, need more than max_offset={max_offset}")
    scale = table.pow(2).sum(-1).mean()
    spread, means = 0.0, [float(scale)]
    for k in range(1, max_offset + 1):
        dots = (table[:-k] * table[k:]).sum(-1)  # (P-k,): PE(p) . PE(p+k) for every p
        spread = max(spread, float(dots.max() - dots.min()))
        means.append(float(dots.mean()))
    return spread / float(scale), torch.tensor(means)


def offset_distance_rank_correlation(vectors: np.ndarray) -> float:
    """Spearman rank correlation of offset ``|i - j|`` and distance ``|v_i - v_j|`` over all pairs.

    Args:
        vectors: ``(T, D)`` one vector per position.

    Returns:
        The correlation over the ``T (T - 1) / 2`` pairs: near 1 when positions farther apart in the
        sequence lie farther apart in space, near 0 when distance ignores the offset.
    """
    i, j = np.triu_indices(vectors.shape[0], k=1)  # every pair i < j
    distance = np.linalg.norm(vectors[i] - vectors[j], axis=-1)  # (T (T-1) / 2,)
    return spearman((j - i).astype(float).tolist(), distance.tolist())


class ScaledSinusoidalPositions(SinusoidalPositions):
    """The sinusoid added to token embeddings scaled by ``sqrt(d_model)`` (Vaswani et al. 2017,
    section 3.4), so that the unit-amplitude sinusoid no longer outweighs small embeddings."""

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return super().embed(x * math.sqrt(self.dim), positions)


@torch.no_grad()
def layer0_qk(model: MiniFormer, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The first block's queries and keys of ``idx``, *before* any rotation.

    Args:
        model: a :class:`MiniFormer`.
        idx: ``(B, T)`` token ids.

    Returns:
        ``(q, k)``: ``(B, nh, T, hs)`` and ``(B, nkv, T, hs)``.
    """
    attn = model.blocks[0].attn
    with record_activations(model) as acts:
        model(idx)
    h = acts["layer0.norm1"]  # (B, T, C): what the attention projections read
    B, T, _ = h.shape
    nh, nkv, hs = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q, k, _ = attn.qkv(h).split([nh * hs, nkv * hs, nkv * hs], dim=-1)
    q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
    return q, k


@torch.no_grad()
def rope_shift_error(
    rope: RotaryPositions, q: Tensor, k: Tensor, shifts: Sequence[int]
) -> dict[int, float]:
    """Relative change of RoPE attention scores when every position moves by s.

    Scores ``R(m) q_m . R(n) k_n`` at positions ``0..T-1`` are compared with the same vectors
    placed at ``s..s+T-1``. RoPE's claim is that only ``m - n`` matters, so the change is 0 up to
    fp32 rounding of the angles.

    Args:
        rope: the rotary scheme (its tables grow as needed).
        q: unrotated queries ``(B, nh, T, hs)``.
        k: unrotated keys ``(B, nkv, T, hs)``.
        shifts: the offsets s to try.

    Returns:
        ``{s: max |scores(s) - scores(0)| / max |scores(0)|}``.
    """
    T = q.size(2)
    n_rep = q.size(1) // k.size(1)

    def scores(start: int) -> Tensor:
        rope.ensure_length(start + T)
        qr, kr = rope.rotate(q, k, torch.arange(start, start + T))
        return qr @ repeat_kv(kr, n_rep).transpose(-2, -1)  # (B, nh, T, T)

    base = scores(0)
    scale = float(base.abs().max())
    return {int(s): float((scores(int(s)) - base).abs().max()) / scale for s in shifts}


def attention_entropy(weights: Sequence[Tensor]) -> Tensor:
    """Normalised entropy of causal attention rows: ``H_t / log(t + 1)`` per layer, head, query.

    Query t may see t+1 keys; uniform attention over them has entropy ``log(t + 1)``, so 1 means
    "uniform over the prefix" (collapsed: the head cannot single out a key) and 0 means "all on
    one key". Query 0 sees one key and is left out.

    Args:
        weights: per layer ``(B, nh, T, T)`` attention weights (masked entries exactly 0).

    Returns:
        ``(L, nh, T-1)``: the mean over the batch for queries ``1..T-1``.
    """
    w = torch.stack(list(weights)).double()  # (L, B, nh, T, T)
    T = w.size(-1)
    if T < 2:
        raise ValueError("need at least 2 positions")
    H = -torch.xlogy(w, w).sum(-1)  # (L, B, nh, T): 0 * log 0 = 0 for masked keys
    uniform = torch.log(torch.arange(2, T + 1, dtype=torch.float64))  # (T-1,): log(t + 1)
    return (H[..., 1:] / uniform).mean(1).float()  # (L, nh, T-1)


@torch.no_grad()
def context_losses(
    model: MiniFormer, tokens: Tensor, lengths: Sequence[int], n_tokens: int, batch_size: int = 16
) -> tuple[dict[int, float | None], Tensor | None]:
    """Next-token loss on the same tokens cut into windows of each length.

    Args:
        model: the trained model (eval mode).
        tokens: ``(N,)`` validation ids.
        lengths: window lengths; a length the model's position scheme cannot represent (a
            learned table's ``max_seq_len``) gets ``None``.
        n_tokens: tokens to use, rounded down to a multiple of the longest length.
        batch_size: windows per forward pass.

    Returns:
        ``({length: mean loss or None}, per_position)`` where ``per_position`` is the ``(L_max,)``
        mean loss at each position of the longest windows (``None`` if not measurable).
    """
    longest = max(lengths)
    n = min(n_tokens, tokens.numel() - 1) // longest * longest
    if n == 0:
        raise ValueError(f"{tokens.numel()} validation tokens are fewer than one window of {longest}")
    limit = model.position.max_seq_len  # None: the scheme runs at any length
    losses: dict[int, float | None] = {}
    per_position = None
    for L in lengths:
        if limit is not None and L > limit:
            losses[L] = None
            continue
        x, y = tokens[:n].view(-1, L), tokens[1 : n + 1].view(-1, L)  # (n/L, L) each
        total = torch.zeros(L, dtype=torch.float64)
        for i in range(0, x.size(0), batch_size):
            logits = model(x[i : i + batch_size]).logits  # (b, L, V)
            targets = y[i : i + batch_size]  # (b, L)
            nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (b, L)
            total += nll.double().sum(0)
        mean_by_position = total / x.size(0)  # (L,)
        losses[L] = float(mean_by_position.mean())
        if L == longest:
            per_position = mean_by_position.float()
    return losses, per_position


# ----------------------------------------------------------------------------------- training


@dataclass
class SchemeRun:
    """One scheme trained on the corpus.

    Attributes:
        scheme: the position scheme.
        model: the trained model (eval mode).
        history: the trainer's per-update metrics.
        losses: ``{context length: val loss}``, ``None`` where the scheme cannot run.
        per_position: ``(L_max,)`` val loss at each position of the longest context, or ``None``.
        seconds: training wall time (logged, never a metric: metrics stay deterministic).
    """

    scheme: str
    model: MiniFormer
    history: list[dict[str, float]]
    losses: dict[int, float | None]
    per_position: Tensor | None
    seconds: float


def train_scheme(
    scheme: str, cfg: PositionalConfig, train_tokens: Tensor, val_tokens: Tensor,
    scale_embeddings: bool = False,
) -> SchemeRun:
    """Train ``cfg.model`` with ``scheme`` on ``train_tokens`` and measure every context length.

    Every scheme starts from the same seed and sees the same batches (the batcher is seeded by
    ``cfg.train.seed``), so loss differences come from the scheme. ``scale_embeddings`` (sinusoidal
    only) multiplies the token embeddings by ``sqrt(d_model)`` before the sinusoid is added
    (:class:`ScaledSinusoidalPositions`; it has no parameters, so the initial weights are the same).
    """
    T = cfg.model.max_seq_len
    seed_everything(cfg.train.seed)
    model = build_model(dataclasses.replace(cfg.model, position=scheme))
    if scale_embeddings:
        if scheme != "sinusoidal":
            raise ValueError(f"scale_embeddings applies to the sinusoidal scheme, not {scheme!r}")
        model.position = ScaledSinusoidalPositions(cfg.model.d_model, T, cfg.model.rope_base)
    train = TokenBatcher(train_tokens, T, mode="random", seed=cfg.train.seed)
    val = TokenBatcher(val_tokens, T, mode="sequential")
    trainer = Trainer(model, cfg.train, train, val)
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    lengths = [m * T for m in cfg.context_multiples]
    losses, per_position = context_losses(
        model, val_tokens, lengths, cfg.eval_tokens, cfg.train.batch_size
    )
    return SchemeRun(scheme, model, result.history, losses, per_position, seconds)


#: Val losses of one scheme per seed: ``[{context length: loss or None}, ...]`` in ``cfg.seeds`` order.
SeedLosses = list[dict[int, float | None]]


def _seeded(cfg: PositionalConfig, seed: int) -> PositionalConfig:
    """``cfg`` with ``train.seed`` replaced: another initialisation and batch order."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))


#: One corpus model to train: ``(scheme, seed, scaled)``; ``scaled``: item 1's sqrt(d_model) arm.
Job = tuple[str, int, bool]


def corpus_jobs(cfg: PositionalConfig) -> list[Job]:
    """Every corpus model of items 1-5: each scheme per seed (``train.seed`` first, the main runs
    whose models items 3 and 5 read), then the ``sqrt(d_model)``-scaled sinusoid per seed."""
    seeds = list(dict.fromkeys([cfg.train.seed, *cfg.seeds]))
    return ([(scheme, seed, False) for seed in seeds for scheme in SCHEMES]
            + [("sinusoidal", seed, True) for seed in cfg.seeds])


def _train_job(job: Job, cfg: PositionalConfig, train_tokens: Tensor, val_tokens: Tensor) -> SchemeRun:
    """One :func:`corpus_jobs` entry trained (module level: a worker process can run it)."""
    scheme, seed, scaled = job
    with torch_threads(cfg.num_threads):  # a worker process pins its own threads
        return train_scheme(scheme, _seeded(cfg, seed), train_tokens, val_tokens, scale_embeddings=scaled)


def map_jobs(fn: Callable[..., Any], jobs: Sequence[Any], workers: int, *args: Any) -> list[Any]:
    """``[fn(job, *args) for job in jobs]``, up to ``workers`` jobs at a time in processes.

    The models are independent, so on a multi-core CPU they train side by side, one torch thread
    each. Workers start with ``spawn`` (a fresh interpreter, no forked OpenMP state); ``fn`` must
    be a module-level function and its arguments and result picklable. ``workers <= 1`` runs the
    jobs one after another here. Each result depends only on its job (seeded, one thread), so the
    output is the same for any ``workers``.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job, *args) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        return [f.result() for f in [pool.submit(fn, job, *args) for job in jobs]]


def seed_losses(cfg: PositionalConfig, trained: dict[Job, SchemeRun]) -> dict[str, SeedLosses]:
    """The samples of items 1-4: ``{scheme: [losses by context length, one per seed of cfg.seeds]}``.

    Within a seed every scheme starts from the same seed and sees the same batches, so the
    comparisons are paired by seed.
    """
    return {scheme: [trained[(scheme, seed, False)].losses for seed in cfg.seeds] for scheme in SCHEMES}


def sinusoidal_scaling(cfg: PositionalConfig, trained: dict[Job, SchemeRun]) -> dict[str, Any]:
    """Item 1's cause test: the ``sqrt(d_model)``-scaled and the plain sinusoid per seed.

    Returns:
        ``{"seeds": [...], "plain": [val loss at T per seed], "scaled": [...], "scaled_pe_to_token_rms":
        the first scaled model's sinusoid RMS over its scaled token embeddings' RMS}``.
    """
    T = cfg.model.max_seq_len
    first = trained[("sinusoidal", cfg.seeds[0], True)].model
    scaled_rms = float(first.tok_emb.weight.detach().pow(2).mean().sqrt()) * math.sqrt(
        cfg.model.d_model)  # the embeddings as the sinusoid meets them
    return {
        "seeds": list(cfg.seeds),
        "plain": [trained[("sinusoidal", seed, False)].losses[T] for seed in cfg.seeds],
        "scaled": [trained[("sinusoidal", seed, True)].losses[T] for seed in cfg.seeds],
        "scaled_pe_to_token_rms": float(first.position.table.pow(2).mean().sqrt()) / scaled_rms,
    }


def _curve(history: list[dict[str, float]], key: str, max_points: int = 50) -> list[tuple[int, float]]:
    """A step series from the trainer history: ``key`` where present, bucket-averaged to at most
    ``max_points`` points (each MLflow point is one database write)."""
    rows = [(int(h["step"]), float(h[key])) for h in history if key in h]
    if len(rows) <= max_points:
        return rows
    size = math.ceil(len(rows) / max_points)
    return [(rows[min(i + size, len(rows)) - 1][0], float(np.mean([v for _, v in rows[i : i + size]])))
            for i in range(0, len(rows), size)]


# -------------------------------------------------------------------------------- items 1 - 4


def _summary_table(runs: dict[str, SchemeRun], T: int) -> str:
    lengths = list(next(iter(runs.values())).losses)
    head = "scheme".ljust(12) + "".join(f"{L // T}x ({L})".rjust(14) for L in lengths)
    rows = [head]
    for scheme, run in runs.items():
        cells = "".join(
            ("n/a" if run.losses[L] is None else f"{run.losses[L]:.4f}").rjust(14) for L in lengths
        )
        rows.append(scheme.ljust(12) + cells)
    return "val loss, nats/byte, same validation bytes at every context\n" + "\n".join(rows) + "\n"


def scheme_item(
    scheme: str, runs: dict[str, SchemeRun], cfg: PositionalConfig, probe: Tensor | None = None,
    scaling: dict[str, Any] | None = None, seeded: dict[str, SeedLosses] | None = None,
) -> ItemResult:
    """Items 1-4: one scheme's curves, extrapolation and its specific finding, against "none".

    Args:
        scheme: ``"sinusoidal"``, ``"learned"``, ``"rope"`` or ``"alibi"``.
        runs: every trained scheme, including ``"none"`` (and, for ALiBi, the others it is
            compared with).
        cfg: the stage config (thresholds).
        probe: ``(1, T')`` token ids whose layer-0 queries and keys item 3 shifts (a validation
            window); default: the toy text repeated to the training context.
        scaling: item 1: :func:`sinusoidal_scaling`' result (the ``sqrt(d_model)`` test of
            why the sinusoid may trail no positions); left out when ``None``.
        seeded: :func:`seed_losses`' losses per scheme and seed, the samples of the comparisons
            with "none" (and, for ALiBi, with the others); default: ``runs``' single seed, whose
            comparisons cannot pass (one sample has no standard error).
    """
    if scheme not in ("sinusoidal", "learned", "rope", "alibi") or "none" not in runs:
        raise ValueError(f"scheme_item needs one of items 1-4 and the 'none' control, got {scheme!r}")
    run, none = runs[scheme], runs["none"]
    T = cfg.model.max_seq_len
    longest = max(run.losses)
    val, val_none = run.losses[T], none.losses[T]
    metrics: dict[str, float] = {"val_loss": val, "none.val_loss": val_none}  # the shown run
    for L, loss in run.losses.items():
        if loss is not None:
            metrics[f"val_loss.ctx{L}"] = loss
    measurable = run.losses[longest] is not None
    metrics["extrapolation.max_context"] = float(longest if measurable else T)
    if measurable:
        metrics["extrapolation.degradation"] = run.losses[longest] - val  # this run; ALiBi: seed mean
    series = {
        "train_loss": _curve(run.history, "loss"),
        "val_loss": _curve(run.history, "val_loss"),
        "none.val_loss": _curve(none.history, "val_loss"),
    }
    curves = {name: _curve(r.history, "val_loss") for name, r in runs.items()}
    losses = {name: r.losses for name, r in runs.items()}
    figures = {"comparison.png": plot_comparison(curves, losses, scheme, T)}
    notes = [_summary_table(runs, T)]
    findings = []
    if seeded is None:
        seeded = {name: [r.losses] for name, r in runs.items()}
    n_seeds = len(seeded[scheme])
    at_T = {name: [losses[T] for losses in per_seed] for name, per_seed in seeded.items()}
    seed_ids = cfg.seeds if len(cfg.seeds) == n_seeds else [cfg.train.seed]
    for seed, own, ctrl in zip(seed_ids, at_T[scheme], at_T["none"]):
        metrics[f"seed{seed}.val_loss"] = own
        metrics[f"none.seed{seed}.val_loss"] = ctrl
    none_mean = float(np.mean(at_T["none"]))
    gain = Finding.compare(
        f"{scheme} positions beat no positions on val loss at the same budget by at least "
        f"{cfg.min_gain_over_none} nats/byte (none minus {scheme}, paired by seed, {n_seeds} seeds; "
        "a model that ignores positions ties and fails)", "gain_over_none", at_T["none"], at_T[scheme],
        margin=cfg.min_gain_over_none)
    metrics["gain_over_none"] = gain.value
    metrics["gain_over_none.se"] = gain.se

    if scheme == "sinusoidal":
        n_positions = max(longest, cfg.max_offset + 1)
        table = sinusoidal_table(n_positions, cfg.model.d_model, cfg.model.rope_base)
        spread, _ = offset_dot_spread(table, cfg.max_offset)
        metrics["offset_dot_spread"] = spread
        token_rms = float(run.model.tok_emb.weight.detach().pow(2).mean().sqrt())
        metrics["pe_to_token_rms"] = float(table.pow(2).mean().sqrt()) / token_rms
        findings.append(Finding.at_most(
            f"PE(p) . PE(p+k) depends only on the offset k: spread over p (k = 1..{cfg.max_offset}, "
            f"{n_positions} positions), relative to |PE|^2", "offset_dot_spread", spread,
            cfg.sinusoidal_tolerance, kind=INVARIANT))
        findings.append(gain)
        figures["table.png"] = plot_sinusoidal_table(table[:longest], cfg.max_offset)
        notes.append(
            f"The table's entries have RMS {metrics['pe_to_token_rms']:.1f}x that of the trained token "
            "embeddings: a unit-amplitude sinusoid added to N(0, 0.02)-initialised embeddings outweighs "
            "them in the residual stream, a likely reason sinusoidal trails no positions at this "
            "budget (Vaswani et al. multiply embeddings by sqrt(d_model); this model does not).\n")
        if scaling is not None:
            plain, scaled = scaling["plain"], scaling["scaled"]
            for seed, s in zip(scaling["seeds"], scaled):
                metrics[f"sqrt_scaled.seed{seed}.val_loss"] = s
            metrics["sqrt_scaled.val_loss"] = float(np.mean(scaled))
            metrics["sqrt_scaled.gain_over_none"] = none_mean - float(np.mean(scaled))
            metrics["sqrt_scaled.pe_to_token_rms"] = scaling["scaled_pe_to_token_rms"]
            cause = Finding.compare(
                f"the stated cause, tested: scaling the token embeddings by sqrt(d_model) lowers the "
                f"sinusoidal model's val loss (scaled minus plain, nats/byte, paired by seed, "
                f"{len(plain)} seeds)", "sqrt_scaled_minus_plain_val_loss", scaled, plain,
                margin=cfg.checks.min_sqrt_scale_gain, higher_is_better=False)
            metrics["sqrt_scaled_minus_plain_val_loss"] = cause.value
            metrics["sqrt_scaled_minus_plain_val_loss.se"] = cause.se
            findings.append(cause)
            notes.append(
                f"Scaled by sqrt(d_model) (sinusoid RMS {metrics['sqrt_scaled.pe_to_token_rms']:.1f}x "
                f"the scaled embeddings'), over seeds {scaling['seeds']}: val loss "
                f"{np.mean(scaled):.4f} vs {np.mean(plain):.4f} plain "
                f"({cause.value:+.4f} +- {cause.se:.4f}); "
                f"no positions: {none_mean:.4f}.\n")
    elif scheme == "learned":
        spread, _ = offset_dot_spread(run.model.position.weight.detach(), min(cfg.max_offset, T - 1))
        metrics["offset_dot_spread"] = spread  # contrast with item 1: no built-in offset structure
        findings.append(gain)
        figures["similarity.png"] = plot_learned_similarity(run.model.position.weight)
        notes.append(
            f"Length extrapolation is not applicable: the learned table has max_seq_len={T} rows and "
            f"position {T} has no vector (the model raises); measured at {T} only.\n")
    elif scheme == "rope":
        idx = probe if probe is not None else _toy_window(cfg.toy_text, T)
        q, k = layer0_qk(run.model, idx)
        errors = rope_shift_error(run.model.position, q, k, cfg.rope_shifts)
        for s, err in errors.items():
            metrics[f"shift_error.s{s}"] = err
        worst = metrics["shift_error.max"] = max(errors.values())
        findings.append(Finding.at_most(
            f"RoPE scores depend only on relative position: max change when every position of the "
            f"trained layer-0 q, k shifts by s in {list(errors)}, relative to the largest score",
            "shift_error.max", worst, cfg.rope_tolerance, kind=INVARIANT))
        findings.append(gain)
        s = max(errors)
        rope = run.model.position
        qr0, kr0 = rope.rotate(q, k, torch.arange(T))
        qrs, krs = rope.rotate(q, k, torch.arange(s, s + T))
        n_rep = q.size(1) // k.size(1)
        mask = torch.ones(T, T).tril()  # show the causal part only
        score = lambda a, b: ((a @ repeat_kv(b, n_rep).transpose(-2, -1))[0, 0] * mask)  # noqa: E731
        figures["shift_invariance.png"] = plot_rope_shift(score(qr0, kr0), score(qrs, krs), s)
    else:  # alibi
        degrade = {name: [losses[longest] - losses[T] for losses in per_seed]
                   for name, per_seed in seeded.items() if per_seed[0][longest] is not None}
        mine = degrade.pop("alibi")
        for name, d in degrade.items():
            metrics[f"{name}.degradation"] = float(np.mean(d))
        deg = Finding.compare(
            f"ALiBi trained at {T} keeps its val loss at {longest} within "
            f"{cfg.alibi_max_degradation} nats/byte of the loss at {T} (mean over {n_seeds} seeds; "
            "a scheme that cannot place unseen positions degrades and fails)",
            "extrapolation.degradation", mine, margin=-cfg.alibi_max_degradation,
            higher_is_better=False)
        metrics["extrapolation.degradation"] = deg.value
        metrics["extrapolation.degradation.se"] = deg.se
        findings.append(deg)
        if degrade:
            best = min(degrade, key=lambda name: float(np.mean(degrade[name])))
            vs = Finding.compare(
                f"ALiBi degrades least at {longest // T}x of the schemes that can run there "
                f"({', '.join(degrade)}): its degradation minus that of the least-degrading other "
                f"({best}), paired by seed, {n_seeds} seeds", "degradation_minus_best_other",
                mine, degrade[best], margin=-cfg.checks.max_degradation_minus_best_other,
                higher_is_better=False)
            metrics["degradation_minus_best_other"] = vs.value
            metrics["degradation_minus_best_other.se"] = vs.se
            findings.append(vs)
        findings.append(gain)
        per_position = {n: r.per_position for n, r in runs.items() if r.per_position is not None}
        figures["per_position.png"] = plot_loss_by_position(per_position, T)
    return ItemResult(item=ITEM[scheme], metrics=metrics, series=series, figures=figures,
                      texts={"summary.txt": "\n".join(notes)}, findings=findings)


def _toy_window(text: str, T: int) -> Tensor:
    """``text`` repeated (space-separated) and cut to T bytes: ``(1, T)`` ids."""
    data = (text + " ") * (T // (len(text) + 1) + 1)
    return byte_tokens([data[:T]])[None]  # (1, T)


# ------------------------------------------------------------------------------------- item 5


def animation_item(runs: dict[str, SchemeRun], cfg: PositionalConfig) -> ItemResult:
    """Item 5: the toy text encoded by the trained sinusoidal and RoPE models, animated in 3D.

    The sinusoidal panel moves the trained model's token embeddings to ``x_p + a * PE(p)``; the
    RoPE panel turns the trained model's layer-0 queries (head 0) by ``a * p * theta``. Returns
    the GIF in ``files``, the interactive page in ``texts`` and a static before/after figure.
    """
    ids = byte_tokens([cfg.toy_text])  # (T,)
    labels = list(cfg.toy_text)
    T = ids.numel()
    sin_model, rope_model = runs["sinusoidal"].model, runs["rope"].model
    emb = sin_model.tok_emb.weight[ids].detach().double().numpy()  # (T, C)
    table = sinusoidal_table(T, cfg.model.d_model, cfg.model.rope_base).double().numpy()  # (T, C)
    q, _ = layer0_qk(rope_model, ids[None])  # (1, nh, T, hs)
    raw = {
        "sinusoidal": additive_frames(emb, table, cfg.anim_frames),  # (F, T, C)
        "rope": rotary_frames(q[0, 0].double().numpy(), rope_model.position.inv_freq.double().numpy(),
                              cfg.anim_frames),  # (F, T, hs)
    }
    metrics: dict[str, float] = {}
    findings = []
    before = 0.0
    projected = {}
    for name, frames in raw.items():
        projected[name] = pca_3d(frames)  # (F, T, 3)
        first = min_same_token_distance(frames[0], labels)
        last = min_same_token_distance(frames[-1], labels)
        scale = float(np.linalg.norm(frames[-1], axis=-1).mean())
        metrics[f"{name}.min_same_token_distance.before"] = first
        metrics[f"{name}.min_same_token_distance.after"] = last
        metrics[f"{name}.separation"] = last / scale
        metrics[f"{name}.separation_3d"] = min_same_token_distance(projected[name][-1], labels) / scale
        rho_before = offset_distance_rank_correlation(frames[0])
        rho_after = offset_distance_rank_correlation(frames[-1])
        metrics[f"{name}.offset_distance_rho.before"] = rho_before
        metrics[f"{name}.offset_distance_rho.after"] = rho_after
        metrics[f"{name}.offset_distance_rho_gain"] = rho_after - rho_before
        before = max(before, first)
    findings.append(Finding.at_most(
        "before encoding, repeated tokens are the same vector: largest min same-token distance "
        "(sinusoidal embeddings, RoPE queries)", "min_same_token_distance.before", before,
        cfg.checks.max_same_token_distance_before, kind=INVARIANT))
    for name, what in (("sinusoidal", "adding PE(p)"), ("rope", "rotating by p * theta")):
        findings.append(Finding.at_least(
            f"after {what}, every repeated token is distinguishable: min same-token distance / "
            "mean vector norm", f"{name}.separation", metrics[f"{name}.separation"], cfg.min_separation,
            kind=INVARIANT))
    for name, what in (("sinusoidal", "adding PE(p)"), ("rope", "rotating by p * theta")):
        findings.append(Finding.at_least(
            f"after {what}, positions farther apart lie farther apart: Spearman correlation of offset "
            "|i - j| and distance over every pair of positions, minus the same before encoding (where "
            "distance depends on the tokens alone)", f"{name}.offset_distance_rho_gain",
            metrics[f"{name}.offset_distance_rho_gain"], cfg.checks.min_offset_distance_rho_gain))
    panels = [
        Panel("sinusoidal (added)", projected["sinusoidal"],
              "token embedding + a * PE(p): each token slides along a straight line."),
        Panel("RoPE (rotated)", projected["rope"],
              "layer-0 query of head 0 turned by a * p * theta: repeated tokens fan out on circles."),
    ]
    intro = (f"The toy sequence {cfg.toy_text!r} ({T} bytes) before (0%) and after (100%) position "
             "encoding, projected to 3D with one PCA per panel. Repeated characters start as one point "
             "and end as distinct points.")
    gif = render_gif(panels, labels)
    page = render_html(panels, labels, title="A toy sequence being position-encoded", intro=intro)
    return ItemResult(item=ITEM["animation"], metrics=metrics, findings=findings,
                      figures={"before_after.png": plot_before_after(panels, labels)},
                      texts={"position_encoding_3d.html": page}, files={"position_encoding_3d.gif": gif})


# ------------------------------------------------------------------------------------- item 6


def ablation_item(cfg: PositionalConfig, log: Callable[[str], None] | None = None) -> ItemResult:
    """Item 6: the lag-copy task without and with positions; attention entropy, loss, heatmaps."""
    a = cfg.ablation
    task = LagCopyTask(a.seq_len, a.lag, a.n_symbols, seed=cfg.train.seed)
    tcfg = dataclasses.replace(cfg.train, max_steps=a.max_steps, batch_size=a.batch_size,
                               warmup_steps=min(cfg.train.warmup_steps, a.max_steps),
                               eval_every=max(1, a.max_steps // 20), eval_batches=1)
    x, y = task.sample(a.eval_sequences, torch.Generator().manual_seed(cfg.train.seed + 7))
    arms = {}
    for arm in ("none", a.position):
        seed_everything(cfg.train.seed)
        model = build_model(dataclasses.replace(cfg.model, position=arm, max_seq_len=a.seq_len))
        history = Trainer(model, tcfg, LagCopyTask(a.seq_len, a.lag, a.n_symbols, seed=cfg.train.seed),
                          task).train().history
        model.eval()
        with torch.no_grad():
            out = model(x, targets=y, return_attn=True)
        arms[arm] = (model, history, float(out.loss), out.attentions, attention_entropy(out.attentions))
        if log:
            log(f"ablation {arm}: loss {float(out.loss):.3f}")
    (_, h_none, loss_none, att_none, ent_none), (_, h_pos, loss_pos, att_pos, ent_pos) = arms.values()
    mean_none, mean_pos = float(ent_none.mean()), float(ent_pos.mean())
    metrics: dict[str, float] = {
        "none.loss": loss_none, f"{a.position}.loss": loss_pos, "loss_gap": loss_none - loss_pos,
        "none.attn_entropy": mean_none, f"{a.position}.attn_entropy": mean_pos,
        "entropy_gap": mean_none - mean_pos, "uniform_guess.loss": math.log(a.n_symbols),
    }
    for arm, ent in (("none", ent_none), (a.position, ent_pos)):
        metrics[f"{arm}.attn_entropy.sharpest_head"] = float(ent.mean(-1).min())
        for layer in range(ent.size(0)):
            for head in range(ent.size(1)):
                metrics[f"{arm}.attn_entropy.l{layer}h{head}"] = float(ent[layer, head].mean())
    findings = [
        Finding.at_least(
            "without positions causal attention collapses toward uniform over the prefix: mean "
            "normalised entropy H_t / log(t+1) (1 = uniform)", "none.attn_entropy", mean_none,
            a.min_uniformity),
        Finding.at_least(
            f"attention entropy is higher without positions than with {a.position} (gap in "
            "normalised entropy)", "entropy_gap", mean_none - mean_pos, a.min_entropy_gap),
        Finding.at_least(
            f"the lag-{a.lag} copy loss is worse without positions (gap in nats)", "loss_gap",
            loss_none - loss_pos, a.min_loss_gap),
    ]
    series = {
        "none.val_loss": _curve(h_none, "val_loss"),
        f"{a.position}.val_loss": _curve(h_pos, "val_loss"),
    }
    figures = {
        "heatmaps.png": plot_attention_heatmaps({"none": att_none, a.position: att_pos}, a.lag),
        "entropy.png": plot_attention_entropy({"none": ent_none, a.position: ent_pos}, series),
    }
    return ItemResult(item=ITEM["ablation"], metrics=metrics, series=series, figures=figures,
                      findings=findings)


# ------------------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        train_texts: training documents.
        val_texts: validation documents.
        log: called with a progress line after each model (e.g. ``print``; optional).
    """

    train_texts: Sequence[str]
    val_texts: Sequence[str]
    log: Callable[[str], None] | None = None


def run(cfg: PositionalConfig, inputs: Inputs) -> list[ItemResult]:
    """Train every scheme on the byte tokens and build the six items' results.

    Args:
        cfg: the stage config.
        inputs: the corpus splits and the progress hook.

    Returns:
        Six :class:`ItemResult`, items 1 to 6 in order.
    """
    train_texts, val_texts, log = inputs.train_texts, inputs.val_texts, inputs.log
    train_tokens, val_tokens = byte_tokens(train_texts), byte_tokens(val_texts)
    needed = max(cfg.context_multiples) * cfg.model.max_seq_len + 1
    if val_tokens.numel() < needed:
        raise CorpusTooSmallError(
            f"the val split has {val_tokens.numel()} bytes; the longest context "
            f"(max(positional_embeddings.context_multiples) x model.max_seq_len + 1) needs "
            f"{needed}: add documents or raise splits.val_fraction, or lower those keys"
        )
    jobs = corpus_jobs(cfg)
    trained = dict(zip(jobs, map_jobs(_train_job, jobs, cfg.num_workers, cfg, train_tokens, val_tokens)))
    if log:
        for (scheme, seed, scaled), r in trained.items():
            losses = ", ".join(f"{L}: {'n/a' if v is None else f'{v:.3f}'}" for L, v in r.losses.items())
            log(f"{scheme}{' sqrt(d_model)-scaled' if scaled else ''} seed {seed}: val loss by "
                f"context {{{losses}}} ({r.seconds:.0f} s)")
    runs = {scheme: trained[(scheme, cfg.train.seed, False)] for scheme in SCHEMES}
    seeded = seed_losses(cfg, trained)
    scaling = sinusoidal_scaling(cfg, trained)
    probe = val_tokens[: cfg.model.max_seq_len][None]  # (1, T): a real window for item 3
    results = [scheme_item(s, runs, cfg, probe, scaling if s == "sinusoidal" else None, seeded)
               for s in ("sinusoidal", "learned", "rope", "alibi")]
    results.append(animation_item(runs, cfg))
    results.append(ablation_item(cfg, log))
    return results
