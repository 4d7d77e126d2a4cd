"""The curriculum experiments of section "Cross-Encoder Reranking" (items 1-3), BEIR SciFact.

Two stages of retrieval on a BEIR-format folder (default the shipped SciFact copy: 5,183
abstracts, 300 test claims, 809 train claims). The **first stage** is the DPR-style bi-encoder of
:mod:`nlpcurriculum.retrieval.dense` (trained here per seed on title -> abstract pairs and the
train claims, BM25 hard negatives; FAISS flat search) returning its top ``first_stage_k``
abstracts; our Lucene BM25 (:mod:`nlpcurriculum.retrieval.bm25`) is the sparse baseline. The
**rerankers** reorder those candidates; both are mini-formers (2 bidirectional layers, width 64)
trained here from scratch per seed on the *train* claims, each claim's relevant abstract against
hard negatives drawn from BM25's and the bi-encoder's top non-relevant abstracts, with the same
groups, steps and optimiser (:func:`~nlpcurriculum.retrieval.encoder.train_listwise`). Everything
is measured on the *test* claims, never trained or tuned on.

* ``cross-encoder-reranking/1`` (:func:`rerank_item`): the cross-encoder
  (:mod:`nlpcurriculum.retrieval.rerank`: ``[CLS] query [SEP] abstract``, segment + exact-match
  features, ``[CLS]`` -> score) reranking the bi-encoder's top k. nDCG@10, recall@10, MRR@10 with
  bootstrap intervals over queries for BM25, the first stage, the reranked list and an untrained
  cross-encoder (seed 0, a control). Findings, paired per query with the trained arms averaged
  over seeds: reranked beats the first stage by ``min_rerank_over_first`` (a reranker that learned
  nothing reorders the candidates at random and loses to it), and beats BM25. Invariant:
  reranking only permutes the candidates, so recall@k at the first stage's depth is unchanged.
* ``cross-encoder-reranking/2`` (:func:`pr_latency_item`): precision-recall curves
  (:mod:`nlpcurriculum.retrieval.pr_curves`, trec_eval's conventions, ``pytrec_eval`` parity in
  the tests) over rank cutoffs 1..k and the 11-point interpolated curve, for every arm; and the
  latency per query, one query at a time as a search service sees them, of the first stage alone
  and with the cross-encoder reranking its top ``k`` for each ``k`` of ``rerank_ks``
  (interleaved rounds). Findings: reranking raises the average precision over the top k (the
  area under the curve; a reranker worse than the first stage fails it), and the overhead grows
  with k (time at the largest k over time at the smallest, median over rounds: a reranker that
  scored a fixed number of pairs whatever k would fail it).
* ``cross-encoder-reranking/3`` (:func:`colbert_item`): ColBERT-style late interaction
  (:mod:`nlpcurriculum.retrieval.late_interaction`, MaxSim over token vectors) trained on the same
  groups and budget, the corpus' token vectors precomputed once (the index), reranking the same
  candidates. Findings: ColBERT beats the first stage; the cross-encoder beats ColBERT (full
  attention between query and document against late interaction, the ordering the ColBERT paper
  reports for BERT-base); ColBERT reranking is faster than the cross-encoder at the same k by
  ``min_colbert_speedup`` (median over interleaved rounds). Invariants: the batched MaxSim equals
  the two-loop reference, and scores from the precomputed index equal scores of freshly encoded
  documents.

Timings (training seconds, index build, ms per query of each arm) go to ``ItemResult.timings``;
the timing findings are marked ``timed``.

Left out: rerankers pretrained on text (none is available offline here), distillation, a
first stage other than the bi-encoder (BM25 is reported, not reranked), end-to-end ColBERT
retrieval over all token vectors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.retrieval.beir import BeirData
from nlpcurriculum.retrieval.bm25 import BM25Index, BM25Params
from nlpcurriculum.retrieval.dense import DenseConfig
from nlpcurriculum.retrieval.encoder import EncoderConfig
from nlpcurriculum.retrieval.evaluate import (bootstrap_ci, evaluate, metric_key, paired_bootstrap,
                                              run_from_topk)

__all__ = ["ITEMS", "Inputs", "RerankChecks", "RerankConfig", "colbert_item", "pr_latency_item",
           "rerank_item", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("cross-encoder-reranking/1", "cross-encoder-reranking/2",
                          "cross-encoder-reranking/3")

#: the ranking arms, in table order (``first`` = the bi-encoder's top k, the control)
ARMS = ("bm25", "first", "cross", "colbert")


@dataclass
class RerankChecks:
    """Bounds of the findings (params ``rerank.checks``).

    Attributes:
        min_rerank_over_first: item 1: per-query nDCG@10 of the reranked list minus the first
            stage (both averaged over seeds), beyond two standard errors.
        min_rerank_over_bm25: item 1: the same against BM25.
        max_recall_change: item 1: |recall@k reranked - first stage| at the first stage's depth.
        min_ap_gain: item 2: per-query AP@k reranked minus first stage, beyond two SE.
        min_cost_growth: item 2: time(first stage + reranking the largest k) / time(... the
            smallest k), median over rounds, beyond two robust SE.
        min_colbert_over_first: item 3: per-query nDCG@10 of ColBERT reranking minus the first stage.
        min_cross_over_colbert: item 3: per-query nDCG@10 of the cross-encoder minus ColBERT.
        min_colbert_speedup: item 3: time(cross-encoder reranking) / time(ColBERT reranking) at
            the largest k, median over rounds.
        max_maxsim_diff: item 3: |batched MaxSim - loop reference|.
        max_index_diff: item 3: |MaxSim from the index - MaxSim of freshly encoded documents|.
    """

    min_rerank_over_first: float = 0.02
    min_rerank_over_bm25: float = 0.0
    max_recall_change: float = 0.0
    min_ap_gain: float = 0.0
    min_cost_growth: float = 2.0
    min_colbert_over_first: float = 0.0
    min_cross_over_colbert: float = 0.0
    min_colbert_speedup: float = 3.0
    max_maxsim_diff: float = 1e-5
    max_index_diff: float = 1e-4


@dataclass
class RerankConfig:
    """The stage ``rerank`` (section ``rerank`` of params/cross_encoder_reranking.yaml).

    Attributes:
        data: a BEIR-format folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv).
        split: the qrels split the findings are measured on.
        train_split: the qrels split whose claims train the bi-encoder and the rerankers.
        n_queries: judged evaluation queries kept (0: all).
        n_docs: documents kept (0: all; judged documents of the kept queries always stay).
        bm25: the sparse baseline and the hard negatives' source.
        dense: the first-stage bi-encoder and its training.
        encoder: the rerankers' body (both get the same) and their training.
        exact_match: the cross-encoder's exact-match input feature.
        colbert_dim: E, ColBERT's token-vector size.
        first_stage_k: candidates the first stage hands to the rerankers (the PR curves' depth).
        rerank_ks: the k of the latency table (each <= first_stage_k).
        latency_queries: evaluation queries timed, one at a time.
        timing_rounds: interleaved rounds of the latency table.
        invariant_queries: queries of the MaxSim and index invariants.
        seeds: one bi-encoder, cross-encoder and ColBERT per seed.
        n_boot: bootstrap resamples of the query intervals.
        num_threads: torch and FAISS threads.
        checks: the finding bounds.
    """

    data: str = "data/beir_scifact"
    split: str = "test"
    train_split: str = "train"
    n_queries: int = 0
    n_docs: int = 0
    bm25: BM25Params = field(default_factory=BM25Params)
    dense: DenseConfig = field(default_factory=DenseConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    exact_match: bool = True
    colbert_dim: int = 32
    first_stage_k: int = 50
    rerank_ks: list[int] = field(default_factory=lambda: [10, 25, 50])
    latency_queries: int = 30
    timing_rounds: int = 7
    invariant_queries: int = 5
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_boot: int = 2000
    num_threads: int = 1
    checks: RerankChecks = field(default_factory=RerankChecks)

    def __post_init__(self) -> None:
        if not self.rerank_ks or max(self.rerank_ks) > self.first_stage_k or min(self.rerank_ks) < 1:
            raise ValueError(f"rerank_ks must lie in 1..first_stage_k={self.first_stage_k}, "
                             f"got {self.rerank_ks}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads; ``None`` reads ``cfg.data`` (the stage passes ``Inputs()``).

    Attributes:
        test: the evaluation split, already subset.
        train: the training split's claims on the same corpus.
    """

    test: BeirData | None = None
    train: BeirData | None = None


def load_inputs(cfg: RerankConfig) -> Inputs:
    """Read ``cfg.data``: the evaluation split, subset as asked, and the training split's claims on
    the same corpus (judgments of documents outside a subset corpus dropped)."""
    from nlpcurriculum.retrieval.beir import load_beir

    test = load_beir(cfg.data, cfg.split).subset(cfg.n_queries, cfg.n_docs, 0)
    return Inputs(test, load_beir(cfg.data, cfg.train_split).on_corpus(test.corpus))


@dataclass
class _Seed:
    """One seed's models, first-stage candidates and the arms' per-query measures."""

    per_query: dict[str, dict[str, np.ndarray]]      # arm -> measure -> (n_queries,)
    candidates: np.ndarray                           # (n_queries, K) first-stage document indices
    runs: dict[str, dict]                            # arm -> run (for the PR curves)
    timings: dict[str, float]
    losses: dict[str, list[float]]
    models: dict | None = None                       # seed 0 only: what the latency table times


@dataclass
class _Shared:
    """What every seed reuses: analysed text, token ids, BM25, the training positives."""

    data: BeirData
    train: BeirData
    docs: list[list[str]]                            # (N,) analyser terms
    queries: list[list[str]]
    train_queries: list[list[str]]
    bm25: BM25Index
    bm25_train_top: np.ndarray                       # (n_train, pool) BM25 ranking of train claims
    positives: list[tuple[int, int]]                 # (train query, relevant document)
    tok: object
    doc_tokens: list[list[int]]
    query_tokens: list[list[int]]
    train_tokens: list[list[int]]


def _measures(cfg: RerankConfig) -> list[str]:
    return ["ndcg@10", "recall@10", "mrr@10", f"recall@{cfg.first_stage_k}"]


def _run_of(data: BeirData, top: np.ndarray, scores: np.ndarray) -> dict:
    return run_from_topk(data.queries["query_id"].tolist(), data.corpus["doc_id"].tolist(), top, scores)


def _shared(cfg: RerankConfig, inputs: Inputs):
    from nlpcurriculum.retrieval.encoder import TermTokenizer
    from nlpcurriculum.retrieval.text import Analyzer

    if inputs.test is None:
        inputs = load_inputs(cfg)
    data, train = inputs.test, inputs.train
    an = Analyzer()
    docs = an.batch(data.documents())
    queries = an.batch(data.queries["text"].tolist())
    train_queries = an.batch(train.queries["text"].tolist())
    bm25 = BM25Index.build(docs, cfg.bm25, data.corpus["doc_id"].tolist())
    pos = {d: i for i, d in enumerate(data.corpus["doc_id"])}
    positives = [(qi, pos[d]) for qi, qid in enumerate(train.queries["query_id"])
                 for d, s in train.qrels[qid].items() if s > 0]
    bm25_train_top, _ = bm25.search(train_queries, cfg.encoder.negative_pool + 10)
    enc = cfg.encoder
    tok = TermTokenizer(docs, enc.min_count)
    return _Shared(data, train, docs, queries, train_queries, bm25, bm25_train_top, positives, tok,
                   [tok.ids(d, enc.max_doc_terms) for d in docs],
                   [tok.ids(q, enc.max_query_terms) for q in queries],
                   [tok.ids(q, enc.max_query_terms) for q in train_queries])


def _groups(sh: _Shared, dense_train_top: np.ndarray, pool: int):
    """A training group per (train claim, relevant abstract): hard negatives interleaved from
    BM25's and the bi-encoder's rankings of the claim, its relevant abstracts left out."""
    from nlpcurriculum.retrieval.encoder import Group

    relevant: dict[int, set[int]] = {}
    for q, d in sh.positives:
        relevant.setdefault(q, set()).add(d)
    groups = []
    for q, d in sh.positives:
        negs: list[int] = []
        for a, b in zip(sh.bm25_train_top[q].tolist(), dense_train_top[q].tolist()):
            for j in (a, b):
                if j not in relevant[q] and j not in negs:
                    negs.append(j)
        groups.append(Group(q, d, tuple(negs[:pool])))
    return groups


def _biencoder(sh: _Shared, cfg: RerankConfig, seed: int):
    """The first stage of one seed: pairs (title -> abstract, train claim -> relevant abstract)
    with one BM25 hard negative each, trained; its vocabulary, passage vectors and FAISS index."""
    from nlpcurriculum.retrieval.dense import Vocabulary, build_faiss, encode, train_biencoder
    from nlpcurriculum.retrieval.text import Analyzer

    titles = Analyzer().batch(sh.data.corpus["title"].tolist())
    pairs = [(t, i) for i, t in enumerate(titles) if t]
    pairs += [(sh.train_queries[q], d) for q, d in sh.positives]
    top, _ = sh.bm25.search([p[0] for p in pairs], k=5)
    hard = [next((int(j) for j in row if j != p[1]), int(row[-1])) for row, p in zip(top, pairs)]
    vocab = Vocabulary(sh.docs, cfg.dense.min_count)
    model, losses = train_biencoder(pairs, sh.docs, vocab, cfg.dense, seed, hard)
    P = encode(model, vocab, sh.docs, "passage")                             # (N, dim)
    return model, vocab, P, build_faiss(P, "flat"), losses


def _cross_scores(model, sh: _Shared, queries: list[list[int]], candidates: np.ndarray) -> np.ndarray:
    from nlpcurriculum.retrieval.rerank import score_pairs

    return np.stack([score_pairs(model, q, [sh.doc_tokens[j] for j in row])
                     for q, row in zip(queries, candidates)])                # (n, K)


def _train_seed(sh: _Shared, cfg: RerankConfig, seed: int, keep_models: bool) -> _Seed:
    import torch

    from nlpcurriculum.retrieval.bm25 import topk
    from nlpcurriculum.retrieval.dense import encode
    from nlpcurriculum.retrieval.encoder import train_listwise
    from nlpcurriculum.retrieval.late_interaction import ColBERT, build_index
    from nlpcurriculum.retrieval.rerank import CrossEncoder, rerank

    enc, K, data = cfg.encoder, cfg.first_stage_k, sh.data
    timings: dict[str, float] = {}
    start = time.perf_counter()
    bi, vocab, P, flat, bi_losses = _biencoder(sh, cfg, seed)
    timings["biencoder.train_s"] = time.perf_counter() - start
    Q = encode(bi, vocab, sh.queries, "query")
    first_val, first_top = flat.search(Q, min(K, len(sh.docs)))             # (n, K)
    dense_train_top, _ = topk(encode(bi, vocab, sh.train_queries, "query") @ P.T, enc.negative_pool + 10)
    groups = _groups(sh, dense_train_top, enc.negative_pool)

    def cross_groups(model, qs, docs):
        B, G = docs.shape
        flat_docs = [sh.doc_tokens[j] for j in docs.reshape(-1).tolist()]
        return model.score([sh.train_tokens[q] for q in qs for _ in range(G)], flat_docs).view(B, G)

    def colbert_groups(model, qs, docs):
        return model.score([sh.train_tokens[q] for q in qs],
                           [[sh.doc_tokens[j] for j in row] for row in docs.tolist()])

    torch.manual_seed(seed)
    cross = CrossEncoder(enc, len(sh.tok), cfg.exact_match)
    untrained = {k: v.clone() for k, v in cross.state_dict().items()} if keep_models else None
    start = time.perf_counter()
    cross_losses = train_listwise(cross, cross_groups, groups, enc, seed)
    timings["cross.train_s"] = time.perf_counter() - start
    torch.manual_seed(seed)
    colbert = ColBERT(enc, len(sh.tok), cfg.colbert_dim)
    start = time.perf_counter()
    colbert_losses = train_listwise(colbert, colbert_groups, groups, enc, seed)
    timings["colbert.train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    index = build_index(colbert, sh.doc_tokens)
    timings["colbert.index_s"] = time.perf_counter() - start

    bm25_top, bm25_val = sh.bm25.search(sh.queries, K)
    cross_top, cross_val = rerank(first_top, _cross_scores(cross, sh, sh.query_tokens, first_top))
    col_scores = np.stack([index.search(colbert, q, row) for q, row in zip(sh.query_tokens, first_top)])
    col_top, col_val = rerank(first_top, col_scores)
    runs = {"bm25": _run_of(data, bm25_top, bm25_val), "first": _run_of(data, first_top, first_val),
            "cross": _run_of(data, cross_top, cross_val), "colbert": _run_of(data, col_top, col_val)}
    models = None
    if keep_models:
        control = CrossEncoder(enc, len(sh.tok), cfg.exact_match)
        control.load_state_dict(untrained)
        control.eval()
        u_top, u_val = rerank(first_top, _cross_scores(control, sh, sh.query_tokens, first_top))
        runs["untrained_cross"] = _run_of(data, u_top, u_val)
        models = {"bi": bi, "vocab": vocab, "flat": flat, "cross": cross, "colbert": colbert,
                  "index": index}
    per_query = {arm: evaluate(run, data.qrels, _measures(cfg)) for arm, run in runs.items()}
    return _Seed(per_query, first_top, runs, timings,
                 {"biencoder": bi_losses, "cross": cross_losses, "colbert": colbert_losses}, models)


def run(cfg: RerankConfig, inputs: Inputs) -> list[ItemResult]:
    """All three items; torch and FAISS on ``cfg.num_threads`` threads."""
    import faiss

    from nlpcurriculum.metrics.timing import torch_threads

    faiss.omp_set_num_threads(cfg.num_threads)
    with torch_threads(cfg.num_threads):
        sh = _shared(cfg, inputs)
        seeds = [_train_seed(sh, cfg, s, i == 0) for i, s in enumerate(cfg.seeds)]
        latency = _latency(sh, seeds[0].models, cfg)
        invariants = _colbert_invariants(sh, seeds[0], cfg)
    return [rerank_item(sh.data, seeds, cfg), pr_latency_item(sh.data, seeds, latency, cfg),
            colbert_item(sh.data, seeds, latency, invariants, cfg)]


def _seed_mean(seeds: list[_Seed], arm: str, measure: str) -> np.ndarray:
    """``(n_queries,)`` the arm's per-query measure averaged over seeds."""
    return np.mean([s.per_query[arm][measure] for s in seeds], axis=0)


def _latency(sh: _Shared, m: dict, cfg: RerankConfig) -> dict[str, list[float]]:
    """Seconds per round of each arm over ``latency_queries`` queries served one at a time:
    the first stage alone (encode the query, FAISS flat top k), and with each reranker on its
    top k for every k of ``rerank_ks``; arms interleaved round by round."""
    from nlpcurriculum.metrics.timing import interleaved_rounds
    from nlpcurriculum.retrieval.dense import encode
    from nlpcurriculum.retrieval.rerank import rerank, score_pairs

    n = min(cfg.latency_queries, len(sh.queries))
    K = min(cfg.first_stage_k, len(sh.docs))

    def first(i: int) -> np.ndarray:
        q = encode(m["bi"], m["vocab"], [sh.queries[i]], "query")            # (1, dim)
        return m["flat"].search(q, K)[1][0]                                  # (K,)

    def first_only() -> None:
        for i in range(n):
            first(i)

    def with_cross(k: int):
        def arm() -> None:
            for i in range(n):
                cand = first(i)[:k]
                rerank(cand[None], score_pairs(m["cross"], sh.query_tokens[i],
                                               [sh.doc_tokens[j] for j in cand])[None])
        return arm

    def with_colbert(k: int):
        def arm() -> None:
            for i in range(n):
                cand = first(i)[:k]
                rerank(cand[None], m["index"].search(m["colbert"], sh.query_tokens[i], cand)[None])
        return arm

    arms = {"first": first_only}
    arms |= {f"cross@{k}": with_cross(k) for k in cfg.rerank_ks}
    arms |= {f"colbert@{k}": with_colbert(k) for k in cfg.rerank_ks}
    times = interleaved_rounds(arms, cfg.timing_rounds)
    return {arm: [t / n for t in ts] for arm, ts in times.items()}          # seconds per query


def _colbert_invariants(sh: _Shared, seed0: _Seed, cfg: RerankConfig) -> dict[str, float]:
    """Max |batched MaxSim - loop reference| and max |index MaxSim - fresh MaxSim| on the first
    ``invariant_queries`` queries' first 10 candidates."""
    import torch

    from nlpcurriculum.retrieval.encoder import DOC, QRY
    from nlpcurriculum.retrieval.late_interaction import maxsim, maxsim_reference

    m = seed0.models
    ref_diff = index_diff = 0.0
    for i in range(min(cfg.invariant_queries, len(sh.queries))):
        cand = seed0.candidates[i, :10].tolist()
        with torch.no_grad():
            qv, qm = m["colbert"].encode([sh.query_tokens[i]], QRY)          # (1, Lq, E)
            dv, dm = m["colbert"].encode([sh.doc_tokens[j] for j in cand], DOC)   # (k, Ld, E)
            batched = maxsim(qv, qm, dv[None], dm[None])[0]                  # (k,)
        for c in range(len(cand)):
            ref = maxsim_reference(qv[0][qm[0]].tolist(), dv[c][dm[c]].tolist())
            ref_diff = max(ref_diff, abs(float(batched[c]) - ref))
        from_index = m["index"].search(m["colbert"], sh.query_tokens[i], cand)
        index_diff = max(index_diff, float(np.abs(from_index - batched.numpy()).max()))
    return {"maxsim_diff": ref_diff, "index_diff": index_diff}


def _table(data: BeirData, seeds: list[_Seed], arms: list[str], cfg: RerankConfig,
           metrics: dict[str, float]) -> list[str]:
    """Rows ``arm  nDCG@10 [95% CI]  R@10  MRR@10  R@K  vs first (paired CI)``; fills ``metrics``."""
    K = cfg.first_stage_k
    lines = [f"{'arm':16s} {'nDCG@10 [95% CI]':>24s} {'R@10':>6s} {'MRR@10':>7s} {'R@' + str(K):>6s} "
             f"{'nDCG@10 vs first (paired 95% CI)':>34s}"]
    for arm in arms:
        pool = seeds[:1] if arm == "untrained_cross" else seeds
        nd = _seed_mean(pool, arm, "ndcg@10")
        ci = bootstrap_ci(nd, cfg.n_boot, 0)
        means = {m: float(_seed_mean(pool, arm, m).mean()) for m in _measures(cfg)}
        metrics |= {f"{arm}.{m}": v for m, v in means.items()}
        metrics |= {f"{arm}.ndcg@10.low": ci.low, f"{arm}.ndcg@10.high": ci.high}
        diff = ""
        if arm != "first":
            d = paired_bootstrap(nd, _seed_mean(pool, "first", "ndcg@10"), cfg.n_boot, 0)
            metrics |= {f"{arm}_minus_first.ndcg@10": d.mean, f"{arm}_minus_first.low": d.low,
                        f"{arm}_minus_first.high": d.high}
            diff = f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
        lines.append(f"{arm:16s} {ci.mean:.4f} [{ci.low:.4f}, {ci.high:.4f}] {means['recall@10']:6.4f} "
                     f"{means['mrr@10']:7.4f} {means[f'recall@{K}']:6.4f} {diff:>34s}")
    for arm in ("first", "cross", "colbert"):
        for s, r in zip(cfg.seeds, seeds):
            metrics[f"{arm}.seed{s}.ndcg@10"] = float(r.per_query[arm]["ndcg@10"].mean())
    return lines


def rerank_item(data: BeirData, seeds: list[_Seed], cfg: RerankConfig) -> ItemResult:
    """Item 1: the cross-encoder reranking the bi-encoder's top k, against it and BM25."""
    import matplotlib.pyplot as plt

    c, K = cfg.checks, cfg.first_stage_k
    metrics: dict[str, float] = {"n_queries": len(data.queries), "n_docs": len(data.corpus),
                                 "first_stage_k": K}
    arms = ["bm25", "first", "cross", "untrained_cross"]
    lines = [f"cross-encoder reranking the bi-encoder's top {K} on {data.name} "
             f"({len(data.queries)} queries; trained arms: per-query mean over seeds {cfg.seeds}; "
             "untrained_cross: seed 0, the control)"]
    lines += _table(data, seeds, arms, cfg, metrics)
    recall_change = max(float(np.abs(s.per_query["cross"][f"recall@{K}"] - s.per_query["first"][f"recall@{K}"]).max())
                        for s in seeds)
    metrics["recall_change"] = recall_change
    lines += ["", "training loss per epoch (listwise, 1 positive + "
              f"{cfg.encoder.group_size - 1} hard negatives): " + "; ".join(
                  f"seed {s}: " + ", ".join(f"{x:.3f}" for x in r.losses["cross"]) for s, r in zip(cfg.seeds, seeds))]
    timings = {f"{k}.seed{s}": v for s, r in zip(cfg.seeds, seeds) for k, v in r.timings.items()
               if k.startswith(("biencoder", "cross"))}
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    cis = {a: bootstrap_ci(_seed_mean(seeds[:1] if a == "untrained_cross" else seeds, a, "ndcg@10"),
                           cfg.n_boot, 0) for a in arms}
    ax.bar(arms, [cis[a].mean for a in arms], color=["0.5", "C0", "C1", "0.8"])
    ax.errorbar(arms, [cis[a].mean for a in arms],
                yerr=[[cis[a].mean - cis[a].low for a in arms], [cis[a].high - cis[a].mean for a in arms]],
                fmt="none", color="k", capsize=4)
    ax.set(ylabel="nDCG@10 (95% CI over queries)", ylim=(0, 1),
           title=f"reranking the bi-encoder's top {K} ({len(data.queries)} queries)")
    fig.tight_layout()
    cross, first, bm25 = (_seed_mean(seeds, a, "ndcg@10") for a in ("cross", "first", "bm25"))
    return ItemResult(
        item=ITEMS[0], metrics={metric_key(k): v for k, v in metrics.items()},
        timings={metric_key(k): v for k, v in timings.items()},
        series={f"cross_loss_seed{s}": list(enumerate(r.losses["cross"], 1)) for s, r in zip(cfg.seeds, seeds)},
        figures={"rerank_ndcg.png": fig}, texts={"rerank.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.compare(f"the cross-encoder reranking the bi-encoder's top {K} beats the bi-encoder "
                            "alone (per-query nDCG@10, seeds averaged, paired over test queries; an "
                            "untrained reranker shuffles the candidates and fails it)",
                            "cross_minus_first.ndcg_at_10", cross, first, margin=c.min_rerank_over_first),
            Finding.compare("the reranked list beats our Lucene BM25 (per-query nDCG@10, paired)",
                            "cross_minus_bm25.ndcg_at_10", cross, bm25, margin=c.min_rerank_over_bm25),
            Finding.at_most(f"reranking only reorders the candidates: recall@{K} equals the first "
                            "stage's (max |difference| over queries and seeds)", "recall_change",
                            recall_change, c.max_recall_change, kind=INVARIANT),
        ])


def _pr(seeds: list[_Seed], data: BeirData, arm: str, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arm's mean P@k and recall@k (k = 1..depth), mean 11-point curve, and per-query AP@depth,
    each averaged over seeds."""
    from nlpcurriculum.retrieval.pr_curves import (average_precision, interpolated_precision,
                                                   precision_recall_at_ranks)

    P, R, ip, ap = [], [], [], []
    for s in seeds:
        p, r = precision_recall_at_ranks(s.runs[arm], data.qrels, depth)
        P.append(p.mean(0))
        R.append(r.mean(0))
        ip.append(interpolated_precision(s.runs[arm], data.qrels).mean(0))
        ap.append(average_precision(s.runs[arm], data.qrels, depth))
    return np.mean(P, 0), np.mean(R, 0), np.mean(ip, 0), np.mean(ap, 0)


def pr_latency_item(data: BeirData, seeds: list[_Seed], latency: dict[str, list[float]],
                    cfg: RerankConfig) -> ItemResult:
    """Item 2: precision-recall curves of every arm; latency of the first stage with and without
    the cross-encoder."""
    import matplotlib.pyplot as plt

    from nlpcurriculum.retrieval.pr_curves import RECALL_LEVELS

    c, K = cfg.checks, cfg.first_stage_k
    arms = ["bm25", "first", "cross", "colbert"]
    curves = {a: _pr(seeds, data, a, K) for a in arms}
    metrics: dict[str, float] = {}
    lines = [f"precision-recall over the top {K} (means over queries, seeds averaged)",
             f"{'arm':10s} {'AP@' + str(K):>7s} " + " ".join(f"{'P@' + str(k):>6s}" for k in (1, 5, 10))
             + " " + " ".join(f"{'ip@' + format(r, '.1f'):>6s}" for r in RECALL_LEVELS[::2])]
    for a in arms:
        P, R, ip, ap = curves[a]
        metrics |= {f"{a}.ap@{K}": float(ap.mean()), f"{a}.p@1": float(P[0]), f"{a}.p@10": float(P[min(9, K - 1)])}
        metrics |= {f"{a}.iprec@{r:.1f}": float(v) for r, v in zip(RECALL_LEVELS, ip)}
        lines.append(f"{a:10s} {ap.mean():7.4f} " + " ".join(f"{P[min(k, K) - 1]:6.4f}" for k in (1, 5, 10))
                     + " " + " ".join(f"{v:6.4f}" for v in ip[::2]))
    med = {arm: float(np.median(ts)) * 1e3 for arm, ts in latency.items()}      # ms per query
    timings = {f"latency_ms.{arm}": v for arm, v in med.items()}
    lines += ["", f"latency per query (ms, median of {cfg.timing_rounds} interleaved rounds, "
              f"{min(cfg.latency_queries, len(data.queries))} queries one at a time, "
              f"{cfg.num_threads} thread(s)); overhead = with reranking - first stage alone",
              f"{'arm':12s} {'ms/query':>9s} {'overhead ms':>12s} {'x first':>8s}"]
    for arm, v in med.items():
        over = v - med["first"]
        timings |= {f"overhead_ms.{arm}": over, f"overhead_ratio.{arm}": v / med["first"]}
        lines.append(f"{arm:12s} {v:9.3f} {over:12.3f} {v / med['first']:8.2f}")
    k_lo, k_hi = min(cfg.rerank_ks), max(cfg.rerank_ks)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, a in enumerate(arms):
        P, R, ip, _ = curves[a]
        ax1.plot(R, P, "-", color=f"C{i}", label=a)
        ax2.plot(RECALL_LEVELS, ip, "o-", color=f"C{i}", label=a)
    ax1.set(xlabel="recall@k", ylabel="precision@k", title=f"over rank cutoffs k = 1..{K}")
    ax2.set(xlabel="recall", ylabel="interpolated precision", title="11-point interpolated")
    ax1.legend(fontsize=8)
    for name, style in (("cross", "o-"), ("colbert", "s-")):
        ax3.plot(cfg.rerank_ks, [med[f"{name}@{k}"] for k in cfg.rerank_ks], style, label=f"first + {name}")
    ax3.axhline(med["first"], color="k", ls=":", label="first stage alone")
    ax3.set(xlabel="k reranked", ylabel="ms / query", yscale="log", title="latency per query")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    cross_ap, first_ap = curves["cross"][3], curves["first"][3]
    return ItemResult(
        item=ITEMS[1], metrics={metric_key(k): v for k, v in metrics.items()},
        timings={metric_key(k): v for k, v in timings.items()},
        series={f"pr_{a}": [(k + 1, float(curves[a][0][k])) for k in range(K)] for a in arms},
        figures={"pr_curves_latency.png": fig}, texts={"pr_latency.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.compare(f"reranking raises the area under the precision-recall curve: per-query "
                            f"AP@{K} of the reranked list minus the first stage, paired (a reranker "
                            "worse than the first stage fails it)", f"cross_minus_first.ap_at_{K}",
                            cross_ap, first_ap, margin=c.min_ap_gain),
            Finding.timing_ratio(f"the reranking overhead grows with k: time per query with the top "
                                 f"{k_hi} reranked over the top {k_lo} (median over interleaved rounds; "
                                 "a reranker that scored a fixed number of pairs fails it)",
                                 f"cross_at_{k_hi}_over_cross_at_{k_lo}.time", latency[f"cross@{k_hi}"],
                                 latency[f"cross@{k_lo}"], c.min_cost_growth),
        ])


def colbert_item(data: BeirData, seeds: list[_Seed], latency: dict[str, list[float]],
                 inv: dict[str, float], cfg: RerankConfig) -> ItemResult:
    """Item 3: ColBERT late interaction against the cross-encoder and the bi-encoder."""
    import matplotlib.pyplot as plt

    c, K = cfg.checks, cfg.first_stage_k
    k_hi = max(cfg.rerank_ks)
    metrics: dict[str, float] = {"maxsim_diff": inv["maxsim_diff"], "index_diff": inv["index_diff"],
                                 "colbert_dim": cfg.colbert_dim}
    lines = [f"ColBERT (MaxSim, E = {cfg.colbert_dim}, corpus token vectors precomputed) and the "
             f"cross-encoder reranking the same top {K} (seeds {cfg.seeds} averaged per query)"]
    lines += _table(data, seeds, ["first", "cross", "colbert"], cfg, metrics)
    d = paired_bootstrap(_seed_mean(seeds, "cross", "ndcg@10"), _seed_mean(seeds, "colbert", "ndcg@10"),
                         cfg.n_boot, 0)
    metrics |= {"cross_minus_colbert.ndcg@10": d.mean, "cross_minus_colbert.low": d.low,
                "cross_minus_colbert.high": d.high}
    med = {arm: float(np.median(ts)) * 1e3 for arm, ts in latency.items()}
    timings = {f"{k}.seed{s}": v for s, r in zip(cfg.seeds, seeds) for k, v in r.timings.items()
               if k.startswith("colbert")}
    timings |= {f"latency_ms.{arm}": v for arm, v in med.items()}
    lines += ["", f"cross-encoder minus ColBERT nDCG@10: {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}] (paired 95% CI)",
              "latency per query, ms (median over rounds): bi-encoder alone {:.3f}; ".format(med["first"])
              + "; ".join(f"k {k}: cross {med[f'cross@{k}']:.2f}, colbert {med[f'colbert@{k}']:.2f}"
                          for k in cfg.rerank_ks),
              f"MaxSim batched vs loop reference max |diff| {inv['maxsim_diff']:.2e}; index vs fresh "
              f"encoding max |diff| {inv['index_diff']:.2e}",
              "training loss per epoch: " + "; ".join(
                  f"seed {s}: " + ", ".join(f"{x:.3f}" for x in r.losses["colbert"]) for s, r in zip(cfg.seeds, seeds))]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, color in (("first", "k"), ("cross", "C1"), ("colbert", "C3")):
        nd = float(_seed_mean(seeds, name, "ndcg@10").mean())
        ms = [med["first"]] if name == "first" else [med[f"{name}@{k}"] for k in cfg.rerank_ks]
        ax.scatter(ms, [nd] * len(ms), color=color, label=name)
        for k, x in zip(cfg.rerank_ks if name != "first" else [], ms):
            ax.annotate(f"k={k}", (x, nd), fontsize=7, xytext=(2, 3), textcoords="offset points")
    ax.set(xscale="log", xlabel="ms / query", ylabel=f"nDCG@10 (reranking the top {K})",
           title="quality vs latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    cross, col, first = (_seed_mean(seeds, a, "ndcg@10") for a in ("cross", "colbert", "first"))
    return ItemResult(
        item=ITEMS[2], metrics={metric_key(k): v for k, v in metrics.items()},
        timings={metric_key(k): v for k, v in timings.items()},
        series={f"colbert_loss_seed{s}": list(enumerate(r.losses["colbert"], 1)) for s, r in zip(cfg.seeds, seeds)},
        figures={"colbert_quality_latency.png": fig}, texts={"colbert.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.compare(f"ColBERT reranking the bi-encoder's top {K} beats the bi-encoder alone "
                            "(per-query nDCG@10, seeds averaged, paired)", "colbert_minus_first.ndcg_at_10",
                            col, first, margin=c.min_colbert_over_first),
            Finding.compare("the cross-encoder (query and document attend to each other) ranks better "
                            "than ColBERT's late interaction on the same candidates (per-query nDCG@10, "
                            "paired)", "cross_minus_colbert.ndcg_at_10", cross, col,
                            margin=c.min_cross_over_colbert),
            Finding.timing_ratio(f"ColBERT with its precomputed index reranks the top {k_hi} faster than "
                                 "the cross-encoder (time per query incl. the first stage, cross / colbert, "
                                 "median over interleaved rounds)", f"cross_over_colbert_at_{k_hi}.time",
                                 latency[f"cross@{k_hi}"], latency[f"colbert@{k_hi}"], c.min_colbert_speedup),
            Finding.at_most("the batched MaxSim equals the two-loop reference (max |difference|)",
                            "maxsim_diff", inv["maxsim_diff"], c.max_maxsim_diff, kind=INVARIANT),
            Finding.at_most("MaxSim from the precomputed token index equals MaxSim of freshly encoded "
                            "documents (max |difference|)", "index_diff", inv["index_diff"],
                            c.max_index_diff, kind=INVARIANT),
        ])
