"""word2vec: CBOW and Skip-gram with negative sampling, trained in batches with torch.

Papers: Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space"
(arXiv:1301.3781) introduced the two architectures; "Distributed Representations of Words and
Phrases and their Compositionality" (arXiv:1310.4546) added negative sampling and subsampling.

Both models have two embedding tables: ``in_embed`` (the word vectors we keep) and ``out_embed``
(the "context" vectors, thrown away after training). For a training example with hidden vector
``h`` and true output word ``o``, negative sampling maximises

    log σ(h · u_o) + Σ_{i=1..k} log σ(-h · u_{n_i}),   n_i ~ P_n(w) ∝ count(w)^0.75

i.e. a logistic regression telling the true word from ``k`` noise words (eq. 4 of arXiv:1310.4546).
The architectures differ only in ``h`` and ``o``:

* **Skip-gram**: ``h = v_centre``, ``o`` = one context word. Every (centre, context) pair within the
  window is one example, so a centre word makes about ``W + 1`` examples (dynamic window).
* **CBOW** (continuous bag of words): ``h`` = the *mean* of the context words' ``in`` vectors,
  ``o`` = the centre word; one example per centre word, which is why CBOW is faster per word.

Training follows word2vec.c where it matters for quality: frequent-word subsampling and a dynamic
window (see :mod:`nlpcurriculum.embeddings.sampling`), ``in`` vectors initialised uniformly in
``±0.5/D`` and ``out`` vectors at zero, a learning rate decaying linearly to ``lr * min_lr_frac``,
and a noise word equal to the true word ignored. Unlike word2vec.c (one SGD step per example,
lock-free threads) examples are processed in shuffled mini-batches; the embedding tables are
``sparse=True`` so a step touches only the rows in the batch, not all ``V x D`` parameters.

Optimiser (measured with ``benchmarks/bench_word2vec.py`` on 1.5 MB of stories, one epoch, 2-core
CPU under load): ``SparseAdam`` on the mean batch loss is the default. Plain SGD on the *summed*
batch loss (each example takes the step it would take in word2vec.c) is 1.16-1.28x faster per word
because it keeps no moment tensors, but after the same epoch it reached far lower analogy accuracy
(skip-gram 0.42 vs 0.99; CBOW 0.14 vs 0.85; after 5 epochs on 3000 stories 0.90 vs 0.97 and 0.40 vs
0.94), and it diverges at larger learning rates: a frequent word appears hundreds of times in one
batch and its summed update overshoots. CBOW suffers most under SGD because autograd divides the
hidden gradient among the context words, whereas word2vec.c gives each context word the full
gradient. Adam's per-coordinate step normalisation sidesteps both problems, so it reaches a given
accuracy fastest. Training runs on one torch thread by default (``num_threads``): the per-step
tensors are small, and two threads measured 2.5-11x *slower* on the shared, loaded 2-core machine.

Dimension names: ``V`` vocabulary, ``D`` vector size, ``B`` batch, ``K`` negatives per example,
``C = 2W`` context slots (CBOW).

Left out: hierarchical softmax, phrase vectors, and the multi-threaded lock-free update of
word2vec.c (one batched process instead).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.embeddings.sampling import (
    cbow_examples,
    keep_probabilities,
    noise_distribution,
    sample_window_sizes,
    skipgram_pairs,
)
from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.embeddings.vocab import Vocabulary, as_sentences
from nlpcurriculum.metrics.timing import torch_threads

__all__ = ["Word2VecConfig", "Word2Vec", "SkipGram", "CBOW", "TrainLog", "build_model", "train_word2vec"]


@dataclass
class Word2VecConfig:
    """Hyper-parameters of word2vec training (a ``cbow`` / ``skipgram`` block of params).

    Attributes:
        arch: ``"skipgram"`` or ``"cbow"``.
        dim: vector size ``D`` (paper: 300; 50-100 is plenty for a few hundred words).
        window: maximum window ``W``; each centre draws its own size from ``1..W``.
        negatives: noise words ``K`` per example (paper: 5-20 for small data).
        min_count: words seen fewer times are dropped.
        sample: subsampling threshold ``t``; 0 disables it. The paper's 1e-5 suits billions of
            words; gensim's default 1e-3 suits small corpora like ours. An epoch in which it
            leaves no training pair (a text of a few dozen words) uses every word instead.
        ns_exponent: power of the unigram counts in the noise distribution (0.75).
        epochs: passes over the text.
        lr: initial learning rate; decays linearly to ``lr * min_lr_frac``.
        min_lr_frac: final learning rate as a fraction of ``lr`` (word2vec.c: 1e-4).
        batch_size: examples per optimiser step.
        optimizer: ``"sparse_adam"`` (mean loss; ``lr`` about 0.01-0.02) or ``"sgd"`` (sum of
            example losses, word2vec.c-style steps; ``lr`` about 0.025 for skip-gram).
        num_threads: torch intra-op threads while training (restored afterwards); 0 keeps torch's
            setting. One is the default because the per-step tensors are small: on the shared
            2-core machine here 2 threads were 2.5-11x slower (thread hand-offs stall under load).
        seed: seeds subsampling, windows, shuffling, negatives and initialisation.
    """

    arch: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = 64
    window: int = 5
    negatives: int = 5
    min_count: int = 5
    sample: float = 1e-3
    ns_exponent: float = 0.75
    epochs: int = 5
    lr: float = 0.02
    min_lr_frac: float = 1e-4
    batch_size: int = 1024
    optimizer: Literal["sgd", "sparse_adam"] = "sparse_adam"
    num_threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ("skipgram", "cbow"):
            raise ValueError(f"arch must be 'skipgram' or 'cbow', got {self.arch!r}")
        if self.optimizer not in ("sgd", "sparse_adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'sparse_adam', got {self.optimizer!r}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        for name in ("dim", "window", "negatives", "min_count", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {self.sample}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.min_lr_frac <= 1:
            raise ValueError(f"min_lr_frac must be in (0, 1], got {self.min_lr_frac}")


class Word2Vec(nn.Module):
    """Shared part of both architectures: the output table and the negative-sampling loss.

    Subclasses define ``in_embed`` and :meth:`hidden`.
    """

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dim = dim
        self.out_embed = nn.Embedding(vocab_size, dim, sparse=True)
        nn.init.zeros_(self.out_embed.weight)  # word2vec.c: syn1neg starts at zero

    def _init_in(self, weight: torch.Tensor) -> None:
        # word2vec.c: syn0 ~ U(-0.5/D, 0.5/D); small so early dot products are near 0 (σ ≈ 0.5).
        with torch.no_grad():
            weight[: self.vocab_size].uniform_(-0.5 / self.dim, 0.5 / self.dim)

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        """The hidden vector ``h`` of each example, ``(B, D)``."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Negative-sampling loss of each example.

        Args:
            inputs: ``(B,)`` centre ids (skip-gram) or ``(B, C)`` padded context ids (CBOW).
            targets: ``(B,)`` the true output words.
            negatives: ``(B, K)`` noise words.

        Returns:
            ``(B,)`` loss per example, ``-log σ(h·u_o) - Σ_k log σ(-h·u_{n_k})``; noise words equal
            to the target are masked out, as in word2vec.c.
        """
        h = self.hidden(inputs)  # (B, D)
        pos = (h * self.out_embed(targets)).sum(-1)  # (B,)
        neg = torch.bmm(self.out_embed(negatives), h.unsqueeze(2)).squeeze(2)  # (B, K, D) @ (B, D, 1) -> (B, K)
        keep = (negatives != targets.unsqueeze(1)).to(neg.dtype)  # (B, K)
        return -F.logsigmoid(pos) - (F.logsigmoid(-neg) * keep).sum(-1)

    def word_vectors(self, words: Sequence[str]) -> WordVectors:
        """The trained ``in`` vectors as a :class:`WordVectors` (padding row dropped)."""
        return WordVectors(words, self.in_embed.weight.detach()[: self.vocab_size].numpy().copy())


class SkipGram(Word2Vec):
    """Skip-gram: predict each context word from the centre word; ``h = v_centre``."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__(vocab_size, dim)
        self.in_embed = nn.Embedding(vocab_size, dim, sparse=True)
        self._init_in(self.in_embed.weight)

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.in_embed(inputs)  # (B,) -> (B, D)


class CBOW(Word2Vec):
    """CBOW: predict the centre word from the mean of its context vectors.

    ``EmbeddingBag(mode="mean")`` computes the mean of each row's looked-up vectors in one kernel
    without materialising ``(B, C, D)``; row ``V`` is a padding slot that is excluded from the mean
    and never receives a gradient, so windows of different sizes share one ``(B, C)`` tensor.
    """

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__(vocab_size, dim)
        self.in_embed = nn.EmbeddingBag(vocab_size + 1, dim, mode="mean", sparse=True, padding_idx=vocab_size)
        self._init_in(self.in_embed.weight)

    @property
    def pad_id(self) -> int:
        return self.vocab_size

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.in_embed(inputs)  # (B, C) -> (B, D), mean over non-padding slots


def build_model(arch: str, vocab_size: int, dim: int) -> Word2Vec:
    """Instantiate the architecture named ``arch`` (``"skipgram"`` or ``"cbow"``)."""
    if arch == "skipgram":
        return SkipGram(vocab_size, dim)
    if arch == "cbow":
        return CBOW(vocab_size, dim)
    raise ValueError(f"arch must be 'skipgram' or 'cbow', got {arch!r}")


@dataclass
class TrainLog:
    """What happened during training.

    Attributes:
        losses: ``(step, mean loss per example)`` about every 1% of training.
        train_words: in-vocabulary words processed (before subsampling), summed over epochs.
        examples: training examples (pairs or centre words) processed.
        seconds: wall time of the training loop (example building included).
    """

    losses: list[tuple[int, float]] = field(default_factory=list)
    train_words: int = 0
    examples: int = 0
    seconds: float = 0.0

    @property
    def words_per_second(self) -> float:
        return self.train_words / self.seconds if self.seconds > 0 else float("nan")


def _make_optimizer(model: Word2Vec, cfg: Word2VecConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    return torch.optim.SparseAdam(list(model.parameters()), lr=cfg.lr)


def train_word2vec(
    tokens: Sequence[str] | Sequence[Sequence[str]],
    cfg: Word2VecConfig | None = None,
    log: TrainLog | None = None,
) -> WordVectors:
    """Train CBOW or Skip-gram word vectors with negative sampling.

    Args:
        tokens: a list of words (one long sentence) or a list of sentences (lists of words);
            context windows never cross sentences. See ``simple_word_tokenize``.
        cfg: hyper-parameters; defaults to ``Word2VecConfig()``.
        log: if given, filled with losses, counts and timing.

    Returns:
        The trained input vectors of every word seen at least ``cfg.min_count`` times.

    Raises:
        ValueError: if no word reaches ``min_count`` or the text yields no training example.
    """
    cfg = cfg or Word2VecConfig()
    log = log if log is not None else TrainLog()
    with torch_threads(cfg.num_threads) if cfg.num_threads else nullcontext():
        return _train(tokens, cfg, log)


def _train(tokens: Sequence[str] | Sequence[Sequence[str]], cfg: Word2VecConfig, log: TrainLog) -> WordVectors:
    sentences = as_sentences(tokens)
    vocab = Vocabulary.build(sentences, cfg.min_count)
    ids_np, sent_np = vocab.encode_sentences(sentences)
    ids, sent = torch.from_numpy(ids_np), torch.from_numpy(sent_np)

    gen = torch.Generator().manual_seed(cfg.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(cfg.seed)  # parameter init draws from the global generator
    try:
        model = build_model(cfg.arch, len(vocab), cfg.dim)
    finally:
        torch.random.set_rng_state(torch_state)
    opt = _make_optimizer(model, cfg)
    keep_p = torch.from_numpy(keep_probabilities(vocab.counts, cfg.sample)).float()  # (V,)
    noise = torch.from_numpy(noise_distribution(vocab.counts, cfg.ns_exponent)).float()  # (V,)

    start = time.perf_counter()
    step = 0
    expected_steps = None
    def examples(kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of the kept tokens of the stream, windows drawn from ``gen``."""
        e_ids, e_sent = ids[kept], sent[kept]
        windows = sample_window_sizes(len(e_ids), cfg.window, gen)
        if cfg.arch == "skipgram":
            return skipgram_pairs(e_ids, e_sent, windows)
        targets, inputs = cbow_examples(e_ids, e_sent, windows, pad=model.pad_id)  # type: ignore[attr-defined]
        return inputs, targets

    for epoch in range(cfg.epochs):
        kept = torch.rand(len(ids), generator=gen) < keep_p[ids]  # subsample this epoch's stream
        inputs, targets = examples(kept)
        if len(targets) == 0 and not kept.all():  # a text so small that subsampling left no pair
            inputs, targets = examples(torch.ones_like(kept))
        n = len(targets)
        if n == 0:
            raise CorpusTooSmallError("word2vec: the text yields no training example (every "
                                      "sentence has one word?): add documents")
        if expected_steps is None:  # the count varies a little per epoch; the first one sets the schedule
            expected_steps = cfg.epochs * math.ceil(n / cfg.batch_size)
            log_every = max(1, expected_steps // 100)
        order = torch.randperm(n, generator=gen)
        running, running_n = 0.0, 0
        for lo in range(0, n, cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size]
            x, y = inputs[idx], targets[idx]
            neg = torch.multinomial(noise, len(idx) * cfg.negatives, replacement=True, generator=gen)
            neg = neg.view(len(idx), cfg.negatives)  # (B, K)
            frac = min(step / expected_steps, 1.0)
            lr = cfg.lr * max(cfg.min_lr_frac, 1.0 - frac)
            for group in opt.param_groups:
                group["lr"] = lr
            losses = model(x, y, neg)  # (B,)
            loss = losses.sum() if cfg.optimizer == "sgd" else losses.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(losses.detach().sum())
            running_n += len(idx)
            step += 1
            if step % log_every == 0:
                log.losses.append((step, running / running_n))
                running, running_n = 0.0, 0
        log.examples += n
        log.train_words += len(ids)
    log.seconds += time.perf_counter() - start
    return model.word_vectors(vocab.words)
