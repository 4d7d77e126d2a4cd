"""What the reranking models share: term ids with special tokens, a bidirectional mini-former
body, and the listwise training loop over hard-negative groups.

**Tokens** (:class:`TermTokenizer`): the bm25s analyser's terms (:mod:`~.text`: lowercase,
stop words out, Snowball stems) -> ids of a vocabulary built on the corpus (terms seen in
``min_count`` documents), with six special ids in front: ``PAD`` 0, ``UNK`` 1, ``CLS`` 2,
``SEP`` 3, ``QRY`` 4 (ColBERT's ``[Q]`` marker), ``DOC`` 5 (``[D]``). A word-level vocabulary of
stems keeps the sequences short (an abstract is ~130 terms), which is what lets a transformer
train on two CPU cores; a subword tokenizer is left out.

**Body** (:func:`build_body`, :func:`hidden_states`): a :class:`~nlpcurriculum.models.miniformer.MiniFormer`
built with ``causal=False`` (every token sees every token, BERT-style) and learned positions;
:func:`hidden_states` runs it up to the final norm (its output head is unused) and lets a caller
add token-level input features (a segment / exact-match embedding) to the token embeddings.

**Training** (:func:`train_listwise`): each training query brings one relevant document and a
pool of hard negatives (top documents of BM25 and of the bi-encoder that are not relevant); every
epoch draws ``group_size - 1`` negatives from the pool, and the loss is the cross-entropy of the
positive among its group's scores (a listwise softmax loss, as the localized contrastive
estimation of Gao et al. 2021, arXiv:2101.08751). The model decides how a group is scored (a
cross-encoder reads each pair, ColBERT encodes query and documents apart), so both rerankers see
the same groups, steps and optimiser: the same data and budget.

Dimension legend: B queries (groups) in a batch, G documents per group, T tokens, C = d_model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.models.miniformer import MiniFormer, MiniFormerConfig, build_model

__all__ = ["EncoderConfig", "Group", "SPECIALS", "TermTokenizer", "build_body", "hidden_states",
           "pad_batch", "train_listwise"]

#: the special ids, in id order
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[Q]", "[D]")
PAD, UNK, CLS, SEP, QRY, DOC = range(len(SPECIALS))


class TermTokenizer:
    """Analyser terms -> ids: the specials (:data:`SPECIALS`), then the corpus' terms seen in at
    least ``min_count`` documents, in sorted order; other terms become ``UNK``.

    Example: corpus ``[["cell", "grow"], ["cell"]]``, ``min_count=2`` -> ``cell`` is id 6, and
    ``ids(["cell", "grow"], 5) == [6, 1]`` (``grow`` is in one document only).
    """

    def __init__(self, corpus: Sequence[Sequence[str]], min_count: int = 2) -> None:
        df = Counter(t for doc in corpus for t in set(doc))
        terms = sorted(t for t, c in df.items() if c >= min_count)
        self.ids_of = {t: i + len(SPECIALS) for i, t in enumerate(terms)}

    def __len__(self) -> int:
        return len(self.ids_of) + len(SPECIALS)

    def ids(self, terms: Sequence[str], max_len: int) -> list[int]:
        """The first ``max_len`` terms' ids (unknown terms -> ``UNK``)."""
        return [self.ids_of.get(t, UNK) for t in terms[:max_len]]


@dataclass
class EncoderConfig:
    """A reranker's body and its training (both rerankers get the same values).

    Attributes:
        d_model: width C.
        n_layers: bidirectional blocks.
        n_heads: attention heads.
        d_ff: MLP hidden size.
        max_query_terms: query terms kept (the first ones).
        max_doc_terms: document terms kept (title first, then the abstract's first terms).
        min_count: a term gets its own id when it occurs in this many documents.
        epochs: passes over the training queries.
        batch_size: groups (queries) per step.
        group_size: documents per group: the positive and ``group_size - 1`` hard negatives.
        negative_pool: hard negatives per query to draw from (top non-relevant documents of each
            first stage, interleaved).
        lr: AdamW learning rate (linear warm-up over the first 10% of steps, then linear decay).
        weight_decay: AdamW weight decay.
        dropout: dropout in the body.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    max_query_terms: int = 16
    max_doc_terms: int = 64
    min_count: int = 2
    epochs: int = 2
    batch_size: int = 16
    group_size: int = 4
    negative_pool: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (a positive and a negative), got {self.group_size}")
        if self.max_query_terms < 1 or self.max_doc_terms < 1:
            raise ValueError("max_query_terms and max_doc_terms must be >= 1")


def build_body(cfg: EncoderConfig, vocab_size: int, max_seq_len: int) -> MiniFormer:
    """A bidirectional mini-former (learned positions, LayerNorm, GELU) of ``cfg``'s size."""
    return build_model(MiniFormerConfig(
        vocab_size=vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
        d_ff=cfg.d_ff, max_seq_len=max_seq_len, position="learned", causal=False,
        dropout=cfg.dropout))


def hidden_states(body: MiniFormer, idx: Tensor, padding_mask: Tensor,
                  extra: Tensor | None = None) -> Tensor:
    """The body's final-norm hidden states of ``idx`` ``(B, T)``: ``(B, T, C)``.

    :meth:`MiniFormer.forward` up to its final norm (no output head), with ``extra`` ``(B, T, C)``
    added to the token embeddings when given (input features) and ``padding_mask`` ``(B, T)``
    (True for real tokens) keeping every token's attention off the padding.
    """
    B, T = idx.shape
    positions = torch.arange(T)                                             # (T,)
    body.position.ensure_length(T)
    x = body.tok_emb(idx)                                                   # (B, T, C)
    if extra is not None:
        x = x + extra
    x = body.drop(body.position.embed(x, positions))
    for i, block in enumerate(body.blocks):
        x, _ = block(x, position=body.position, positions=positions, padding_mask=padding_mask,
                     layer_idx=i)
    return body.norm_f(x)                                                   # (B, T, C)


def pad_batch(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """``(ids, mask)``, both ``(B, T_max)``: the sequences right-padded with ``PAD``; mask True
    on real tokens."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, ids != PAD


@dataclass(frozen=True)
class Group:
    """One training query: its index, its relevant document and its hard-negative pool."""

    query: int
    positive: int
    negatives: tuple[int, ...]


def train_listwise(model: nn.Module, score_groups: Callable[[nn.Module, list[int], Tensor], Tensor],
                   groups: Sequence[Group], cfg: EncoderConfig, seed: int) -> list[float]:
    """Train ``model`` in place with the listwise loss over groups (module docstring).

    Args:
        model: the reranker (its parameters are optimised).
        score_groups: ``(model, query indices (B,), document indices (B, G)) -> scores (B, G)``;
            column 0 holds each group's positive.
        groups: the training queries (a group whose pool is empty is skipped).
        cfg: steps, batch, group size, optimiser.
        seed: the batch order and the negatives drawn.

    Returns:
        the mean loss of each epoch.
    """
    groups = [g for g in groups if g.negatives]
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * -(-len(groups) // cfg.batch_size)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    losses = []
    for _ in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(groups))
        total, count = 0.0, 0
        for s in range(0, len(order), cfg.batch_size):
            batch = [groups[i] for i in order[s:s + cfg.batch_size]]
            docs = []
            for g in batch:
                pool = np.asarray(g.negatives)
                take = rng.choice(len(pool), size=cfg.group_size - 1, replace=len(pool) < cfg.group_size - 1)
                docs.append([g.positive, *pool[take].tolist()])
            logits = score_groups(model, [g.query for g in batch], torch.tensor(docs))   # (B, G)
            loss = nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        losses.append(total / max(count, 1))
    model.eval()
    return losses
