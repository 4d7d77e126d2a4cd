"""ColBERT-style late interaction trained here (Khattab & Zaharia 2020, arXiv:2004.12832).

Query and document are encoded *apart*, each into one vector per token: ``[Q] q_1 .. q_m`` and
``[D] d_1 .. d_n`` through the same bidirectional mini-former (:mod:`~.encoder`), a linear map to
``dim`` (no bias) and L2 normalisation. Relevance is the sum over query tokens of their best
cosine with any document token, MaxSim::

    S(q, d) = sum_{i=1..m} max_{j=1..n} <E_q[i], E_d[j]>

Because a document's token vectors do not depend on the query, they are computed once for the
whole corpus (:class:`TokenIndex`, the "index") and a query costs one short forward pass plus a
``(m, dim) x (dim, n)`` product per candidate -- the reason late interaction is far cheaper than a
cross-encoder at the same k. The price is that tokens of query and document never attend to
each other (no exact-match flag is possible either: the document does not know the query).

Hand-worked MaxSim example (:func:`maxsim_reference`, tested): query vectors ``[1, 0]`` and
``[0, 1]``, document vectors ``[1, 0]``, ``[0.6, 0.8]``: the first query token's best is 1 (the
first document token), the second's 0.8, so ``S = 1.8``.

:func:`maxsim` is the batched version (padding masked), checked against :func:`maxsim_reference`,
two Python loops.

Left out: query augmentation with ``[MASK]`` tokens, punctuation filtering, end-to-end retrieval
with FAISS over all token vectors (here ColBERT reranks the first stage's candidates, the paper's
re-ranking mode), residual compression of the index (ColBERTv2).

Dimension legend: B queries, K candidates, Lq / Ld query / document tokens, E = ``dim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from nlpcurriculum.retrieval.encoder import (DOC, QRY, EncoderConfig, build_body, hidden_states,
                                             pad_batch)

__all__ = ["ColBERT", "TokenIndex", "build_index", "maxsim", "maxsim_reference"]


def maxsim(q: Tensor, q_mask: Tensor, d: Tensor, d_mask: Tensor) -> Tensor:
    """Late-interaction scores of each query with each of its candidates.

    Args:
        q: ``(B, Lq, E)`` query token vectors; ``q_mask`` ``(B, Lq)`` True on real tokens.
        d: ``(B, K, Ld, E)`` candidate token vectors; ``d_mask`` ``(B, K, Ld)``; every candidate
            has at least one real token.

    Returns:
        ``(B, K)``: ``sum_i max_j <q[b, i], d[b, k, j]>`` over real tokens only.
    """
    sim = torch.einsum("bie,bkje->bkij", q, d)                              # (B, K, Lq, Ld)
    sim = sim.masked_fill(~d_mask[:, :, None, :], float("-inf"))
    best = sim.max(dim=-1).values                                           # (B, K, Lq)
    return (best * q_mask[:, None, :]).sum(-1)                              # (B, K)


def maxsim_reference(q: Sequence[Sequence[float]], d: Sequence[Sequence[float]]) -> float:
    """MaxSim of one query and one document by two loops over their token vectors (lists)."""
    total = 0.0
    for qi in q:
        best = -float("inf")
        for dj in d:
            best = max(best, sum(a * b for a, b in zip(qi, dj)))
        total += best
    return total


class ColBERT(nn.Module):
    """Token encoder: bidirectional body -> linear ``C -> dim`` -> unit vectors, padding zeroed.

    Args:
        cfg: the body's size and the sequence limits.
        vocab_size: the tokenizer's size (specials included).
        dim: E, the token vectors' size.
    """

    def __init__(self, cfg: EncoderConfig, vocab_size: int, dim: int = 32) -> None:
        super().__init__()
        self.body = build_body(cfg, vocab_size, max(cfg.max_query_terms, cfg.max_doc_terms) + 1)
        self.proj = nn.Linear(cfg.d_model, dim, bias=False)

    def encode(self, seqs: Sequence[Sequence[int]], marker: int) -> tuple[Tensor, Tensor]:
        """``(vectors (B, L, E), mask (B, L))`` of token-id sequences, each led by ``marker``
        (``QRY`` for queries, ``DOC`` for documents)."""
        ids, mask = pad_batch([[marker, *s] for s in seqs])                 # (B, L)
        h = hidden_states(self.body, ids, mask)                             # (B, L, C)
        v = nn.functional.normalize(self.proj(h), dim=-1)                   # (B, L, E)
        return v * mask[..., None], mask

    def score(self, queries: Sequence[Sequence[int]], docs: Sequence[Sequence[Sequence[int]]]) -> Tensor:
        """``(B, K)`` MaxSim of each query with its ``K`` documents, all encoded now (training)."""
        qv, qm = self.encode(queries, QRY)                                  # (B, Lq, E)
        B, K = len(docs), len(docs[0])
        dv, dm = self.encode([d for row in docs for d in row], DOC)         # (B*K, Ld, E)
        return maxsim(qv, qm, dv.view(B, K, *dv.shape[1:]), dm.view(B, K, -1))


@dataclass
class TokenIndex:
    """Every document's token vectors, computed once.

    Attributes:
        vectors: ``(N, Ld, E)`` float32, zero on padding.
        mask: ``(N, Ld)`` bool, True on real tokens.
    """

    vectors: Tensor
    mask: Tensor

    def search(self, model: ColBERT, query: Sequence[int], candidates: Sequence[int]) -> np.ndarray:
        """MaxSim ``(K,)`` of one query (token ids) with the indexed ``candidates`` (rows)."""
        with torch.no_grad():
            qv, qm = model.encode([query], QRY)                             # (1, Lq, E)
            rows = torch.as_tensor(np.asarray(candidates), dtype=torch.long)
            return maxsim(qv, qm, self.vectors[rows][None], self.mask[rows][None])[0].numpy()


def build_index(model: ColBERT, docs: Sequence[Sequence[int]], batch_size: int = 128) -> TokenIndex:
    """The :class:`TokenIndex` of ``docs`` (token ids), encoded ``batch_size`` at a time."""
    L = max(len(d) for d in docs) + 1                                       # + the [D] marker
    vecs, masks = [], []
    with torch.no_grad():
        for s in range(0, len(docs), batch_size):
            v, m = model.encode(docs[s:s + batch_size], DOC)                # (b, l, E)
            pad = L - v.shape[1]
            vecs.append(nn.functional.pad(v, (0, 0, 0, pad)))
            masks.append(nn.functional.pad(m, (0, pad)))
    return TokenIndex(torch.cat(vecs), torch.cat(masks))
