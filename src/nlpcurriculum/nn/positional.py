"""Position schemes: how a transformer learns *where* a token is.

Self-attention is permutation-equivariant: shuffle the input tokens and the outputs shuffle the
same way. Word order has to be injected, and the four classic answers inject it at three
different places in the network. This module gives them one interface, :class:`PositionScheme`,
with three hooks that the model and the attention module call at those places:

- ``embed(x, positions)``: *absolute* schemes add a vector per position to the token
  embeddings, once, before the first block.
  :class:`SinusoidalPositions` (Vaswani et al. 2017, "Attention Is All You Need",
  arXiv:1706.03762, section 3.5) uses fixed sines and cosines;
  :class:`LearnedPositions` (GPT-2, BERT) learns a table of ``max_seq_len`` vectors.
- ``rotate(q, k, positions)`` (or ``rotate_heads(x, positions)`` for queries and keys stacked
  together): :class:`RotaryPositions` (RoPE; Su et al. 2021, "RoFormer",
  arXiv:2104.09864) rotates every query and key, in every layer, by an angle proportional to
  its position. The dot product of a rotated query at position m and a rotated key at position n
  depends only on ``m - n``: relative position falls out of absolute rotations. Kernels that
  rotate queries and keys themselves (the training-time
  :func:`~nlpcurriculum.nn.fast.causal_attention.causal_self_attention`) ask for the angles
  instead, through ``rotation_angles(positions)``.
- ``score_bias(q_positions, k_positions)``: :class:`ALiBiPositions` (Press et al. 2021, "Train
  Short, Test Long", arXiv:2108.12409) adds nothing to the vectors at all; it subtracts
  ``slope_h * distance`` from the attention scores of head ``h``, so far-away keys are penalised
  linearly, each head with its own slope.
- :class:`NoPositions` ("none") does nothing anywhere: the ablation. With a causal mask a model
  can still infer some position from how many tokens it may see (Haviv et al. 2022,
  arXiv:2203.16634), without a causal mask it sees a bag of words.

The base class implements every hook as the identity, so each scheme overrides only the hook it
needs and the attention module calls all three without knowing which scheme it has.

RoPE convention: we use the "rotate-half" layout of GPT-NeoX and Hugging Face Llama (dimension
``i`` is paired with dimension ``i + hs/2``), not the interleaved pairs ``(2i, 2i+1)`` of the
paper; the two are the same rotation up to a fixed permutation of the q/k projection rows, and
the rotate-half layout lets our weights load into ``transformers.LlamaForCausalLM`` unchanged.

Callers first call ``ensure_length(n)`` with the number of positions they will use (a Python
int, so the forward pass never syncs with the device to inspect a tensor); the hooks then only
index precomputed tables.

Dimension legend: B batch, T sequence length, T_q / T_k query / key lengths (they differ when a
KV cache holds earlier keys), C = d_model, nh query heads, nkv key/value heads, hs head size.

Left out: NTK / YaRN / linear RoPE scaling for context extension, relative-position buckets
(T5), xPos, and ALiBi's bidirectional variants (our ALiBi penalises ``|i - j|``, which for a
causal model equals the paper's ``i - j``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "POSITION_SCHEMES",
    "ALiBiPositions",
    "LearnedPositions",
    "NoPositions",
    "PositionScheme",
    "RotaryPositions",
    "SinusoidalPositions",
    "alibi_slopes",
    "build_position",
    "rotate_half",
    "sinusoidal_table",
]


class PositionScheme(nn.Module):
    """Base class: every hook is the identity, so subclasses override only what they use.

    Attributes:
        name: the registry name (``"none"``, ``"sinusoidal"``, ``"learned"``, ``"rope"``,
            ``"alibi"``).
        max_seq_len: longest sequence the scheme supports, or ``None`` if it extrapolates.
        biases_scores: whether :meth:`score_bias` returns a bias (ALiBi), so that attention has
            to build a float mask instead of letting the kernel apply the causal mask.
    """

    name = "none"
    max_seq_len: int | None = None
    biases_scores = False

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """Add absolute position information to token embeddings.

        Args:
            x: token embeddings, ``(B, T, C)``.
            positions: absolute position of each of the T tokens, ``(T,)`` int64.

        Returns:
            ``(B, T, C)`` embeddings that now carry position (unchanged in the base class).
        """
        return x

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate queries and keys by their positions (RoPE only).

        Args:
            q: queries, ``(B, nh, T, hs)``.
            k: keys, ``(B, nkv, T, hs)``.
            positions: absolute positions of the T tokens, ``(T,)`` int64.

        Returns:
            ``(q, k)`` with the same shapes (unchanged in the base class).
        """
        return self.rotate_heads(q, positions), self.rotate_heads(k, positions)

    def rotate_heads(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate any stack of query or key heads, ``(B, heads, T, hs)``, by their positions.

        Queries and keys of the same tokens turn by the same angles, so the attention module
        rotates its queries and keys together, in one call, as one ``(B, nh + nkv, T, hs)`` stack
        (unchanged in the base class).
        """
        return x

    def rotation_angles(self, positions: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(cos, sin)`` of each position's angle per pair of dimensions, ``(T, hs/2)`` each.

        For kernels that rotate queries and keys themselves
        (:func:`~nlpcurriculum.nn.fast.causal_attention.causal_self_attention`); ``None`` when the
        scheme does not rotate (every scheme but RoPE).
        """
        return None

    def score_bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor | None:
        """An additive bias for the attention scores (ALiBi only).

        Args:
            q_positions: absolute positions of the queries, ``(T_q,)``.
            k_positions: absolute positions of the keys, ``(T_k,)``.

        Returns:
            ``(nh, T_q, T_k)`` float bias, or ``None`` when the scheme adds none.
        """
        return None

    def ensure_length(self, n_positions: int) -> None:
        """Make positions ``0..n_positions-1`` usable; call before the hooks.

        Takes a Python int (not the positions tensor) so no device-to-host sync is needed in the
        forward pass. Table-based schemes grow their cached tables; a learned table cannot grow
        and raises.

        Raises:
            ValueError: the scheme cannot represent that many positions.
        """


class NoPositions(PositionScheme):
    """No position information at all: the ablation baseline."""

    name = "none"


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed sinusoidal table of Vaswani et al. (2017), eq. in section 3.5.

    ``PE[p, 2i] = sin(p / base^(2i/dim))`` and ``PE[p, 2i+1] = cos(p / base^(2i/dim))``: each pair
    of dimensions is a clock hand turning at its own frequency, from one turn per 2*pi tokens
    (i = 0) to one per ``2*pi*base`` tokens. Because ``PE[p+k]`` is a fixed rotation of
    ``PE[p]`` for every pair, a linear layer can read relative offsets off the table.

    Worked example (dim=4, base=10000): the frequencies are ``1`` and ``1/100``, so
    ``PE[0] = [sin 0, cos 0, sin 0, cos 0] = [0, 1, 0, 1]`` and
    ``PE[1] = [sin 1, cos 1, sin .01, cos .01] = [0.8415, 0.5403, 0.0100, 0.99995]``.

    Args:
        n_positions: number of rows (positions 0..n_positions-1).
        dim: embedding size; must be even.
        base: the wavelength base (10000 in the paper).

    Returns:
        ``(n_positions, dim)`` float32 table.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = pos * inv_freq[None, :]  # (P, dim/2)
    table = torch.empty(n_positions, dim)
    table[:, 0::2] = torch.sin(angles)  # even dims: sine
    table[:, 1::2] = torch.cos(angles)  # odd dims: cosine of the same angle
    return table


class SinusoidalPositions(PositionScheme):
    """Fixed sine/cosine vectors added to the token embeddings (no parameters).

    The table is precomputed for ``max_seq_len`` positions and grown by :meth:`ensure_length`,
    so the scheme can be evaluated on longer inputs than it was trained on.

    Args:
        dim: the model width C.
        max_seq_len: positions to precompute.
        base: wavelength base.
    """

    name = "sinusoidal"

    def __init__(self, dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.base = dim, base
        # non-persistent: a deterministic function of the config, not state to checkpoint
        self.register_buffer("table", sinusoidal_table(max_seq_len, dim, base), persistent=False)

    def ensure_length(self, n_positions: int) -> None:
        if n_positions > self.table.size(0):
            n = 1 << (n_positions - 1).bit_length()  # a power of two: few regrowths in decoding
            self.table = sinusoidal_table(n, self.dim, self.base).to(self.table.device)

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x + self.table[positions].to(x.dtype)  # (B, T, C) + (T, C) broadcast over B


class LearnedPositions(PositionScheme):
    """A learned vector per position (GPT-2, BERT): an ``nn.Embedding(max_seq_len, C)``.

    It cannot extrapolate: position ``max_seq_len`` has no row, and :meth:`ensure_length` raises.

    Args:
        dim: the model width C.
        max_seq_len: number of learned positions.
    """

    name = "learned"

    def __init__(self, dim: int, max_seq_len: int) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.weight = nn.Parameter(torch.zeros(max_seq_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def ensure_length(self, n_positions: int) -> None:
        if n_positions > self.max_seq_len:
            raise ValueError(
                f"position {n_positions - 1} is beyond max_seq_len={self.max_seq_len} of the "
                "learned position table; use a shorter input or a scheme that extrapolates "
                "(rope, alibi, sinusoidal)"
            )

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x + self.weight[positions]  # (B, T, C) + (T, C)


def _sign_first_half(sin: Tensor) -> Tensor:
    """``[sin1, sin2] -> [-sin1, sin2]`` on the last dim: rotate_half's sign, moved into the table."""
    half = sin.size(-1) // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dim: a 90-degree turn of each pair (i, i + hs/2).

    Args:
        x: ``(..., hs)`` with even hs.

    Returns:
        ``(..., hs)``.
    """
    x1, x2 = x.chunk(2, dim=-1)  # two (..., hs/2) halves
    return torch.cat((-x2, x1), dim=-1)


class RotaryPositions(PositionScheme):
    """Rotary position embedding (RoPE): rotate q and k by position-dependent angles.

    Pair ``(i, i + hs/2)`` of a query at position ``m`` is rotated by ``m * theta_i`` with
    ``theta_i = base^(-2i/hs)``. For a rotation ``R(a)``, ``<R(m t) q, R(n t) k> =
    <q, R((n - m) t) k>``: the score depends on the offset only. The rotation is
    ``x * cos + rotate_half(x) * sin`` (a 2-D rotation written for all pairs at once).

    Worked example (hs=2, theta_0=1): ``q = k = [1, 0]`` at positions m=1, n=0 gives
    ``R(1) q = [cos 1, sin 1]``, ``k = [1, 0]`` and score ``cos 1 = 0.5403`` -- the same as at
    m=5, n=4.

    ``cos``/``sin`` tables are cached for ``max_seq_len`` positions and grown by
    :meth:`ensure_length`, so RoPE can be run past its training length (where it degrades, which
    is the lesson).

    The forward pass computes ``rotate_half(x) * sin`` as ``roll(x, hs/2) * [-sin1, sin2]``
    (``sin1``, ``sin2`` its two halves; the same numbers): the half-swap is one ``roll``
    instead of ``chunk``, ``neg`` and ``cat``, and the sign lives in a precomputed table, so
    a layer's rotation is three kernels (``mul``, ``roll``, ``addcmul``).

    Args:
        head_dim: hs, even.
        max_seq_len: positions to precompute.
        base: the angle base (10000 in the paper and in Llama 1/2).
    """

    name = "rope"

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        self.head_dim, self.base = head_dim, base
        # computed exactly as transformers' Llama does so the parity test can be bitwise-close
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hs/2,)
        cos, sin = self._tables(torch.arange(max_seq_len))
        self.register_buffer("cos_cached", cos, persistent=False)  # (max_seq_len, hs)
        self.register_buffer("sin_cached", sin, persistent=False)  # (max_seq_len, hs)
        self.register_buffer("sin_signed", _sign_first_half(sin), persistent=False)  # [-sin1, sin2]
        self._rows: tuple[Tensor, Tensor, Tensor] | None = None  # (positions, cos, sin) last gathered

    def _tables(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        freqs = positions.float()[:, None] * self.inv_freq[None, :]  # (T, hs/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, hs): pair i and i+hs/2 share an angle
        return emb.cos(), emb.sin()

    def ensure_length(self, n_positions: int) -> None:
        if n_positions > self.cos_cached.size(0):
            n = 1 << (n_positions - 1).bit_length()  # a power of two: few regrowths in decoding
            positions = torch.arange(n, device=self.inv_freq.device)
            self.cos_cached, self.sin_cached = self._tables(positions)
            self.sin_signed = _sign_first_half(self.sin_cached)
            self._rows = None

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(T, hs)`` cos and sin tables for the given positions.

        Every layer of one forward pass gets the same ``positions`` tensor, so the rows gathered
        for it are kept and reused until another tensor comes (one gather per pass, not per layer).
        """
        return self._gather(positions)[:2]

    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cos, sin, sin_signed)`` rows, each ``(T, hs)``, kept for the last positions tensor."""
        if self._rows is None or self._rows[0] is not positions:
            tables = (self.cos_cached, self.sin_cached, self.sin_signed)
            self._rows = (positions, *(t[positions] for t in tables))
        return self._rows[1:]

    def _apply(self, fn, *args, **kwargs):  # .to() / .double() replace the tables: forget old rows
        self._rows = None
        return super()._apply(fn, *args, **kwargs)

    def rotate_heads(self, x: Tensor, positions: Tensor) -> Tensor:
        cos, _, sin_signed = self._gather(positions)  # (T, hs) each; broadcast over (B, heads)
        if cos.dtype != x.dtype:
            cos, sin_signed = cos.to(x.dtype), sin_signed.to(x.dtype)
        # x * cos + rotate_half(x) * sin, with rotate_half(x) * sin = roll(x, hs/2) * [-sin1, sin2]
        return torch.addcmul(x * cos, x.roll(self.head_dim // 2, dims=-1), sin_signed)

    def rotation_angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        cos, sin, _ = self._gather(positions)  # (T, hs): both halves hold the same angles
        h = self.head_dim // 2
        return cos[:, :h], sin[:, :h]  # (T, hs/2) each


def alibi_slopes(n_heads: int) -> Tensor:
    """ALiBi head slopes for any number of heads (Press et al. 2021, section 3).

    For ``n`` a power of two the slopes are the geometric sequence ``2^(-8/n), 2^(-16/n), ...,
    2^(-8)``. Otherwise take the ``2^floor(log2 n)`` slopes of the nearest lower power of two and
    fill up with every other slope of the next power of two (the paper's recipe).

    Worked example: 8 heads give ``1/2, 1/4, ..., 1/256``; 6 heads give the 4-head slopes
    ``1/4, 1/16, 1/64, 1/256`` plus the odd-indexed 8-head slopes ``1/2, 1/8``.

    Args:
        n_heads: number of attention heads (>= 1).

    Returns:
        ``(n_heads,)`` float32 slopes.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))  # = 2^(-8/n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(closest)
    if closest != n_heads:
        slopes += power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBiPositions(PositionScheme):
    """Attention with linear biases: score ``-= slope_h * |i - j|`` per head, no embeddings.

    Worked example (one head, slope 1/2, query at position 2): keys at 0, 1, 2 get biases
    ``-1, -0.5, 0``; equal raw scores become softmax weights proportional to ``e^-1, e^-0.5, 1``,
    i.e. ``0.186, 0.307, 0.506``: recency wins unless content says otherwise.

    Args:
        n_heads: number of query heads (each gets its own slope).
    """

    name = "alibi"
    biases_scores = True

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)  # (nh,)

    def score_bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        distance = (q_positions[:, None] - k_positions[None, :]).abs()  # (T_q, T_k)
        return -self.slopes[:, None, None] * distance[None].float()  # (nh, T_q, T_k)


POSITION_SCHEMES = ("none", "sinusoidal", "learned", "rope", "alibi")


def build_position(
    name: str,
    *,
    d_model: int,
    n_heads: int,
    max_seq_len: int,
    head_dim: int | None = None,
    base: float = 10000.0,
) -> PositionScheme:
    """Build a position scheme by its registry name.

    Args:
        name: one of :data:`POSITION_SCHEMES`.
        d_model: model width C (absolute schemes).
        n_heads: number of query heads (ALiBi slopes).
        max_seq_len: longest precomputed / learned position.
        head_dim: hs for RoPE; defaults to ``d_model // n_heads``.
        base: the sinusoid / RoPE base.

    Returns:
        A :class:`PositionScheme`.

    Raises:
        ValueError: on an unknown name.
    """
    head_dim = head_dim or d_model // n_heads
    if name == "none":
        return NoPositions()
    if name == "sinusoidal":
        return SinusoidalPositions(d_model, max_seq_len, base)
    if name == "learned":
        return LearnedPositions(d_model, max_seq_len)
    if name == "rope":
        return RotaryPositions(head_dim, max_seq_len, base)
    if name == "alibi":
        return ALiBiPositions(n_heads)
    raise ValueError(f"unknown position scheme {name!r}; choose one of {POSITION_SCHEMES}")
