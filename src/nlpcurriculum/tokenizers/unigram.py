"""Unigram language-model tokenization with EM training, Viterbi decoding and subword sampling.

Paper: Kudo (2018), "Subword Regularization: Improving Neural Network Translation Models with
Multiple Subword Candidates", arXiv:1804.10959. Training follows SentencePiece's
``unigram_model_trainer`` (seeding, sub-EM, loss-based pruning, finalisation).

The model
---------
A vocabulary of pieces with log-probabilities ``log p(x)``. A segmentation ``x_1..x_k`` of a
word has log-likelihood ``sum_i log p(x_i)``. All segmentations of a word form a **lattice**: node
``i`` is the position between characters ``i-1`` and ``i``; an edge ``s -> e`` is a piece equal to
``word[s:e]``. Every algorithm here is a dynamic programme over that lattice, left to right:

* **Viterbi** (encoding): ``best[e] = max over edges s->e of best[s] + log p(word[s:e])``.
* **Forward-backward** (training): ``alpha[e] = logsumexp_s alpha[s] + log p``, ``beta`` the same
  from the right; ``Z = alpha[n]``; the expected count of edge ``s->e`` is
  ``exp(alpha[s] + log p + beta[e] - Z)``. Everything is in log space (no underflow on long words).
* **Sampling** (subword regularisation): forward-filtering backward-sampling. Run the forward
  pass with scores ``a * log p`` (``a`` = ``alpha``, a smoothing exponent), then walk back from
  the end: at node ``e`` choose the incoming edge ``s->e`` with probability
  ``exp(alpha[s] + a log p - alpha[e])``. This draws a segmentation with probability
  ``P(x)^a / sum_x' P(x')^a`` exactly. With ``nbest_size > 1`` one samples among the n best only.

Pre-tokenisation (this module's tokenizer): text is split on whitespace and each word gets the
marker ``▁`` (U+2581) in front, as SentencePiece does (``"Hello world"`` -> ``▁Hello``, ``▁world``);
pieces never cross a word, and the marker lets decoding put the spaces back. This equals
``tokenizers``' ``WhitespaceSplit`` followed by ``Metaspace(prepend_scheme="always")``. It is
lossy on whitespace: runs of spaces and newlines come back as one space
(:meth:`UnigramTokenizer.canonical`). The lossless variant is :mod:`.sentencepiece`.

Training (:func:`train_unigram`)
--------------------------------
1. **Seed**: every character, plus the ``seed_size`` best substrings (2 to ``max_piece_length``
   characters, seen at least twice, within one Unicode script, and right-branching: followed by
   at least two different characters, which is what SentencePiece's suffix array enumerates)
   ranked by ``frequency x length``; initial ``log p`` proportional to that score.
2. **EM** (``num_sub_iterations`` rounds): E-step = expected piece counts by forward-backward;
   M-step = ``log p(x) = digamma(c(x)) - digamma(sum c)``, dropping pieces with expected count
   below 0.5 (SentencePiece's "Bayesianified" EM: the digamma acts as a sparse prior).
3. **Prune**: for each piece, estimate how much the corpus likelihood drops if it is removed and
   its occurrences are re-segmented by its second-best segmentation; keep the ``shrinking_factor``
   fraction with the largest loss (single characters are always kept). Repeat 2-3 until the
   vocabulary is within 10% of the target, then keep the best-scoring pieces.

The E-step and Viterbi over the whole corpus run on all words at once (:class:`LatticeBatch`):
edges are grouped by start position, and within a group each destination node occurs once, so
the recurrence for all words is one numpy operation per position. ``tests`` check it against the
per-word :class:`UnigramModel`.

Hand-worked example (pieces ``a``=-1, ``b``=-2, ``ab``=-2.5, word ``ab``): the lattice has two
paths, ``[ab]`` with score -2.5 and ``[a, b]`` with -3.0. Viterbi picks ``ab``.
``Z = log(e^-2.5 + e^-3) = -2.0259``; ``P(ab) = e^-2.5 / e^Z = 0.6225``, ``P(a b) = 0.3775``, so
the expected counts are ``ab: 0.6225, a: 0.3775, b: 0.3775``. Sampling with ``alpha = 0`` picks
either path with probability 1/2; as ``alpha`` grows it approaches Viterbi.

Legend: ``n`` characters in a word; ``s, e`` start/end positions; ``P`` pieces; ``E`` edges;
``N`` lattice nodes over all words.

Left out: the suffix array itself (a dictionary count of bounded substrings of the unique words,
with each word's line-final count standing in for its right context, gives nearly the same
seeds), multi-threading, and sentence-level n-best (n-best is per word).
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import regex

from nlpcurriculum.tokenizers.base import WHITESPACE, Tokenizer, check_ids, check_vocab_size, iter_texts

WS_MARK = "\u2581"
"""The visible word-boundary marker (▁) that stands for a space."""

_UNK_PENALTY = 10.0  # an unknown character scores min(log p) - 10, as in SentencePiece/tokenizers
_EXPECTED_FREQUENCY_THRESHOLD = 0.5  # M-step drops pieces expected less often than this
_SPLIT_WS = regex.compile("[" + regex.escape(WHITESPACE) + "]+")
_SPLIT_MARK = regex.compile(f"{WS_MARK}[^{WS_MARK}]*|[^{WS_MARK}]+")


@dataclass(frozen=True)
class UnigramConfig:
    """Options of the Unigram tokenizer and trainer (the vocabulary size is an argument of ``train``).

    Attributes:
        unk_token: the piece emitted for characters outside the vocabulary.
        special_tokens: pieces placed first in the vocabulary (score 0, never matched in text);
            must include ``unk_token``.
        max_piece_length: longest piece, in characters.
        seed_size: how many frequent substrings seed the vocabulary (SentencePiece: 1M).
        shrinking_factor: fraction of pieces kept per pruning round.
        num_sub_iterations: EM iterations between pruning rounds.
        split_by_unicode_script: a piece may not mix scripts (Latin letters with punctuation,
            Latin with Greek, ...), as in SentencePiece; ``▁`` mixes with anything.
        split_by_number: digits count as punctuation-like "common" script; if False they mix with
            any script.
        character_coverage: keep the most frequent characters covering this fraction of the
            text; rarer characters become unknown (or byte-fallback pieces in SentencePiece).
    """

    unk_token: str = "<unk>"
    special_tokens: tuple[str, ...] = ("<unk>",)
    max_piece_length: int = 16
    seed_size: int = 1_000_000
    shrinking_factor: float = 0.75
    num_sub_iterations: int = 2
    split_by_unicode_script: bool = True
    split_by_number: bool = True
    character_coverage: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.special_tokens, tuple):
            object.__setattr__(self, "special_tokens", tuple(self.special_tokens))
        if self.unk_token not in self.special_tokens:
            raise ValueError(f"unk_token {self.unk_token!r} must be one of special_tokens {self.special_tokens}")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens has duplicates: {self.special_tokens}")
        if self.max_piece_length < 1:
            raise ValueError(f"max_piece_length must be >= 1, got {self.max_piece_length}")
        if self.seed_size < 1:
            raise ValueError(f"seed_size must be >= 1, got {self.seed_size}")
        if not 0.0 < self.shrinking_factor < 1.0:
            raise ValueError(f"shrinking_factor must be in (0, 1), got {self.shrinking_factor}")
        if self.num_sub_iterations < 1:
            raise ValueError(f"num_sub_iterations must be >= 1, got {self.num_sub_iterations}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage must be in (0, 1], got {self.character_coverage}")


# ============================================================================ per-word lattice
class UnigramModel:
    """A trained vocabulary and the lattice algorithms on one word (encoding and sampling).

    Args:
        pieces: every vocabulary entry, by id.
        scores: log-probability of each entry.
        unk_id: the id emitted for characters no piece covers.
        special_ids: ids never matched in text (special tokens, byte pieces).

    Tie-breaking of Viterbi equals ``tokenizers``' Unigram: positions left to right, pieces
    shortest first, and a later candidate replaces the best only if strictly better.
    """

    def __init__(self, pieces: Sequence[str], scores: Sequence[float], unk_id: int,
                 special_ids: Iterable[int] = ()) -> None:
        if len(pieces) != len(scores):
            raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
        if not 0 <= unk_id < len(pieces):
            raise ValueError(f"unk_id {unk_id} outside the vocabulary")
        skip = set(special_ids) | {unk_id}
        self.pieces = list(pieces)
        self.scores = [float(s) for s in scores]
        self.unk_id = unk_id
        self.index = {p: i for i, p in enumerate(self.pieces) if i not in skip}
        if len(self.index) + len(skip) != len(self.pieces):
            raise ValueError("vocabulary has duplicate pieces")
        self.max_len = max((len(p) for p in self.index), default=1)
        self.min_score = min(self.scores)
        self.unk_score = self.min_score - _UNK_PENALTY

    def edges(self, word: str) -> list[list[tuple[int, int, float]]]:
        """``edges[s]`` = ``[(e, id, score), ...]`` for pieces ``word[s:e]``, shortest first.

        A position no single-character piece covers gets an unknown edge of one character.
        """
        n = len(word)
        get, scores, max_len = self.index.get, self.scores, self.max_len
        out: list[list[tuple[int, int, float]]] = []
        for s in range(n):
            row = []
            for e in range(s + 1, min(n, s + max_len) + 1):
                i = get(word[s:e])
                if i is not None:
                    row.append((e, i, scores[i]))
            if not row or row[0][0] != s + 1:
                row.insert(0, (s + 1, self.unk_id, self.unk_score))
            out.append(row)
        return out

    def viterbi(self, word: str) -> list[tuple[int, int, int]]:
        """The most likely segmentation as ``(start, end, id)`` spans; adjacent unknowns fused."""
        n = len(word)
        if n == 0:
            return []
        best = [0.0] + [-math.inf] * n
        back: list[tuple[int, int] | None] = [None] * (n + 1)
        for s, row in enumerate(self.edges(word)):
            base = best[s]
            for e, i, score in row:
                cand = score + base
                if back[e] is None or cand > best[e]:
                    best[e] = cand
                    back[e] = (s, i)
        path = []
        e = n
        while e > 0:
            s, i = back[e]
            path.append((s, e, i))
            e = s
        return self._fuse_unknown(path[::-1])

    def _fuse_unknown(self, path: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for s, e, i in path:
            if i == self.unk_id and out and out[-1][2] == self.unk_id:
                out[-1] = (out[-1][0], e, i)
            else:
                out.append((s, e, i))
        return out

    def log_partition(self, word: str, alpha: float = 1.0) -> tuple[float, list[float]]:
        """Forward pass: ``log sum over segmentations of exp(alpha * score)`` and the forward table."""
        n = len(word)
        fwd = [0.0] + [-math.inf] * n
        for s, row in enumerate(self.edges(word)):
            for e, _, score in row:
                fwd[e] = _logaddexp(fwd[e], fwd[s] + alpha * score)
        return fwd[n], fwd

    def expected_counts(self, word: str) -> dict[int, float]:
        """Forward-backward: the expected number of times each piece id occurs in ``word``."""
        n = len(word)
        edges = self.edges(word)
        z, fwd = self.log_partition(word)
        bwd = [-math.inf] * n + [0.0]
        for s in range(n - 1, -1, -1):
            for e, _, score in edges[s]:
                bwd[s] = _logaddexp(bwd[s], score + bwd[e])
        counts: dict[int, float] = {}
        for s, row in enumerate(edges):
            for e, i, score in row:
                p = math.exp(fwd[s] + score + bwd[e] - z)
                counts[i] = counts.get(i, 0.0) + p
        return counts

    def nbest(self, word: str, n: int) -> list[tuple[float, list[tuple[int, int, int]]]]:
        """The ``n`` most likely segmentations, best first, as ``(score, spans)``.

        Each lattice node keeps its ``n`` best partial paths (k-best Viterbi).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        length = len(word)
        if length == 0:
            return [(0.0, [])]
        # kbest[e] = [(score, s, j, id)]: best partial paths to e, via the j-th best path to s.
        kbest: list[list[tuple[float, int, int, int]]] = [[(0.0, -1, -1, -1)]] + [[] for _ in range(length)]
        incoming: list[list[tuple[int, int, float]]] = [[] for _ in range(length + 1)]
        for s, row in enumerate(self.edges(word)):
            for e, i, score in row:
                incoming[e].append((s, i, score))
        for e in range(1, length + 1):
            cands = [(kbest[s][j][0] + score, s, j, i)
                     for s, i, score in incoming[e] for j in range(len(kbest[s]))]
            kbest[e] = heapq.nlargest(n, cands, key=lambda c: c[0])
        out = []
        for score, s, j, i in kbest[length]:
            path, e = [], length
            while e > 0:
                path.append((s, e, i))
                e = s
                if e > 0:
                    _, s, j, i = kbest[e][j]
            out.append((score, self._fuse_unknown(path[::-1])))
        return out

    def sample(self, word: str, alpha: float, nbest_size: int, rng: random.Random) -> list[tuple[int, int, int]]:
        """Draw a segmentation (subword regularisation, Kudo 2018 section 2.2).

        Args:
            alpha: smoothing exponent; P(x) is raised to ``alpha`` (0: uniform over paths,
                large: close to Viterbi).
            nbest_size: ``< 0``: sample from the whole lattice (forward-filtering
                backward-sampling); ``0`` or ``1``: Viterbi; ``> 1``: sample among the n best.
            rng: random source.
        """
        if nbest_size in (0, 1) or not word:
            return self.viterbi(word)
        if nbest_size > 1:
            cands = self.nbest(word, nbest_size)
            logits = [alpha * score for score, _ in cands]
            top = max(logits)
            weights = [math.exp(x - top) for x in logits]
            return rng.choices([p for _, p in cands], weights=weights)[0]
        n = len(word)
        _, fwd = self.log_partition(word, alpha)
        incoming: list[list[tuple[int, int, float]]] = [[] for _ in range(n + 1)]
        for s, row in enumerate(self.edges(word)):
            for e, i, score in row:
                incoming[e].append((s, i, score))
        path = []
        e = n
        while e > 0:
            # P(last edge is s->e | lattice up to e) = exp(fwd[s] + alpha*score - fwd[e])
            weights = [math.exp(fwd[s] + alpha * score - fwd[e]) for s, _, score in incoming[e]]
            s, i, _ = rng.choices(incoming[e], weights=weights)[0]
            path.append((s, e, i))
            e = s
        return self._fuse_unknown(path[::-1])


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


# ============================================================================ batched lattices
class LatticeBatch:
    """The lattices of many words as flat arrays, for corpus-wide forward-backward and Viterbi.

    Built once from the seed vocabulary; later vocabularies are subsets, passed as an ``alive``
    mask. Node ``offsets[w] + i`` is position ``i`` of word ``w``.

    Args:
        words: the words (strings).
        index: piece -> piece id (the seed vocabulary).
        max_len: longest piece in characters.
    """

    def __init__(self, words: Sequence[str], index: Mapping[str, int], max_len: int) -> None:
        lengths = np.array([len(w) for w in words], dtype=np.int64)
        if len(words) and lengths.min() == 0:
            raise ValueError("empty word in lattice batch")
        self.offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)  # (W,)
        self.first = self.offsets  # node of position 0 of each word, (W,)
        self.last = self.offsets + lengths  # node of position n of each word, (W,)
        self.num_nodes = int((lengths + 1).sum())
        self.max_pos = int(lengths.max()) if len(words) else 0
        starts, ends, pids, wids = [], [], [], []
        get = index.get
        for w, word in enumerate(words):
            n = len(word)
            for s in range(n):
                for e in range(s + 1, min(n, s + max_len) + 1):
                    p = get(word[s:e])
                    if p is not None:
                        starts.append(s)
                        ends.append(e)
                        pids.append(p)
                        wids.append(w)
                    elif e == s + 1:
                        # always a one-character edge: an unknown character gets id -1
                        starts.append(s)
                        ends.append(e)
                        pids.append(-1)
                        wids.append(w)
        self.start = np.array(starts, dtype=np.int64)  # (E,)
        self.end = np.array(ends, dtype=np.int64)  # (E,)
        self.pid = np.array(pids, dtype=np.int64)  # (E,)
        self.word = np.array(wids, dtype=np.int64)  # (E,)
        self.src = self.offsets[self.word] + self.start  # (E,)
        self.dst = self.offsets[self.word] + self.end  # (E,)
        self.full_span = (self.start == 0) & (self.end == lengths[self.word])  # (E,)
        self.order_by_start = np.argsort(self.start, kind="stable")
        self.order_by_end = np.argsort(self.end, kind="stable")

    def edge_scores(self, logp: np.ndarray, alive: np.ndarray, unk_score: float,
                    drop_full_span: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-edge score, which edges exist now, and which count towards a piece.

        A one-character edge whose piece is dead (or unknown) becomes an unknown edge.
        """
        known = self.pid >= 0
        counted = known.copy()
        counted[known] = alive[self.pid[known]]
        ok = counted | (self.end - self.start == 1)
        if drop_full_span:
            ok &= ~self.full_span
            counted &= ok
        lp = np.full(len(self.pid), unk_score)
        lp[counted] = logp[self.pid[counted]]
        return lp, ok, counted

    def _groups(self, order: np.ndarray, key: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = order[ok[order]]
        bounds = np.searchsorted(key[idx], np.arange(self.max_pos + 2))
        return idx, bounds

    def forward_backward(self, lp: np.ndarray, ok: np.ndarray, counted: np.ndarray,
                         freqs: np.ndarray, num_pieces: int) -> tuple[np.ndarray, float]:
        """Expected piece counts (weighted by word frequency) and the mean negative log-likelihood."""
        alpha = np.full(self.num_nodes, -np.inf)
        alpha[self.first] = 0.0
        idx, b = self._groups(self.order_by_start, self.start, ok)
        for s in range(self.max_pos):
            e = idx[b[s] : b[s + 1]]
            if len(e):
                d = self.dst[e]  # unique within one start position
                alpha[d] = np.logaddexp(alpha[d], alpha[self.src[e]] + lp[e])
        beta = np.full(self.num_nodes, -np.inf)
        beta[self.last] = 0.0
        idx, b = self._groups(self.order_by_end, self.end, ok)
        for t in range(self.max_pos, 0, -1):
            e = idx[b[t] : b[t + 1]]
            if len(e):
                src = self.src[e]  # unique within one end position
                beta[src] = np.logaddexp(beta[src], beta[self.dst[e]] + lp[e])
        z = alpha[self.last]  # (W,)
        c = np.flatnonzero(counted)
        post = np.exp(alpha[self.src[c]] + lp[c] + beta[self.dst[c]] - z[self.word[c]]) * freqs[self.word[c]]
        expected = np.bincount(self.pid[c], weights=post, minlength=num_pieces)
        objective = -float((freqs * z).sum() / freqs.sum())
        return expected, objective

    def viterbi(self, lp: np.ndarray, ok: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best path of every word: its score (W,), and its edges as parallel (word, piece id) arrays.

        Edges that exist but do not count (unknown characters) are reported with piece id -1.
        """
        pid = np.where(counted, self.pid, -1)
        best = np.full(self.num_nodes, -np.inf)
        best[self.first] = 0.0
        back = np.full(self.num_nodes, -1, dtype=np.int64)
        idx, b = self._groups(self.order_by_start, self.start, ok)
        for s in range(self.max_pos):
            e = idx[b[s] : b[s + 1]]
            if len(e):
                d = self.dst[e]
                cand = best[self.src[e]] + lp[e]
                better = cand > best[d]  # strict: the earlier start keeps a tie
                best[d[better]] = cand[better]
                back[d[better]] = e[better]
        cur = self.last.copy()
        words_out, pids_out = [], []
        # Words whose end is unreachable (possible only when edges were dropped) have no path.
        active = np.flatnonzero((cur != self.first) & np.isfinite(best[self.last]))
        while len(active):
            e = back[cur[active]]
            words_out.append(active)
            pids_out.append(pid[e])
            cur[active] = self.src[e]
            active = active[cur[active] != self.first[active]]
        if words_out:
            return best[self.last], np.concatenate(words_out), np.concatenate(pids_out)
        empty = np.zeros(0, dtype=np.int64)
        return best[self.last], empty, empty


def digamma(x: np.ndarray) -> np.ndarray:
    """The digamma function (derivative of log Gamma), by recurrence and asymptotic series."""
    x = np.array(x, dtype=np.float64)
    result = np.zeros_like(x)
    small = x < 7
    while small.any():
        result[small] -= 1.0 / x[small]
        x[small] += 1.0
        small = x < 7
    x = x - 0.5
    xx = 1.0 / x
    xx2 = xx * xx
    xx4 = xx2 * xx2
    return result + np.log(x) + xx2 / 24.0 - 7.0 / 960.0 * xx4 + 31.0 / 8064.0 * xx4 * xx2 - 127.0 / 30720.0 * xx4 * xx4


# ============================================================================ training
@dataclass
class UnigramTrainingResult:
    """Output of :func:`train_unigram`.

    Attributes:
        pieces: ``(piece, log-probability)``, best first.
        history: one dict per EM iteration / pruning round (vocabulary size, objective).
    """

    pieces: list[tuple[str, float]]
    history: list[dict[str, float]] = field(default_factory=list)


@functools.lru_cache(maxsize=65536)
def char_script(c: str, split_by_unicode_script: bool = True, split_by_number: bool = True) -> str:
    """The class a piece must not mix: a script name, ``"common"`` or ``""`` (mixes with anything).

    Letters and marks take the first word of their Unicode name (LATIN, GREEK, CYRILLIC; kana
    count as HAN, as in SentencePiece); punctuation, symbols and (with ``split_by_number``)
    ASCII digits are "common". An approximation of SentencePiece's Unicode script table.
    """
    if c == WS_MARK:
        return ""
    if "0" <= c <= "9":
        return "common" if split_by_number else ""
    if not split_by_unicode_script:
        return "any"
    if unicodedata.category(c)[0] in "LM":
        name = unicodedata.name(c, "")
        script = name.split(" ", 1)[0] if name else "unknown"
        return "HAN" if script in ("CJK", "HIRAGANA", "KATAKANA") else script
    return "common"


def required_characters(word_counts: Mapping[str, int], coverage: float) -> dict[str, int]:
    """The most frequent characters covering ``coverage`` of all character occurrences.

    ``▁`` is counted like any character (it stands for a space).
    """
    counts: Counter[str] = Counter()
    for word, f in word_counts.items():
        for c in word:
            counts[c] += f
    total = sum(counts.values())
    kept: dict[str, int] = {}
    acc = 0
    for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if total and acc / total >= coverage:
            break
        kept[c] = n
        acc += n
    return kept


def _seed_pieces(word_counts: Mapping[str, int], required: Mapping[str, int], cfg: UnigramConfig,
                 final_counts: Mapping[str, int] | None = None) -> dict[str, float]:
    """Characters plus the most frequent valid substrings, scored ``freq * len`` (not normalised).

    Like SentencePiece's suffix-array extraction, a substring is a candidate only if it is
    *right-branching*: its occurrences in the running text are followed by at least two
    different characters. "unico", always followed by "d", is not a candidate; "unicode" is.
    This keeps one representative per family of nested substrings. After the last character of
    a word comes the ``▁`` of the next word, or the end of the sentence: ``final_counts[w]`` says
    how many occurrences of ``w`` end a sentence (default: none).
    """
    counts: dict[str, int] = {}
    follow: dict[str, str | None] = {}  # the one character seen after the piece; None: several
    by_script, by_number = cfg.split_by_unicode_script, cfg.split_by_number
    unknown, boundary = "\x00", "\x01"
    for word, f in word_counts.items():
        n = len(word)
        classes = [char_script(c, by_script, by_number) if c in required else None for c in word]
        final = final_counts.get(word, 0) if final_counts else 0
        after_word = WS_MARK if final == 0 else boundary if final >= f else None
        nexts = [c if k is not None else unknown for c, k in zip(word, classes)] + [after_word]
        for s in range(n):
            if classes[s] is None:
                continue
            script = classes[s]
            for e in range(s + 1, min(n, s + cfg.max_piece_length)):
                c = classes[e]
                if c is None or word[e] == WS_MARK:
                    break  # unknown characters and inner markers end every piece
                if c:
                    if script and c != script:
                        break
                    script = c
                piece = word[s : e + 1]
                nxt = nexts[e + 1]
                seen = follow.get(piece, "")
                if seen == "":
                    counts[piece] = f
                    follow[piece] = nxt
                else:
                    counts[piece] += f
                    if seen is not None and seen != nxt:
                        follow[piece] = None
    frequent = sorted((-f * len(p), p) for p, f in counts.items() if f >= 2 and follow[p] is None)
    seeds: dict[str, float] = {c: float(n) for c, n in sorted(required.items(), key=lambda kv: (-kv[1], kv[0]))}
    for neg_score, p in frequent[: cfg.seed_size]:
        seeds[p] = float(-neg_score)
    return seeds


def train_unigram(
    word_counts: Mapping[str, int],
    num_pieces: int,
    config: UnigramConfig | None = None,
    required: Mapping[str, int] | None = None,
    desired_size: int | None = None,
    final_counts: Mapping[str, int] | None = None,
) -> UnigramTrainingResult:
    """Learn ``num_pieces`` pieces with log-probabilities from word frequencies.

    Args:
        word_counts: pre-tokenised words (with their ``▁`` markers) and their counts.
        num_pieces: size of the result (specials and byte pieces excluded).
        config: trainer options.
        required: characters that must be in the result, with their counts; default: those
            covering ``config.character_coverage``.
        desired_size: stop pruning once the vocabulary is at most this big; default
            ``1.1 * num_pieces`` (SentencePiece uses 1.1 x its full vocabulary size).
        final_counts: how many occurrences of each word end a sentence (used to pick seeds
            the way SentencePiece's suffix array over sentences does).

    Returns:
        The pieces, best first, and the training history.
    """
    cfg = config or UnigramConfig()
    word_counts = {w: int(c) for w, c in word_counts.items() if w and c > 0}
    if not word_counts:
        raise ValueError("no training words")
    if required is None:
        required = required_characters(word_counts, cfg.character_coverage)
    if num_pieces <= len(required):
        raise ValueError(f"{num_pieces} pieces cannot hold the {len(required)} required characters plus any "
                         "multi-character piece: raise vocab_size or lower character_coverage")
    desired = int(num_pieces * 1.1) if desired_size is None else desired_size

    seeds = _seed_pieces(word_counts, required, cfg, final_counts)
    pieces = list(seeds)
    index = {p: i for i, p in enumerate(pieces)}
    scores = np.array([seeds[p] for p in pieces])
    logp = np.log(scores) - np.log(scores.sum())  # (P,)
    alive = np.ones(len(pieces), dtype=bool)  # (P,)
    is_char = np.array([len(p) == 1 for p in pieces])
    words = list(word_counts)
    freqs = np.array([word_counts[w] for w in words], dtype=np.float64)  # (W,)
    corpus = LatticeBatch(words, index, cfg.max_piece_length)
    own = LatticeBatch(pieces, index, cfg.max_piece_length)  # each piece as a word, for pruning
    history: list[dict[str, float]] = []

    while True:
        for _ in range(cfg.num_sub_iterations):
            unk = float(logp[alive].min()) - _UNK_PENALTY
            lp, ok, counted = corpus.edge_scores(logp, alive, unk)
            expected, objective = corpus.forward_backward(lp, ok, counted, freqs, len(pieces))
            # M-step (Bayesian EM): rare pieces leave, the rest get digamma-smoothed log-probs.
            alive = alive & (expected >= _EXPECTED_FREQUENCY_THRESHOLD)
            total = expected[alive].sum()
            logp = np.where(alive, digamma(np.maximum(expected, 1e-12)) - digamma(total), -np.inf)
            history.append({"size": float(alive.sum()), "objective": objective})
        if alive.sum() <= desired:
            break
        alive = _prune(corpus, own, logp, alive, is_char, freqs, desired, cfg.shrinking_factor)

    return UnigramTrainingResult(_finalize(pieces, logp, alive, required, num_pieces), history)


def _prune(corpus: LatticeBatch, own: LatticeBatch, logp: np.ndarray, alive: np.ndarray,
           is_char: np.ndarray, freqs: np.ndarray, desired: int, shrinking_factor: float) -> np.ndarray:
    """Keep the pieces whose removal would cost the corpus likelihood most (SentencePiece's rule)."""
    num = len(logp)
    unk = float(logp[alive].min()) - _UNK_PENALTY
    # How often each piece is used by the Viterbi segmentation of the corpus.
    lp, ok, counted = corpus.edge_scores(logp, alive, unk)
    _, w_idx, p_idx = corpus.viterbi(lp, ok, counted)
    known = p_idx >= 0
    freq = np.bincount(p_idx[known], weights=freqs[w_idx[known]], minlength=num)  # (P,)
    total = freq.sum()
    # Each piece's best segmentation *without itself* (its alternative).
    lp, ok, counted = own.edge_scores(logp, alive, unk, drop_full_span=True)
    alt_score, a_idx, a_pid = own.viterbi(lp, ok, counted)
    multi = alive & ~is_char
    # A piece whose own best segmentation is split never appears in a Viterbi path: drop it.
    keep_as_is = alive & is_char & (freq > 0)
    candidate = multi & (freq > 0) & (logp >= alt_score)
    n_alt = np.bincount(a_idx, minlength=num)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = _pruning_loss(freq, total, freqs.sum(), candidate, n_alt, a_idx, a_pid)
    target = max(desired, int(shrinking_factor * alive.sum()))
    new_alive = keep_as_is.copy()
    room = target - int(new_alive.sum())
    if room > 0:
        cand = np.flatnonzero(candidate)
        order = cand[np.lexsort((cand, -loss[cand]))][:room]  # loss descending, id ascending
        new_alive[order] = True
    return new_alive


def _pruning_loss(freq: np.ndarray, total: float, corpus_weight: float, candidate: np.ndarray,
                  n_alt: np.ndarray, a_idx: np.ndarray, a_pid: np.ndarray) -> np.ndarray:
    """Likelihood lost if each candidate's uses were replaced by its alternative pieces.

    Removing piece i moves its ``freq[i]`` uses to each alternative piece, so the total count
    becomes ``total + freq[i] * (len(alt) - 1)``; the loss is the drop in log-likelihood of the
    sentences that use it, approximated as ``F_i * (log p(i) - sum_alt log p'(alt))``.
    """
    num = len(freq)
    logsum_alt = np.log(total + freq * (n_alt - 1), where=candidate, out=np.zeros(num))
    alt_freq = np.where(a_pid >= 0, freq[np.maximum(a_pid, 0)], 0.0)
    terms = np.log(alt_freq + freq[a_idx]) - logsum_alt[a_idx]
    logprob_alt = np.bincount(a_idx, weights=np.where(candidate[a_idx], terms, 0.0), minlength=num)
    logprob_sp = np.log(np.where(freq > 0, freq, 1.0)) - np.log(total)
    return (freq / corpus_weight) * (logprob_sp - logprob_alt)


def _finalize(pieces: list[str], logp: np.ndarray, alive: np.ndarray, required: Mapping[str, int],
              num_pieces: int) -> list[tuple[str, float]]:
    """Required characters first (dead ones just below the minimum score), then the best pieces."""
    min_score = float(logp[alive].min())
    final: dict[str, float] = {}
    penalty = 0.0
    index = {p: i for i, p in enumerate(pieces)}
    for c, _ in sorted(required.items(), key=lambda kv: (-kv[1], kv[0])):
        i = index.get(c)
        if i is not None and alive[i]:
            final[c] = float(logp[i])
        else:
            final[c] = min_score + penalty
            penalty += 0.0001
    for i in sorted(np.flatnonzero(alive), key=lambda i: (-logp[i], pieces[i])):
        if len(final) >= num_pieces:
            break
        if pieces[i] not in final:
            final[pieces[i]] = float(logp[i])
    return sorted(final.items(), key=lambda kv: (-kv[1], kv[0]))


# ============================================================================ the tokenizer
def metaspace_words(text: str) -> list[str]:
    """Split on whitespace and mark each word with ``▁`` (``WhitespaceSplit`` + ``Metaspace``)."""
    out: list[str] = []
    for w in _SPLIT_WS.split(text):
        if not w:
            continue
        if not w.startswith(WS_MARK):
            w = WS_MARK + w
        out.extend(_SPLIT_MARK.findall(w))
    return out


class UnigramTokenizer(Tokenizer):
    """Unigram LM tokenizer on whitespace-split words with ``▁`` markers.

    Ids: the special tokens (``<unk>`` first by default), then the pieces best first.
    """

    kind = "unigram"
    config_cls = UnigramConfig

    def __init__(self, config: UnigramConfig | None = None) -> None:
        super().__init__(config)
        self.model: UnigramModel | None = None
        self.history: list[dict[str, float]] = []
        self._cache: dict[str, list[int]] = {}

    def pre_tokenize(self, text: str) -> list[str]:
        return metaspace_words(text)

    def canonical(self, text: str) -> str:
        """What ``decode(encode(text))`` returns when every character is known."""
        return "".join(self.pre_tokenize(text)).replace(WS_MARK, " ")[1:]

    def train(self, text_or_iter: str | Iterable[str], vocab_size: int) -> "UnigramTokenizer":
        """Learn ``vocab_size - len(special_tokens)`` pieces (all characters of the text included).

        A small text may support fewer pieces (EM drops pieces expected less than 0.5 times);
        the vocabulary is then smaller than asked, as ``vocab_size`` shows.

        Raises:
            ValueError: ``vocab_size`` cannot hold the special tokens and the characters.
        """
        cfg = self.config
        counts: Counter[str] = Counter()
        finals: Counter[str] = Counter()  # words that end a line (for seeding, see _seed_pieces)
        for text in iter_texts(text_or_iter):
            for line in text.split("\n"):
                words = self.pre_tokenize(line)
                if words:
                    counts.update(words)
                    finals[words[-1]] += 1
        if not counts:
            raise ValueError("no training text")
        required = required_characters(counts, cfg.character_coverage)
        check_vocab_size(vocab_size, len(cfg.special_tokens) + len(required) + 1,
                         f"{len(cfg.special_tokens)} special tokens + {len(required)} characters + 1")
        result = train_unigram(counts, vocab_size - len(cfg.special_tokens), cfg, required, final_counts=finals)
        self.history = result.history
        self._build([(s, 0.0) for s in cfg.special_tokens] + result.pieces)
        return self

    def _build(self, vocab: Sequence[tuple[str, float]]) -> None:
        pieces = [p for p, _ in vocab]
        specials = self.config.special_tokens
        if pieces[: len(specials)] != list(specials):
            raise ValueError(f"vocabulary must start with the special tokens {specials}")
        self.model = UnigramModel(pieces, [s for _, s in vocab], pieces.index(self.config.unk_token),
                                  range(len(specials)))
        self._cache = {}

    @property
    def vocab_size(self) -> int:
        return 0 if self.model is None else len(self.model.pieces)

    @property
    def pieces(self) -> list[tuple[str, float]]:
        """``(piece, log-probability)`` by id (what ``tokenizers.models.Unigram(vocab=...)`` takes)."""
        self._check_trained()
        return list(zip(self.model.pieces, self.model.scores))

    @property
    def unk_id(self) -> int:
        self._check_trained()
        return self.model.unk_id

    def encode(self, text: str) -> list[int]:
        """Viterbi segmentation of every word."""
        self._check_trained()
        cache = self._cache
        out: list[int] = []
        for word in self.pre_tokenize(text):
            ids = cache.get(word)
            if ids is None:
                ids = cache[word] = [i for _, _, i in self.model.viterbi(word)]
            out.extend(ids)
        return out

    def sample_encode(self, text: str, alpha: float = 0.1, nbest_size: int = -1,
                      rng: random.Random | int | None = None) -> list[int]:
        """Sample a segmentation of every word (subword regularisation).

        Args:
            alpha: smoothing exponent on P(segmentation); SentencePiece's default is 0.1.
            nbest_size: ``-1``: whole lattice (forward-filtering backward-sampling); ``> 1``:
                among the n best; ``0``/``1``: Viterbi.
            rng: a ``random.Random`` or a seed.
        """
        self._check_trained()
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        out: list[int] = []
        for word in self.pre_tokenize(text):
            out.extend(i for _, _, i in self.model.sample(word, alpha, nbest_size, rng))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Concatenate pieces and turn ``▁`` back into spaces (the first one is dropped)."""
        self._check_trained()
        check_ids(ids, self.vocab_size)
        text = "".join(self.model.pieces[i] for i in ids).replace(WS_MARK, " ")
        return text[1:] if text.startswith(" ") else text

    def id_to_token(self, token_id: int) -> str:
        self._check_trained()
        check_ids([token_id], self.vocab_size)
        return self.model.pieces[token_id]

    def token_score(self, token_id: int) -> float | None:
        return self.model.scores[token_id]

    def _get_state(self) -> dict[str, Any]:
        return {"pieces": [[p, s] for p, s in self.pieces]}

    def _set_state(self, state: dict[str, Any]) -> None:
        vocab = state["pieces"]
        if not isinstance(vocab, list) or not all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0]
            and isinstance(v[1], (int, float)) for v in vocab
        ):
            raise ValueError("'pieces' must be a list of [piece, score] pairs")
        self._build([(p, float(s)) for p, s in vocab])
