"""A cross-encoder trained here that reranks a first stage's top k (Nogueira & Cho 2019,
arXiv:1901.04085, with a mini-former instead of BERT).

The query and one candidate document are read *together*::

    [CLS] q_1 .. q_m [SEP] d_1 .. d_n       (m <= max_query_terms, n <= max_doc_terms)

through a bidirectional mini-former (:mod:`~.encoder`), and the ``[CLS]`` position's final hidden
state goes through a linear scoring head: one relevance score per (query, document) pair. Every
query token attends to every document token in every layer, which is why a cross-encoder ranks
better than a bi-encoder -- and why it is slow: nothing about a document can be computed before
the query arrives, so reranking k documents costs k full forward passes per query.

Each token also gets one embedding of a *feature* id added to its token embedding (the segment,
BERT's token types, and an exact-match flag, as DrQA's and DUET's local model's): ``1`` a query
token, ``2`` a query token that occurs in the document, ``3`` a document token, ``4`` a document
token that occurs in the query (``0`` the specials and padding). With ``exact_match=False`` only
the segment is kept (ids 1 and 3). The flag hands a small model, trained from scratch on ~900
claims, the lexical-match signal a pretrained BERT learns from its attention.

:func:`rerank` reorders each query's candidates by the cross-encoder's scores (ties: the first
stage's order); the candidates themselves do not change, so recall at the first stage's depth
stays what it was.

Hand-worked example of :func:`pair_features`: query ids ``[7, 8]`` and document ids ``[8, 9]``
give the ids ``[CLS, 7, 8, SEP, 8, 9]`` and features ``[0, 1, 2, 0, 4, 3]``.

Left out: pretraining (a BERT-sized model pretrained on text), knowledge distillation from a
larger teacher, pointwise / pairwise losses (the listwise one of :mod:`~.encoder` is used).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.retrieval.encoder import (CLS, SEP, UNK, EncoderConfig, build_body,
                                             hidden_states, pad_batch)

__all__ = ["CrossEncoder", "N_FEATURES", "pair_features", "rerank", "score_pairs"]

#: feature ids: none, query token, query token in the doc, doc token, doc token in the query
N_FEATURES = 5


def pair_features(query: Sequence[int], doc: Sequence[int], exact_match: bool = True
                  ) -> tuple[list[int], list[int]]:
    """``(ids, features)`` of one pair: ``[CLS] query [SEP] doc`` and a feature id per token."""
    q_set, d_set = set(query) - {UNK}, set(doc) - {UNK}
    em = 1 if exact_match else 0
    ids = [CLS, *query, SEP, *doc]
    feats = [0, *(1 + em * (t in d_set) for t in query), 0, *(3 + em * (t in q_set) for t in doc)]
    return ids, feats


class CrossEncoder(nn.Module):
    """Pair -> relevance score: bidirectional body, feature embedding, ``[CLS]`` -> linear head.

    Args:
        cfg: the body's size and the sequence limits.
        vocab_size: the tokenizer's size (specials included).
        exact_match: add the exact-match flag to the segment feature.
    """

    def __init__(self, cfg: EncoderConfig, vocab_size: int, exact_match: bool = True) -> None:
        super().__init__()
        self.exact_match = exact_match
        self.body = build_body(cfg, vocab_size, cfg.max_query_terms + cfg.max_doc_terms + 2)
        self.features = nn.Embedding(N_FEATURES, cfg.d_model, padding_idx=0)
        nn.init.normal_(self.features.weight[1:], std=0.02)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, ids: Tensor, mask: Tensor, feats: Tensor) -> Tensor:
        """Scores ``(B,)`` of ``(B, T)`` pair ids, padding mask and feature ids."""
        h = hidden_states(self.body, ids, mask, self.features(feats))       # (B, T, C)
        return self.head(h[:, 0]).squeeze(-1)                              # (B,)

    def score(self, queries: Sequence[Sequence[int]], docs: Sequence[Sequence[int]]) -> Tensor:
        """Scores ``(B,)`` of the pairs ``(queries[i], docs[i])`` (token ids), in one batch."""
        pairs = [pair_features(q, d, self.exact_match) for q, d in zip(queries, docs)]
        ids, mask = pad_batch([p[0] for p in pairs])                        # (B, T)
        feats, _ = pad_batch([p[1] for p in pairs])                         # (B, T)
        return self(ids, mask, feats)


def score_pairs(model: CrossEncoder, query: Sequence[int], docs: Sequence[Sequence[int]],
                batch_size: int = 64) -> np.ndarray:
    """``(len(docs),)`` float32 scores of one query against each of ``docs``, no gradients."""
    out = []
    with torch.no_grad():
        for s in range(0, len(docs), batch_size):
            chunk = docs[s:s + batch_size]
            out.append(model.score([query] * len(chunk), chunk).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def rerank(candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``candidates`` ``(n, k)`` sorted by ``scores`` ``(n, k)``, highest first; ties
    keep the first stage's order (a stable sort).

    Returns:
        ``(indices, scores)``, both ``(n, k)``.
    """
    order = np.argsort(-scores, axis=1, kind="stable")                     # (n, k)
    return np.take_along_axis(candidates, order, 1), np.take_along_axis(scores, order, 1)
