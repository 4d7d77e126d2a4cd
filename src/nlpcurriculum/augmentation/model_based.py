"""Model-based text augmentation: embedding synonyms, back-translation, LM paraphrases.

:mod:`nlpcurriculum.data.augment` holds the rule operations of EDA (Wei & Zou 2019,
arXiv:1901.11196). This module adds the three augmentations that need a trained model, each
built from the project's own models (nothing downloaded):

* **Synonyms from our word embeddings** (:func:`embedding_neighbours`): a neighbour function for
  EDA's synonym replacement backed by word2vec tables of the ``word_embeddings`` stage. A word's
  candidates are its ``k`` nearest cosine neighbours that pass a similarity threshold
  (``min_cos``) *and* lie in the same frequency band: the tables store words by decreasing count
  (:class:`~nlpcurriculum.embeddings.vocab.Vocabulary`), so the rank is a frequency proxy and
  ``|log2(rank_a + 1) - log2(rank_b + 1)| <= band`` keeps a frequent function word from being
  swapped for a rare content word (distributional neighbours of frequent words are often
  other frequent words of a different role). Words absent from every table get no candidates.
* **Back-translation** (Sennrich et al. 2016, arXiv:1511.06709; as augmentation: Yu et al. 2018,
  QANet, arXiv:1804.09541; Xie et al. 2020, UDA, arXiv:1904.12848) through a *pseudo-language*
  we define ourselves (:class:`PseudoLanguage`: a letter substitution cipher plus a word-order
  change, every adjacent word pair swapped), so the parallel corpus is free and exact. The
  translator is a decoder-only mini-former over word ids (:class:`WordCodec`: the in-domain
  words and their pseudo forms) trained on ``[pad.. source][direction][target][end]`` with the
  loss on the target only (translation as a conditional language model; one model, both
  directions, the direction token says which). :func:`translate` decodes a batch in lockstep
  (greedy or temperature sampling); :func:`back_translate` goes English -> pseudo -> English
  chunk by chunk, and sampling errors on the way are what make the round trip a paraphrase
  instead of the identity.
* **LM paraphrases** (:func:`lm_rewrite`, :func:`lm_continue`): a word-level language model
  trained on unlabelled in-domain text rewrites a labelled example left to right, keeping a
  prefix and resampling each later word with a probability at a temperature (rate 1: keep a
  prefix, generate the rest, the "conditional generation" augmentation of Kumar et al. 2020,
  arXiv:2003.02245, without the label prompt). A label-preservation filter (the caller's
  classifier) decides what to keep.

Word tokens, not bytes: a byte-level translator has to learn the cipher letter by letter and the
reordering across variable word lengths, which took minutes of CPU and still failed at our sizes;
over word ids the same two rules are a lookup and a fixed position permutation, learned in
seconds. Words outside the codec (typos, rare words) become ``<unk>``.

Left out: beam search, a real encoder-decoder (cross-attention), multilingual pivots, a
label-conditioned generator (the labels are what is scarce), and contextual augmentation with a
masked LM.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.data.augment import NeighbourFn
from nlpcurriculum.decoding.generate import generate, next_token
from nlpcurriculum.decoding.samplers import SamplerConfig
from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.embeddings.vocab import simple_word_tokenize

__all__ = [
    "EN2PS",
    "EOS",
    "PAD",
    "PS2EN",
    "UNK",
    "PairBatcher",
    "PseudoLanguage",
    "back_translate",
    "char_similarity",
    "chunk_words",
    "embedding_neighbours",
    "encode_pair",
    "lm_continue",
    "lm_rewrite",
    "normalize",
    "translate",
    "WordCodec",
]

PAD, EN2PS, PS2EN, EOS, UNK = 0, 1, 2, 3, 4  # the special ids of :class:`WordCodec`


# ---------------------------------------------------------------------------------------------
# Synonyms from word embeddings
# ---------------------------------------------------------------------------------------------


def embedding_neighbours(
    tables: Sequence[WordVectors], k: int = 5, min_cos: float = 0.5, band: float = 2.0
) -> NeighbourFn:
    """A neighbour function (word -> candidate synonyms) from word2vec tables.

    Args:
        tables: word-vector tables, searched in order; a word's candidates come from the first
            table that holds it.
        k: nearest neighbours considered per word.
        min_cos: keep neighbours with cosine similarity >= this.
        band: keep neighbours whose log2 frequency rank differs by at most this (0 = no band).

    Raises:
        ValueError: on k < 1, min_cos outside [-1, 1] or band < 0.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not -1.0 <= min_cos <= 1.0:
        raise ValueError(f"min_cos must be in [-1, 1], got {min_cos}")
    if band < 0:
        raise ValueError(f"band must be >= 0, got {band}")
    cache: dict[str, tuple[str, ...]] = {}

    def neighbours(word: str) -> tuple[str, ...]:
        if word in cache:
            return cache[word]
        out: tuple[str, ...] = ()
        for table in tables:
            if word in table:
                rank = math.log2(table.index[word] + 1)
                out = tuple(
                    w for w, cos in table.most_similar(word, k)
                    if cos >= min_cos and w.isalpha()
                    and (band == 0 or abs(math.log2(table.index[w] + 1) - rank) <= band))
                break
        cache[word] = out
        return out

    return neighbours


# ---------------------------------------------------------------------------------------------
# The pseudo-language and the translator's data
# ---------------------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower-cased words joined by single spaces (punctuation dropped): the translator's English."""
    return " ".join(simple_word_tokenize(text))


@dataclass(frozen=True)
class PseudoLanguage:
    """A deterministic rule language: a letter cipher and a local word-order change.

    ``to_pseudo`` maps every letter through a fixed permutation of ``a-z`` (seeded) and then swaps
    each adjacent word pair (``w1 w2 w3 w4 w5 -> w2 w1 w4 w3 w5``), a toy version of a language
    with a different word order. Both steps are invertible, so ``from_pseudo(to_pseudo(x)) == x``
    for normalized ``x``: the parallel corpus is exact.
    """

    seed: int = 0

    def _tables(self) -> tuple[dict[str, str], dict[str, str]]:
        letters = "abcdefghijklmnopqrstuvwxyz"
        perm = np.random.default_rng(self.seed).permutation(26)
        fwd = {a: letters[int(p)] for a, p in zip(letters, perm)}
        return fwd, {v: k for k, v in fwd.items()}

    @staticmethod
    def _swap_pairs(words: list[str]) -> list[str]:
        out = list(words)
        for i in range(0, len(out) - 1, 2):
            out[i], out[i + 1] = out[i + 1], out[i]
        return out

    def to_pseudo(self, text: str) -> str:
        fwd, _ = self._tables()
        words = ["".join(fwd.get(c, c) for c in w) for w in normalize(text).split()]
        return " ".join(self._swap_pairs(words))

    def from_pseudo(self, text: str) -> str:
        _, inv = self._tables()
        words = ["".join(inv.get(c, c) for c in w) for w in text.split()]
        return " ".join(self._swap_pairs(words))


class WordCodec:
    """Word <-> id for the translator and the paraphrase LM (a closed, in-domain vocabulary).

    Ids 0-4 are the specials ``<pad>``, ``<en2ps>``, ``<ps2en>``, ``<eos>``, ``<unk>``; then the
    words by decreasing count (ties alphabetical). Unknown words encode to ``<unk>``; decoding
    drops every special.
    """

    SPECIALS = ("<pad>", "<en2ps>", "<ps2en>", "<eos>", "<unk>")

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        if len(set(self.words)) != len(self.words):
            raise ValueError("codec words must be unique")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1) -> "WordCodec":
        counts = Counter(w for t in texts for w in t.split())
        return cls(sorted((w for w, c in counts.items() if c >= min_count),
                          key=lambda w: (-counts[w], w)))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, UNK) for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids if i >= len(self.SPECIALS) and i < len(self.words))


def chunk_words(text: str, max_words: int) -> list[str]:
    """Split a text into chunks of at most ``max_words`` whitespace words."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    words = text.split()
    return [" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words)]


def encode_pair(src: Sequence[int], tgt: Sequence[int], direction: int,
                src_len: int) -> tuple[list[int], int]:
    """``[PAD.. src][direction][tgt][EOS]`` as ids, and the index where the target starts.

    The source is left-padded to ``src_len`` ids so every prompt has the same length and a batch
    decodes in lockstep.
    """
    if len(src) > src_len:
        raise ValueError(f"source of {len(src)} tokens exceeds src_len={src_len}")
    ids = [PAD] * (src_len - len(src)) + list(src) + [direction] + list(tgt) + [EOS]
    return ids, src_len + 1


class PairBatcher:
    """Batches of translation pairs for :class:`~nlpcurriculum.training.trainer.Trainer`.

    Every example is ``encode_pair(src, tgt, direction)`` right-padded to ``2 * src_len + 2``;
    ``x`` is the sequence without its last id and ``y`` the next ids, with ``-100`` (not scored)
    on the source, the direction id and the padding: the loss is the conditional likelihood of
    the target. Each pair gives two examples, one per direction.

    Args:
        pairs: ``(english ids, pseudo ids)``, each at most ``src_len`` long.
        src_len: S, the fixed source length.
        seed: the batcher's generator (which examples).
    """

    def __init__(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], src_len: int,
                 seed: int = 0) -> None:
        if not pairs:
            raise ValueError("PairBatcher needs at least one pair")
        self.src_len = src_len
        self.length = 2 * src_len + 2
        rows_x, rows_y = [], []
        for en, ps in pairs:
            for src, tgt, d in ((en, ps, EN2PS), (ps, en, PS2EN)):
                if len(tgt) > src_len:
                    raise ValueError(f"target of {len(tgt)} tokens exceeds src_len={src_len}")
                ids, start = encode_pair(src, tgt, d, src_len)
                ids = ids + [PAD] * (self.length - len(ids))
                y = [v if start <= i + 1 <= start + len(tgt) else -100
                     for i, v in enumerate(ids[1:])]
                rows_x.append(ids[:-1])
                rows_y.append(y)
        self.x = torch.tensor(rows_x, dtype=torch.long)  # (2N, 2S+1)
        self.y = torch.tensor(rows_y, dtype=torch.long)  # (2N, 2S+1)
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.x.shape[0]

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=self.gen)
        return self.x[idx], self.y[idx]

    def eval_batches(self, batch_size: int, n_batches: int) -> list[tuple[Tensor, Tensor]]:
        out = []
        for b in range(n_batches):
            lo = (b * batch_size) % len(self)
            idx = torch.arange(lo, lo + batch_size) % len(self)
            out.append((self.x[idx], self.y[idx]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


@torch.no_grad()
def translate(
    model: nn.Module,
    sources: Sequence[Sequence[int]],
    direction: int,
    src_len: int,
    *,
    temperature: float = 0.0,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Translate id sequences (each at most ``src_len`` long) with the pair-trained model.

    All prompts are ``src_len + 1`` ids, so a batch advances one id per step together
    (:func:`~nlpcurriculum.decoding.generate.generate`); a row is done at its end id (or after
    ``src_len`` ids). No KV cache: each step reruns the prefix, which at these lengths
    (<= 2 * src_len + 2) is cheap. Returns the ids before the end id.
    """
    if direction not in (EN2PS, PS2EN):
        raise ValueError(f"direction must be EN2PS ({EN2PS}) or PS2EN ({PS2EN}), got {direction}")
    out: list[list[int]] = []
    for lo in range(0, len(sources), batch_size):
        batch = sources[lo:lo + batch_size]
        prompts = [encode_pair(s, [], direction, src_len)[0][:-1] for s in batch]  # B x (S+1)
        rows = generate(model, prompts, src_len + 1, sampler=SamplerConfig(temperature=temperature),
                        stop_id=EOS, generator=generator)
        for row in rows:
            out.append((row[:row.index(EOS)] if EOS in row else row)[:src_len])
    return out


def back_translate(
    model: nn.Module,
    codec: WordCodec,
    texts: Sequence[str],
    src_len: int,
    *,
    temperature: float = 0.7,
    generator: torch.Generator | None = None,
) -> tuple[list[str], list[str]]:
    """Round trip English -> pseudo -> English, chunk by chunk; returns (pseudo, English) texts.

    Each text is normalized and cut into chunks of at most ``src_len`` words; all chunks of all
    texts are translated as one batch per direction, then rejoined per text. Words outside the
    codec's vocabulary become ``<unk>`` and are dropped on the way back.
    """
    chunks = [chunk_words(normalize(t), src_len) for t in texts]
    flat = [codec.encode(c) for cs in chunks for c in cs]
    pseudo = translate(model, flat, EN2PS, src_len, temperature=temperature, generator=generator)
    back = translate(model, pseudo, PS2EN, src_len, temperature=temperature, generator=generator)
    out_ps, out_en, i = [], [], 0
    for cs in chunks:
        out_ps.append(" ".join(codec.decode(p) for p in pseudo[i:i + len(cs)]))
        out_en.append(" ".join(codec.decode(b) for b in back[i:i + len(cs)]))
        i += len(cs)
    return out_ps, out_en


# ---------------------------------------------------------------------------------------------
# LM paraphrases
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def lm_continue(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new: int,
    *,
    temperature: float = 1.0,
    banned: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue equal-length id prompts in lockstep by exactly ``max_new`` ids each
    (:func:`~nlpcurriculum.decoding.generate.generate`).

    The context is the last ``model.config.max_seq_len`` ids (a sliding window). ``banned`` ids
    (e.g. padding, end of document) get probability 0, so every row gets ``max_new`` real tokens
    and the caller cuts each to the length it wants.
    """
    if not prompts:
        return []
    if len({len(p) for p in prompts}) != 1:
        raise ValueError("lm_continue needs prompts of one length (batch them by length)")
    return generate(model, [list(p) for p in prompts], max_new,
                    sampler=SamplerConfig(temperature=temperature), banned=banned, generator=generator)


@torch.no_grad()
def lm_rewrite(
    model: nn.Module,
    docs: Sequence[Sequence[int]],
    *,
    start: int,
    rate: float,
    temperature: float = 1.0,
    bos: int = EOS,
    banned: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Rewrite documents left to right: from position ``start`` on, each token is replaced with
    probability ``rate`` by a sample from the LM given the (already rewritten) text before it.

    ``rate = 1`` is "keep a prefix of ``start`` tokens and let the LM continue"; a small rate is
    contextual word replacement with a causal LM (Kobayashi 2018, arXiv:1805.06201, uses a
    bidirectional one). All documents advance in lockstep (shorter ones are padded and cut back);
    the context is ``bos`` plus the tokens so far, the last ``model.config.max_seq_len`` of them.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if not docs:
        return []
    model.eval()
    window = model.config.max_seq_len
    n = max(len(d) for d in docs)
    ref = torch.tensor([list(d) + [PAD] * (n - len(d)) for d in docs], dtype=torch.long)  # (B, N)
    ids = torch.full((len(docs), 1), bos, dtype=torch.long)  # (B, 1 + t)
    for t in range(n):
        tok = ref[:, t]
        if t >= start and rate > 0:
            flip = torch.rand(len(docs), generator=generator) < rate  # (B,)
            if bool(flip.any()):
                logits = model(ids[:, -window:]).logits[:, -1]  # (B, V)
                if banned:
                    logits[:, list(banned)] = float("-inf")
                tok = torch.where(flip, next_token(logits, SamplerConfig(temperature=temperature),
                                                   generator=generator), tok)
        ids = torch.cat([ids, tok[:, None]], dim=1)
    return [row[1:1 + len(d)] for row, d in zip(ids.tolist(), docs)]


def char_similarity(a: Sequence, b: Sequence) -> float:
    """1 - Levenshtein(a, b) / max(len): 1 for equal sequences, 0 for nothing in common.

    Works on any sequences: strings (character edits) or word lists (word edits).
    """
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))
