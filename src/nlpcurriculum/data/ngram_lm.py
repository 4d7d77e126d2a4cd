"""An n-gram language model with interpolated modified Kneser-Ney smoothing; a perplexity filter.

Implements Chen & Goodman 1998, *An Empirical Study of Smoothing Techniques for Language
Modeling* (TR-10-98; also Chen & Goodman 1999, Computer Speech & Language 13), in the form KenLM
uses (Heafield et al. 2013). Perplexity filtering of web text with such a model follows CCNet
(Wenzek et al. 2019, arXiv:1911.00359), which keeps documents whose perplexity under a model
trained on clean reference text is low.

The model, for order n and a word w after context h (the previous n - 1 words):

    p(w | h) = max(a(h w) - D(a(h w)), 0) / a(h .)  +  gamma(h) * p(w | h')

where h' drops the oldest word of h, a(h .) = sum_v a(h v), and

    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / a(h .)

with N_k(h .) the number of distinct words seen after h with (adjusted) count k (3+ for >= 3).
If h was never seen, p(w | h) = p(w | h'). The recursion ends at the unigram level, which
interpolates with the uniform distribution 1 / |V|.

*Adjusted counts* are the Kneser-Ney idea: at the highest order a(.) is the raw count, but at a
lower order m it is the number of distinct words that precede the m-gram (its "continuation
count"), because the lower order is only consulted when the longer context was not enough: a
word like "Francisco" is frequent but follows only "San", so it should get little lower-order
mass. m-grams that start with <s> keep their raw counts (nothing can precede <s>).

*Modified* KN uses three discounts per order, from that order's count-of-counts t_k (the number
of m-grams with adjusted count k): Y = t1 / (t1 + 2 t2), D1 = 1 - 2 Y t2/t1, D2 = 2 - 3 Y t3/t2,
D3+ = 3 - 4 Y t4/t3. Because D_k <= k, every max(., 0) is inactive and the probabilities of a
context sum to exactly one over the vocabulary (<unk> and </s> included, <s> excluded): the
discounted mass a context gives up is exactly gamma(h), which is spread by the lower order.
On tiny corpora some t_k are zero and the estimates are undefined; then the discounts fall back
to ``fallback_discount`` (clamped to [0, k]), and the test suite uses fixed discounts for its
hand-worked example.

Left out: pruning, quantisation, ARPA export, backoff (non-interpolated) KN, and the
count-merging tricks that let KenLM train on billions of tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.data.filters import DocumentFilter, FilterResult, KEEP, Reason, TextStats
from nlpcurriculum.data.minhash import to_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_WORD_RE = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased words and punctuation marks: ``"Hi, you."`` -> ``["hi", ",", "you", "."]``."""
    return _WORD_RE.findall(text.lower())


@dataclass
class KneserNeyConfig:
    """Modified Kneser-Ney n-gram model.

    Attributes:
        order: n (2 = bigram, 3 = trigram, ...).
        min_count: training words seen fewer times become <unk> (gives <unk> real mass).
        discounts: fixed (D1, D2, D3+) for every order instead of the count-of-counts estimate.
        fallback_discount: used where the estimate is undefined (too few distinct counts).
    """

    order: int = 3
    min_count: int = 1
    discounts: tuple[float, float, float] | None = None
    fallback_discount: float = 0.75

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if self.discounts is not None:
            self.discounts = tuple(float(d) for d in self.discounts)
            ok = len(self.discounts) == 3 and all(
                0.0 <= d <= k for k, d in zip((1, 2, 3), self.discounts)
            )
            if not ok:
                raise ValueError(
                    f"discounts must be (D1, D2, D3+) with 0 <= D_k <= k, got {self.discounts}"
                )
        if not 0.0 <= self.fallback_discount <= 1.0:
            raise ValueError(f"fallback_discount must be in [0, 1], got {self.fallback_discount}")


def estimate_discounts(count_of_counts: Counter, fallback: float) -> tuple[float, float, float]:
    """Chen & Goodman's (D1, D2, D3+) from t_k = number of n-grams with count k."""
    t1, t2, t3, t4 = (count_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return (min(fallback, 1.0), min(fallback, 2.0), min(fallback, 3.0))
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    # Clamp to [0, k] so that max(a - D, 0) = a - D and probabilities stay normalised.
    d1, d2, d3 = (min(max(dk, 0.0), float(k)) for k, dk in zip((1, 2, 3), d))
    return d1, d2, d3


class _Context:
    """The statistics of one context h at one order: adjusted counts of the words after it."""

    __slots__ = ("counts", "total", "gamma_num")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = 0
        self.gamma_num = 0.0


class KneserNeyLM:
    """Interpolated modified Kneser-Ney language model over token sequences.

    Example:
        >>> lm = KneserNeyLM(KneserNeyConfig(order=2)).fit([["a", "b"], ["a", "c"]])
        >>> round(sum(lm.prob(w, ["a"]) for w in lm.vocab), 12)
        1.0
    """

    def __init__(self, cfg: KneserNeyConfig | None = None) -> None:
        self.cfg = cfg or KneserNeyConfig()
        self.vocab: list[str] = []
        self._vocab_set: set[str] = set()
        # tables[m][h] for m = 1..n: contexts h of length m - 1 (a tuple) -> _Context
        self.tables: list[dict[tuple[str, ...], _Context]] = []
        self.discounts: list[tuple[float, float, float]] = []

    # -- training ------------------------------------------------------------------------------
    def fit(self, sequences: Iterable[Sequence[str]]) -> KneserNeyLM:
        """Count n-grams, make adjusted counts, estimate discounts and gamma numerators."""
        sequences = [list(s) for s in sequences]
        n = self.cfg.order
        freq = Counter(w for s in sequences for w in s)
        if BOS in freq or EOS in freq:
            raise ValueError(f"training tokens must not contain {BOS} or {EOS}")
        known = {w for w, c in freq.items() if c >= self.cfg.min_count}
        self.vocab = sorted(known - {UNK}) + [EOS, UNK]
        self._vocab_set = set(self.vocab)

        # Raw counts of the highest order, over sentences padded with n-1 <s> and one </s>.
        raw: Counter[tuple[str, ...]] = Counter()
        for s in sequences:
            padded = [BOS] * (n - 1) + [w if w in known else UNK for w in s] + [EOS]
            raw.update(zip(*[padded[i:] for i in range(n)]))
        # Adjusted counts, order by order from the top: a lower-order m-gram's count is the number
        # of distinct words before it, unless it starts with <s>, where the raw count is kept.
        adjusted: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(n + 1)]
        adjusted[n] = raw
        for m in range(n - 1, 0, -1):
            raw_m: Counter[tuple[str, ...]] = Counter()
            cont: Counter[tuple[str, ...]] = Counter()
            for gram, c in raw.items():
                suffix = gram[n - m :]
                raw_m[suffix] += c  # the raw count of the m-gram (as the tail of n-grams)
            for gram in adjusted[m + 1]:
                cont[gram[1:]] += 1  # one more distinct predecessor
            adjusted[m] = Counter(
                {g: (raw_m[g] if g[0] == BOS else cont[g]) for g in raw_m if g != (BOS,) * m}
            )
        self.tables = [{}]
        self.discounts = [(0.0, 0.0, 0.0)]
        for m in range(1, n + 1):
            d = self.cfg.discounts or estimate_discounts(
                Counter(adjusted[m].values()), self.cfg.fallback_discount
            )
            table: dict[tuple[str, ...], _Context] = defaultdict(_Context)
            for gram, c in adjusted[m].items():
                ctx = table[gram[:-1]]
                ctx.counts[gram[-1]] = c
                ctx.total += c
            for ctx in table.values():
                ctx.gamma_num = sum(d[min(c, 3) - 1] for c in ctx.counts.values())
            self.tables.append(dict(table))
            self.discounts.append(d)
        return self

    # -- probabilities -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.tables:
            raise RuntimeError("KneserNeyLM is not fitted; call fit() first")

    def prob(self, word: str, context: Sequence[str]) -> float:
        """p(word | context) using the last order - 1 context words (<s>-padded if shorter).

        Words outside the vocabulary are scored as <unk>; ``<s>`` is never predicted (p = 0).
        """
        self._check_fitted()
        if word == BOS:
            return 0.0
        n = self.cfg.order
        w = word if word in self._vocab_set else UNK
        ctx = [c if (c in self._vocab_set or c == BOS) else UNK for c in context]
        ctx = ctx[len(ctx) - (n - 1) :] if n > 1 else []  # the last n - 1 words (none if n = 1)
        ctx = [BOS] * (n - 1 - len(ctx)) + ctx
        return self._prob(w, tuple(ctx))

    def _prob(self, w: str, h: tuple[str, ...]) -> float:
        # Iterative from the unigram level up: p_1 = discounted unigram + gamma * uniform.
        p = 1.0 / len(self.vocab)
        for m in range(1, len(h) + 2):
            ctx = self.tables[m].get(h[len(h) - (m - 1) :] if m > 1 else ())
            if ctx is None or ctx.total == 0:
                continue  # unseen context: p(w | h) = p(w | h')
            c = ctx.counts.get(w, 0)
            d = self.discounts[m][min(c, 3) - 1] if c else 0.0
            p = (c - d) / ctx.total + ctx.gamma_num / ctx.total * p
        return p

    def logprob(self, sequence: Sequence[str]) -> tuple[float, int]:
        """Natural-log probability of a sentence (with </s>) and the number of predicted tokens.

        A token the model gives probability 0 makes the total ``-inf`` (perplexity ``inf``).
        That happens on small, repetitive training text: every word is seen ``min_count`` times
        (so ``<unk>`` never is) and the estimated discounts clamp to 0 (so no mass is reserved
        for unseen words).
        """
        self._check_fitted()
        n = self.cfg.order
        toks = [t if t in self._vocab_set else UNK for t in sequence] + [EOS]
        h = [BOS] * (n - 1)
        total = 0.0
        for t in toks:
            p = self._prob(t, tuple(h[len(h) - (n - 1) :]) if n > 1 else ())
            total += math.log(p) if p > 0 else -math.inf
            h.append(t)
        return total, len(toks)

    def perplexity(self, sequence: Sequence[str]) -> float:
        """exp(-mean log p) over the tokens of ``sequence`` plus </s>."""
        lp, count = self.logprob(sequence)
        return math.exp(-lp / count)

    def corpus_perplexity(self, sequences: Iterable[Sequence[str]]) -> float:
        """Perplexity over many sequences (token-weighted)."""
        total, count = 0.0, 0
        for s in sequences:
            lp, c = self.logprob(s)
            total += lp
            count += c
        return math.exp(-total / max(count, 1))


# ---------------------------------------------------------------------------------------------
# Perplexity filter
# ---------------------------------------------------------------------------------------------


@dataclass
class PerplexityFilterConfig:
    """CCNet-style perplexity filter.

    Attributes:
        percentile: documents above this percentile of the reference perplexities are dropped.
        max_tokens: only the first this-many tokens of a document are scored (time bound).
        lm: the language model's configuration.
    """

    percentile: float = 95.0
    max_tokens: int = 5_000
    lm: KneserNeyConfig = field(default_factory=KneserNeyConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


class PerplexityFilter(DocumentFilter):
    """Drops documents whose perplexity exceeds a percentile of clean reference documents.

    Usage: ``PerplexityFilter(cfg).fit(train_docs, reference_docs)``; the threshold is measured
    on ``reference_docs`` (held out from training, else it is optimistically low).
    """

    reason = Reason.PERPLEXITY

    def __init__(self, cfg: PerplexityFilterConfig | None = None) -> None:
        self.cfg = cfg or PerplexityFilterConfig()
        self.lm = KneserNeyLM(self.cfg.lm)
        self.threshold = math.inf
        self.reference_perplexities = np.zeros(0)

    def doc_perplexity(self, doc: str | bytes) -> float:
        """Perplexity of a document's (capped) token sequence; inf for a document with no tokens."""
        toks = tokenize(to_text(doc))[: self.cfg.max_tokens]
        return self.lm.perplexity(toks) if toks else math.inf

    def fit(
        self, train_docs: Iterable[str | bytes], reference_docs: Iterable[str | bytes]
    ) -> PerplexityFilter:
        """Train the LM on ``train_docs`` and set the threshold from ``reference_docs``."""
        self.lm.fit(tokenize(to_text(d)) for d in train_docs)
        ref = np.array([self.doc_perplexity(d) for d in reference_docs])
        ref = ref[np.isfinite(ref)]
        if ref.size == 0:
            raise ValueError("no reference document has a token; cannot set a perplexity threshold")
        self.reference_perplexities = ref
        self.threshold = float(np.percentile(ref, self.cfg.percentile))
        return self

    def check(self, stats: TextStats) -> FilterResult:
        if not self.lm.tables:
            raise RuntimeError("PerplexityFilter is not fitted; call fit() first")
        return KEEP if self.doc_perplexity(stats.text) <= self.threshold else self._drop()
