"""Corpora with planted exact and near duplicates, and the ground truth to score dedup against.

Near duplicates are made by replacing words of a source document with random vocabulary words.
Replacing m scattered words of a document with S word k-shingles destroys about m k shingles and
creates as many new ones, so J ~ (S - m k) / (S + m k), i.e. m ~ S (1 - J) / (k (1 + J)). Edits
that land within k words of each other share shingles and make that estimate pessimistic, so
:func:`make_near_duplicate` instead binary-searches m (editing a fixed random order of positions)
and reports the *measured* Jaccard of the shingle sets, which is the ground truth a MinHash
estimate is compared with.

Background documents are bags of Zipf-distributed pseudo-words: unrelated documents share almost
no 5-shingles, so every true duplicate pair is one we planted.

Left out: paraphrase-level ("semantic") duplicates, templated boilerplate, and partial
(containment) duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.minhash import MinHashConfig, jaccard, shingles
from nlpcurriculum.data.synthetic.base import as_rng

_CONSONANTS = list("bcdfghjklmnprstvwz")
_VOWELS = list("aeiou")


def pseudo_vocabulary(size: int, seed: int | np.random.Generator = 0) -> list[str]:
    """``size`` distinct pronounceable pseudo-words of 1-4 CV syllables, e.g. ``"tobe"``."""
    rng = as_rng(seed)
    words: dict[str, None] = {}
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])  # 90 CV syllables
    while len(words) < size:
        batch = 2 * (size - len(words)) + 16
        n_syll = rng.integers(1, 5, size=batch)  # 1-4 syllables: 90^4 ~ 6.6e7 possible words
        picks = syllables[rng.integers(len(syllables), size=(batch, 4))]  # (batch, 4)
        for row, n in zip(picks.tolist(), n_syll.tolist()):
            words["".join(row[:n])] = None
            if len(words) == size:
                break
    return list(words)


def random_documents(
    n: int,
    seed: int | np.random.Generator = 0,
    vocab_size: int = 20_000,
    min_words: int = 50,
    max_words: int = 300,
    zipf_s: float = 1.1,
) -> list[str]:
    """``n`` documents of Zipf-distributed pseudo-words (word rank r has probability ~ r^-s).

    Sentences of 8-20 words end with a period and start with a capital, so the text also passes
    through tokenisers and filters naturally.
    """
    if not 0 < min_words <= max_words:
        raise ValueError(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
    rng = as_rng(seed)
    vocab = pseudo_vocabulary(vocab_size, rng)
    p = 1.0 / np.arange(1, vocab_size + 1) ** zipf_s
    p /= p.sum()
    lengths = rng.integers(min_words, max_words + 1, size=n)
    # Word ids for the whole corpus as one int32 array; strings are made one document at a time
    # (a list of every word of 100k documents would hold ~20M str objects, over 1 GB).
    ids = rng.choice(vocab_size, size=int(lengths.sum()), p=p).astype(np.int32)
    docs, pos = [], 0
    for length in lengths.tolist():
        w = [vocab[i] for i in ids[pos : pos + length].tolist()]
        pos += length
        out, i = [], 0
        while i < length:
            j = min(length, i + int(rng.integers(8, 21)))
            sent = " ".join(w[i:j])
            out.append(sent[0].upper() + sent[1:] + ".")
            i = j
        docs.append(" ".join(out))
    return docs


def make_near_duplicate(
    doc: str,
    target_jaccard: float,
    seed: int | np.random.Generator,
    vocab: list[str],
    shingle_cfg: MinHashConfig | None = None,
) -> tuple[str, float]:
    """Edit words of ``doc`` until its shingle-set Jaccard with ``doc`` is as close to the target.

    Args:
        doc: source text (space-separated words).
        target_jaccard: desired Jaccard similarity in [0, 1].
        seed: randomness for edit positions and replacement words.
        vocab: replacement words.
        shingle_cfg: shingling used to measure Jaccard (default word 5-shingles).

    Returns:
        (near-duplicate text, measured Jaccard). With a target below 1 at least one word is
        edited, so on short documents the measured value can sit some way below the target.
    """
    if not 0.0 <= target_jaccard <= 1.0:
        raise ValueError(f"target_jaccard must be in [0, 1], got {target_jaccard}")
    rng = as_rng(seed)
    cfg = shingle_cfg or MinHashConfig()
    words = doc.split(" ")
    order = rng.permutation(len(words))  # edit positions in this fixed order
    repl = [vocab[i] for i in rng.integers(len(vocab), size=len(words))]
    base = shingles(doc, cfg)

    def edited(m: int) -> tuple[str, float]:
        w = list(words)
        for pos, new in zip(order[:m].tolist(), repl[:m]):
            # Keep a sentence's final period so sentence structure survives the edit.
            w[pos] = new + ("." if w[pos].endswith(".") else "")
        text = " ".join(w)
        return text, jaccard(base, shingles(text, cfg))

    # Binary search for the largest m with J >= target, bracketed around the estimate
    # m0 = S (1 - J) / (k (1 + J)) (edits that share shingles push the true m above m0).
    n_sh = max(len(base), 1)
    m0 = n_sh * (1.0 - target_jaccard) / (cfg.k * (1.0 + target_jaccard))
    lo, hi = max(0, int(m0 / 2)), min(len(words), int(3 * m0) + cfg.k)
    if edited(lo)[1] < target_jaccard:
        lo = 0
    if hi < len(words) and edited(hi + 1)[1] >= target_jaccard:
        hi = len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if edited(mid)[1] >= target_jaccard:
            lo = mid
        else:
            hi = mid - 1
    # A near duplicate below J = 1 must differ: at least one edit even if 0 edits is closer.
    first = lo if target_jaccard >= 1.0 else max(lo, 1)
    cand = [edited(m) for m in (first, first + 1) if m <= len(words)]
    return min(cand, key=lambda c: abs(c[1] - target_jaccard))


@dataclass
class DuplicatesConfig:
    """A corpus of originals plus planted duplicates.

    Attributes:
        n_originals: distinct source documents.
        n_exact: exact copies added (of random originals).
        n_near: near copies added (of random originals).
        jaccard_low, jaccard_high: each near copy's target Jaccard is uniform in this range.
        n_related: "hard negatives": edited copies at a *lower* Jaccard that the ground truth
            counts as distinct documents (their own cluster), so false merges cost precision.
        related_low, related_high: target Jaccard range of related documents.
        vocab_size: pseudo-words for originals and edits.
        min_words, max_words: original document length range.
        k: word-shingle size the Jaccard is measured with.
        shuffle: shuffle the corpus so copies are not next to their source.
    """

    n_originals: int = 1000
    n_exact: int = 100
    n_near: int = 200
    jaccard_low: float = 0.8
    jaccard_high: float = 0.95
    n_related: int = 0
    related_low: float = 0.2
    related_high: float = 0.5
    vocab_size: int = 20_000
    min_words: int = 50
    max_words: int = 300
    k: int = 5
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.n_originals < 1:
            raise ValueError(f"n_originals must be >= 1, got {self.n_originals}")
        if self.n_exact < 0 or self.n_near < 0:
            raise ValueError("n_exact and n_near must be >= 0")
        if not 0.0 <= self.jaccard_low <= self.jaccard_high <= 1.0:
            raise ValueError(
                "need 0 <= jaccard_low <= jaccard_high <= 1, "
                f"got {self.jaccard_low}, {self.jaccard_high}"
            )
        if self.n_related < 0 or not 0.0 <= self.related_low <= self.related_high <= 1.0:
            raise ValueError("need n_related >= 0 and 0 <= related_low <= related_high <= 1")


def inject_duplicates(cfg: DuplicatesConfig, seed: int | np.random.Generator = 0) -> list[dict]:
    """Generate originals and plant exact and near duplicates of them.

    Returns:
        One record per document: ``text``; ``cluster`` (ground-truth id: the index of the source
        original among originals, shared by all its copies; a related document gets a cluster of
        its own, ``n_originals + i``); ``kind`` (``"original"``, ``"exact"``, ``"near"``,
        ``"related"``); ``jaccard`` (measured word-shingle Jaccard with the source original;
        1.0 for originals and exact copies).
    """
    rng = as_rng(seed)
    originals = random_documents(cfg.n_originals, rng, cfg.vocab_size, cfg.min_words, cfg.max_words)
    vocab = pseudo_vocabulary(cfg.vocab_size, rng)
    shingle_cfg = MinHashConfig(k=cfg.k)
    records = [
        {"text": t, "cluster": i, "kind": "original", "jaccard": 1.0}
        for i, t in enumerate(originals)
    ]
    for src in rng.integers(cfg.n_originals, size=cfg.n_exact).tolist():
        records.append({"text": originals[src], "cluster": src, "kind": "exact", "jaccard": 1.0})
    for src in rng.integers(cfg.n_originals, size=cfg.n_near).tolist():
        target = float(rng.uniform(cfg.jaccard_low, cfg.jaccard_high))
        text, j = make_near_duplicate(originals[src], target, rng, vocab, shingle_cfg)
        records.append({"text": text, "cluster": src, "kind": "near", "jaccard": j})
    for i, src in enumerate(rng.integers(cfg.n_originals, size=cfg.n_related).tolist()):
        target = float(rng.uniform(cfg.related_low, cfg.related_high))
        text, j = make_near_duplicate(originals[src], target, rng, vocab, shingle_cfg)
        cluster = cfg.n_originals + i
        records.append({"text": text, "cluster": cluster, "kind": "related", "jaccard": j})
    if cfg.shuffle:
        records = [records[i] for i in rng.permutation(len(records)).tolist()]
    return records
