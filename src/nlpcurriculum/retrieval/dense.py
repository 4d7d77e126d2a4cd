"""A DPR-style bi-encoder trained here, FAISS as its vector store, and rank fusion with BM25.

**Encoder** (:class:`BiEncoder`): the analyser's terms (:mod:`~nlpcurriculum.retrieval.text`) ->
ids of a vocabulary built on the corpus -> an idf-weighted mean of learned term embeddings
(``EmbeddingBag``) -> a tower-specific linear map (query tower, passage tower: DPR's two encoders,
here sharing the term embeddings) -> L2 normalisation. Relevance is the cosine, i.e. the inner
product of unit vectors. A bag of words, not a transformer: on two CPU cores it trains in
seconds, and the training objective -- not the architecture -- is what DPR contributes.

**Training** (:func:`train_biencoder`; Karpukhin et al. 2020): batches of (query, positive
passage) pairs; each query's candidates are every positive of the batch (in-batch negatives) plus
one hard negative per query (a top BM25 passage that is not relevant), and the loss is the
cross-entropy of the positive among them, on similarities divided by ``temperature``. Pairs come
from the corpus itself (a title as the query of its abstract) and from the training qrels
(claim -> relevant abstract); the evaluation queries are never seen.

**Vector store** (:func:`build_faiss`): ``IndexFlatIP`` (exact), ``IndexIVFFlat`` (k-means cells,
``nprobe`` searched) and ``IndexHNSWFlat`` (graph, ``efSearch``), all over unit vectors with the
inner product metric, so scores are cosines; ``faiss.write_index`` / ``read_index`` persist them.

**Fusion**: :func:`rrf` (reciprocal rank fusion, Cormack et al. 2009: ``sum 1 / (k + rank)``) and
:func:`weighted_fusion` (min-max normalised scores, ``alpha * sparse + (1 - alpha) * dense``).

Hand-worked RRF example (the tests check it): rankings ``[a, b]`` and ``[b, c]`` with k = 60 give
``b: 1/62 + 1/61 = 0.03252``, ``a: 1/61 = 0.01639``, ``c: 1/62 = 0.01613``: order b, a, c.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["BiEncoder", "DenseConfig", "Vocabulary", "build_faiss", "encode", "rrf",
           "train_biencoder", "weighted_fusion"]


@dataclass
class DenseConfig:
    """The bi-encoder and its training.

    Attributes:
        dim: embedding size.
        min_count: a term enters the vocabulary when it occurs in this many documents.
        epochs: passes over the training pairs.
        batch_size: pairs per batch (each query sees ``2 * batch_size - 1`` negatives).
        lr: AdamW learning rate.
        temperature: the softmax temperature of the contrastive loss.
        hard_negatives: use one BM25 hard negative per query.
    """

    dim: int = 128
    min_count: int = 2
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.003
    temperature: float = 0.05
    hard_negatives: bool = True


class Vocabulary:
    """Term -> id over the corpus' terms seen in ``min_count`` documents; id 0 pads; with idf."""

    def __init__(self, corpus: Sequence[Sequence[str]], min_count: int = 2) -> None:
        df = Counter(t for doc in corpus for t in set(doc))
        terms = sorted(t for t, c in df.items() if c >= min_count)
        self.ids = {t: i + 1 for i, t in enumerate(terms)}
        n = len(corpus)
        self.idf = np.zeros(len(terms) + 1, dtype=np.float32)
        for t, i in self.ids.items():
            self.idf[i] = np.log1p((n - df[t] + 0.5) / (df[t] + 0.5))

    def __len__(self) -> int:
        return len(self.ids) + 1

    def bags(self, texts: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ids, offsets, weights)`` for ``EmbeddingBag``: known terms, idf weights (a text with
        no known term gets the padding id, weight 0)."""
        ids, offsets = [], []
        for doc in texts:
            offsets.append(len(ids))
            known = [self.ids[t] for t in doc if t in self.ids]
            ids.extend(known or [0])
        ids_t = torch.tensor(ids, dtype=torch.long)
        return ids_t, torch.tensor(offsets, dtype=torch.long), torch.from_numpy(self.idf[ids_t.numpy()])


class BiEncoder(nn.Module):
    """Shared term embeddings, one linear map per tower, unit-length outputs."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="sum", padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.1)
        self.query_head = nn.Linear(dim, dim)
        self.passage_head = nn.Linear(dim, dim)

    def forward(self, bags: tuple[torch.Tensor, torch.Tensor, torch.Tensor], tower: str) -> torch.Tensor:
        ids, offsets, weights = bags
        pooled = self.embed(ids, offsets, per_sample_weights=weights)            # (n, dim)
        norm = torch.zeros(len(offsets)).index_add_(
            0, torch.repeat_interleave(torch.arange(len(offsets)), torch.diff(
                torch.cat([offsets, torch.tensor([len(ids)])]))), weights).clamp_min(1e-6)
        pooled = pooled / norm[:, None]                                           # idf-weighted mean
        head = self.query_head if tower == "query" else self.passage_head
        return nn.functional.normalize(head(pooled), dim=-1)


def encode(model: BiEncoder, vocab: Vocabulary, texts: Sequence[Sequence[str]], tower: str,
           batch_size: int = 1024) -> np.ndarray:
    """``(n, dim)`` float32 unit vectors of ``texts`` (terms) through ``tower``."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            out.append(model(vocab.bags(texts[s:s + batch_size]), tower).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.query_head.in_features), np.float32)


def train_biencoder(pairs: Sequence[tuple[Sequence[str], int]], passages: Sequence[Sequence[str]],
                    vocab: Vocabulary, cfg: DenseConfig, seed: int,
                    hard: Sequence[int] | None = None) -> tuple[BiEncoder, list[float]]:
    """Train on ``(query terms, index of its positive passage)`` pairs.

    Args:
        pairs: the training pairs.
        passages: every passage's terms (indexed by the pairs and ``hard``).
        vocab: the term vocabulary.
        cfg: sizes and optimiser.
        seed: initialisation and batch order.
        hard: per pair, the index of a hard-negative passage (or None: in-batch only).

    Returns:
        ``(model, loss per epoch)``.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BiEncoder(len(vocab), cfg.dim)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    losses = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(pairs), generator=gen).tolist()
        total, count = 0.0, 0
        model.train()
        for s in range(0, len(order), cfg.batch_size):
            batch = order[s:s + cfg.batch_size]
            if len(batch) < 2:
                continue
            q = model(vocab.bags([pairs[i][0] for i in batch]), "query")           # (B, dim)
            docs = [pairs[i][1] for i in batch]
            if cfg.hard_negatives and hard is not None:
                docs = docs + [hard[i] for i in batch]
            p = model(vocab.bags([passages[d] for d in docs]), "passage")        # (B or 2B, dim)
            logits = q @ p.T / cfg.temperature                                    # (B, B or 2B)
            # a passage that is this query's positive elsewhere in the batch is not its negative
            docs_t = torch.tensor(docs)
            same = docs_t[None, :] == docs_t[:len(batch), None]                   # (B, B or 2B)
            target = torch.arange(len(batch))
            same[target, target] = False
            logits = logits.masked_fill(same, float("-inf"))
            loss = nn.functional.cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        losses.append(total / max(count, 1))
    return model.eval(), losses


def build_faiss(vectors: np.ndarray, kind: str, nlist: int = 64, nprobe: int = 8,
                hnsw_m: int = 32, ef_search: int = 64, seed: int = 0):
    """A FAISS inner-product index over unit ``vectors`` ``(n, dim)``: ``flat``, ``ivf`` or ``hnsw``."""
    import faiss

    n, dim = vectors.shape
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, min(nlist, n), faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(x)
        index.nprobe = nprobe
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown FAISS index {kind!r}: use flat, ivf or hnsw")
    index.add(x)
    return index


def rrf(rankings: Sequence[np.ndarray], k: int = 60, top: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of several ``(n, m)`` rankings (document indices, best first).

    Returns:
        ``(indices, scores)`` ``(n, <= top)``, best first; ties by lower document index.
    """
    n = rankings[0].shape[0]
    idx_out, val_out = [], []
    for i in range(n):
        fused: dict[int, float] = {}
        for r in rankings:
            for rank, d in enumerate(r[i].tolist()):
                fused[d] = fused.get(d, 0.0) + 1.0 / (k + rank + 1)
        order = sorted(fused, key=lambda d: (-fused[d], d))[:top]
        idx_out.append(order)
        val_out.append([fused[d] for d in order])
    width = min(len(o) for o in idx_out) if idx_out else 0
    return (np.array([o[:width] for o in idx_out], dtype=np.int64),
            np.array([v[:width] for v in val_out]))


def weighted_fusion(sparse: np.ndarray, dense: np.ndarray, alpha: float,
                    top: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """``alpha * minmax(sparse) + (1 - alpha) * minmax(dense)`` over full ``(n, D)`` score
    matrices, min-max per query; the top ``top`` documents, best first."""
    def minmax(s: np.ndarray) -> np.ndarray:
        lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
        return (s - lo) / np.where(hi > lo, hi - lo, 1.0)

    from nlpcurriculum.retrieval.bm25 import topk

    return topk(alpha * minmax(sparse) + (1 - alpha) * minmax(dense), top)
