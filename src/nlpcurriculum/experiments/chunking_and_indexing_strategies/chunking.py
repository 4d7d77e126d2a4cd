"""The curriculum experiments of section "Chunking & Indexing Strategies" (items 1-2), BEIR SciFact.

Retrieval is our BM25 (:mod:`nlpcurriculum.retrieval.bm25`, Lucene variant, k1 1.2, b 0.75, the
bm25s benchmark's analyser) on a BEIR-format folder (default the shipped SciFact copy: 5,183
abstracts, 300 test claims); every method ranks *documents* and is scored on the test qrels with
nDCG@10, recall@k and MRR@10 (:mod:`nlpcurriculum.retrieval.evaluate`), each with a bootstrap
interval over queries, and each comparison paired per query.

* ``chunking-and-indexing-strategies/1`` (:func:`chunking_item`): the corpus indexed whole
  (the control) and cut by four chunkers -- paragraphs (SciFact has no blank lines, so the
  sections of structured abstracts; 19% of its abstracts have them), single sentences, and
  sliding windows of ``window_size`` words with and without ``window_overlap`` -- each chunk with
  its document's title in front, a document scored by its best chunk (MaxP). The anchor: the
  whole-document run reproduces the published Lucene BM25 nDCG@10 on SciFact (0.680, bm25s
  benchmark), which a wrong analyser, idf or length normalisation misses. Findings: single
  sentences lose to whole abstracts (a claim's terms spread over several sentences of a short
  abstract), and overlapping windows beat non-overlapping ones (a passage cut at a window
  border is whole in an overlapping one). A chunker that returned the whole abstract as one
  chunk would tie the control and fail the first; windows that ignore ``overlap`` would fail the
  second. Invariants: the window count formula, and every chunker covering every word.
* ``chunking-and-indexing-strategies/2`` (:func:`hierarchical_item`): a hierarchical index,
  document -> section -> sentence (:class:`~nlpcurriculum.retrieval.chunking.HierarchicalIndex`),
  searched coarse to fine: BM25 over whole documents keeps ``coarse_k`` candidates, and only the
  candidates' sections and sentences are scored; a candidate's score is ``doc + w_section * best
  section + w_sentence * best sentence``, the two weights picked on the *train* claims (a grid),
  never on the test claims. recall@k for every method of item 1 and the hierarchical one, for
  each k of ``ks``. Finding: the hierarchical index finds more relevant abstracts in the top 10
  than the whole-document index (the control); a null fusion (weights 0) ties the control and
  fails it. Second finding: the coarse step scores a small fraction of the sentence units a flat
  sentence search scores (how much work the hierarchy saves depends on the lengths of the
  candidates, which BM25 tends to pick long). Invariant: with every document a candidate and
  weights (0, 1) on (document, sentence), the hierarchy equals the flat sentence MaxP search.

Timings (index builds, queries/s per method) go to ``ItemResult.timings``.

Left out: dense and hybrid chunk retrieval (section Retrieval-Augmented Generation), chunk-level
qrels (BEIR judges whole documents), token-based windows (windows count white-space words).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.retrieval.beir import BeirData
from nlpcurriculum.retrieval.bm25 import BM25Index, BM25Params, topk
from nlpcurriculum.retrieval.chunking import (ChunkedCorpus, HierarchicalIndex, chunk_corpus,
                                              doc_scores_maxp, split_paragraphs, split_sentences,
                                              window_chunks, window_count)
from nlpcurriculum.retrieval.evaluate import (bootstrap_ci, evaluate, mean_metrics, metric_key,
                                              paired_bootstrap, run_from_topk)
from nlpcurriculum.retrieval.text import Analyzer

__all__ = ["ChunkingChecks", "ChunkingConfig", "ITEMS", "Inputs", "Outputs", "chunking_item",
           "hierarchical_item", "load_inputs", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("chunking-and-indexing-strategies/1", "chunking-and-indexing-strategies/2")

#: the methods of item 1, in table order; ``document`` is the control
METHODS = ("document", "paragraph", "sentence", "window", "window_no_overlap")


@dataclass
class ChunkingChecks:
    """Bounds of the findings (params ``chunking.checks``).

    Attributes:
        published_ndcg10: the published nDCG@10 of Lucene BM25 (k1 1.2, b 0.75) on SciFact test.
        max_published_gap: item 1: |ours - published| for the whole-document run.
        min_doc_over_sentence: item 1: mean per-query nDCG@10 of whole documents minus single
            sentences must exceed this by two standard errors.
        min_overlap_gain: item 1: the same for windows with overlap minus without.
        max_window_count_errors: item 1: documents whose window count differs from the formula.
        min_word_coverage: item 1: fraction of (document, word) pairs found in the document's chunks.
        min_hier_recall10_gain: item 2: mean per-query recall@10 of the hierarchy minus whole
            documents, beyond two standard errors.
        max_units_fraction: item 2: sentence units the hierarchy scores / units a flat search scores.
        max_flat_equivalence_diff: item 2: |hierarchy (all candidates, sentence only) - flat MaxP|.
    """

    published_ndcg10: float = 0.680
    max_published_gap: float = 0.005
    min_doc_over_sentence: float = 0.0
    min_overlap_gain: float = 0.0
    max_window_count_errors: float = 0.0
    min_word_coverage: float = 1.0
    min_hier_recall10_gain: float = 0.0
    max_units_fraction: float = 0.05
    max_flat_equivalence_diff: float = 1e-9


@dataclass
class ChunkingConfig:
    """The stage ``chunking`` (section ``chunking`` of params/chunking_and_indexing_strategies.yaml).

    Attributes:
        data: a BEIR-format folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv).
        split: the qrels split the findings are measured on.
        tune_split: the qrels split the hierarchy's weights are picked on ("" : no tuning, the
            first grid point pair).
        n_queries: judged queries kept per split (0: all); a smoke run takes a few.
        n_docs: documents kept (0: all; judged documents of the kept queries always stay).
        bm25: the scoring function of every index.
        title_in_chunks: put the document's title in front of each chunk.
        window_size: words per sliding window.
        window_overlap: words consecutive windows share.
        ks: the cut-offs of the recall@k table (item 2).
        coarse_k: candidates the hierarchy's coarse step keeps.
        weight_grid: the values tried for each of the two hierarchy weights on the tuning split.
        equivalence_queries: queries of the flat-equivalence invariant (item 2).
        n_boot: bootstrap resamples of the query intervals.
        seed: subset and bootstrap seed.
        checks: the finding bounds.
    """

    data: str = "data/beir_scifact"
    split: str = "test"
    tune_split: str = "train"
    n_queries: int = 0
    n_docs: int = 0
    bm25: BM25Params = field(default_factory=BM25Params)
    title_in_chunks: bool = True
    window_size: int = 64
    window_overlap: int = 32
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 100])
    coarse_k: int = 100
    weight_grid: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0])
    equivalence_queries: int = 30
    n_boot: int = 2000
    seed: int = 0
    checks: ChunkingChecks = field(default_factory=ChunkingChecks)


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        test: the evaluation split (``cfg.split``), already subset if asked.
        tune: the tuning split's queries and qrels on the same corpus, or None.
    """

    test: BeirData
    tune: BeirData | None = None


@dataclass
class Outputs:
    """What the stage saves: the whole-document BM25 index (``models/chunking/bm25.npz``)."""

    index: BM25Index | None = None


@dataclass
class _Method:
    """One flat index: its chunks, the index, and its document scores on the test queries."""

    chunks: ChunkedCorpus
    index: BM25Index
    doc_scores: np.ndarray          # (n_queries, D)
    build_s: float
    search_s: float


def _measures(cfg: ChunkingConfig) -> list[str]:
    return ["ndcg@10", "mrr@10"] + [f"recall@{k}" for k in cfg.ks]


def _per_query(data: BeirData, doc_scores: np.ndarray, cfg: ChunkingConfig) -> dict[str, np.ndarray]:
    top, scores = topk(doc_scores, max(max(cfg.ks), 10) + 1)   # +1: an identical id may drop out
    run = run_from_topk(data.queries["query_id"].tolist(), data.corpus["doc_id"].tolist(), top, scores)
    return evaluate(run, data.qrels, _measures(cfg))


def _chunkers(cfg: ChunkingConfig) -> dict[str, dict]:
    return {"paragraph": {"method": "paragraph"}, "sentence": {"method": "sentence"},
            "window": {"method": "window", "size": cfg.window_size, "overlap": cfg.window_overlap},
            "window_no_overlap": {"method": "window", "size": cfg.window_size, "overlap": 0}}


def _build_methods(data: BeirData, queries: list[list[str]], an: Analyzer,
                   cfg: ChunkingConfig) -> dict[str, _Method]:
    titles, texts = data.corpus["title"].tolist(), data.corpus["text"].tolist()
    out = {}
    start = time.perf_counter()
    docs = ChunkedCorpus(data.documents(), np.arange(len(texts)), len(texts))
    index = BM25Index.build(an.batch(docs.texts), cfg.bm25, data.corpus["doc_id"].tolist())
    built = time.perf_counter()
    scores = index.scores(queries)
    out["document"] = _Method(docs, index, scores, built - start, time.perf_counter() - built)
    for name, spec in _chunkers(cfg).items():
        start = time.perf_counter()
        chunks = chunk_corpus(titles, texts, title_in_chunks=cfg.title_in_chunks, **spec)
        index = BM25Index.build(an.batch(chunks.texts), cfg.bm25)
        built = time.perf_counter()
        scores = doc_scores_maxp(index, chunks.chunk_doc, queries)
        out[name] = _Method(chunks, index, scores, built - start, time.perf_counter() - built)
    return out


def _coverage(data: BeirData, cfg: ChunkingConfig) -> tuple[float, int]:
    """Fraction of (document, word) pairs present in the document's chunks, over all chunkers;
    and the number of documents whose window count differs from :func:`window_count`."""
    found = total = count_errors = 0
    for text in data.corpus["text"]:
        words = set(text.split())
        if not words:
            continue
        for chunks in (split_sentences(text), split_paragraphs(text),
                       window_chunks(text, cfg.window_size, cfg.window_overlap),
                       window_chunks(text, cfg.window_size, 0)):
            seen = {w for c in chunks for w in c.split()}
            found += len(words & seen)
            total += len(words)
        n = len(text.split())
        count_errors += len(window_chunks(text, cfg.window_size, cfg.window_overlap)) != window_count(
            n, cfg.window_size, cfg.window_overlap)
    return (found / total if total else 1.0), count_errors


def chunking_item(data: BeirData, methods: dict[str, _Method], cfg: ChunkingConfig,
                  per_query: dict[str, dict[str, np.ndarray]]) -> ItemResult:
    """Item 1: nDCG@10 / MRR@10 / recall of each chunker against whole documents."""
    import matplotlib.pyplot as plt

    c = cfg.checks
    metrics: dict[str, float] = {"n_queries": len(data.queries), "n_docs": len(data.corpus)}
    timings: dict[str, float] = {}
    lines = [f"{'method':18s} {'chunks':>7s} {'words/chunk':>11s} {'nDCG@10 [95% CI]':>24s} "
             f"{'MRR@10':>7s} {'R@100':>6s} {'vs document (paired 95% CI)':>30s}"]
    cis = {}
    for name in METHODS:
        m, pq = methods[name], per_query[name]
        ci = cis[name] = bootstrap_ci(pq["ndcg@10"], cfg.n_boot, cfg.seed)
        means = mean_metrics(pq)
        words = float(np.mean([len(t.split()) for t in m.chunks.texts]))
        metrics |= {f"{name}.{k}": v for k, v in means.items()}
        metrics |= {f"{name}.ndcg@10.low": ci.low, f"{name}.ndcg@10.high": ci.high,
                    f"{name}.chunks": len(m.chunks.texts), f"{name}.words_per_chunk": words}
        timings |= {f"{name}.build_s": m.build_s,
                    f"{name}.queries_per_s": len(data.queries) / max(m.search_s, 1e-9)}
        diff = ""
        if name != "document":
            d = paired_bootstrap(pq["ndcg@10"], per_query["document"]["ndcg@10"], cfg.n_boot, cfg.seed)
            metrics |= {f"{name}.minus_document.ndcg@10": d.mean,
                        f"{name}.minus_document.low": d.low, f"{name}.minus_document.high": d.high}
            diff = f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
        lines.append(f"{name:18s} {len(m.chunks.texts):7d} {words:11.1f} "
                     f"{ci.mean:.4f} [{ci.low:.4f}, {ci.high:.4f}] {means['mrr@10']:7.4f} "
                     f"{means.get('recall@100', float('nan')):6.3f} {diff:>30s}")
    coverage, count_errors = _coverage(data, cfg)
    metrics |= {"word_coverage": coverage, "window_count_errors": count_errors}
    gap = abs(metrics["document.ndcg@10"] - c.published_ndcg10)
    metrics["published_gap"] = gap

    fig, ax = plt.subplots(figsize=(7, 3.8))
    xs = np.arange(len(METHODS))
    ax.bar(xs, [cis[n].mean for n in METHODS], color=["0.5"] + ["C0"] * (len(METHODS) - 1))
    ax.errorbar(xs, [cis[n].mean for n in METHODS],
                yerr=[[cis[n].mean - cis[n].low for n in METHODS], [cis[n].high - cis[n].mean for n in METHODS]],
                fmt="none", color="k", capsize=4)
    ax.axhline(c.published_ndcg10, color="C3", ls=":", label=f"published Lucene BM25 ({c.published_ndcg10})")
    ax.set_xticks(xs, [n.replace("_", "\n") for n in METHODS])
    ax.set(ylabel="nDCG@10 (95% bootstrap CI)", title=f"Chunking, BM25 MaxP ({data.name}, {len(data.queries)} queries)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()

    doc, sent = per_query["document"]["ndcg@10"], per_query["sentence"]["ndcg@10"]
    win, win0 = per_query["window"]["ndcg@10"], per_query["window_no_overlap"]["ndcg@10"]
    findings = [
        Finding.at_most(
            f"whole-document Lucene BM25 (k1 {cfg.bm25.k1}, b {cfg.bm25.b}) reproduces the published "
            f"SciFact nDCG@10 {c.published_ndcg10} (|ours - published|; a wrong analyser, idf or length "
            "normalisation misses it)", "published_gap", gap, c.max_published_gap),
        Finding.compare(
            "single sentences (title in front, best sentence per abstract) rank abstracts worse than "
            "whole abstracts: per-query nDCG@10 of document minus sentence, paired over queries",
            "document_minus_sentence.ndcg_at_10", doc, sent, margin=c.min_doc_over_sentence),
        Finding.compare(
            f"overlapping windows ({cfg.window_size} words, overlap {cfg.window_overlap}) rank better "
            f"than non-overlapping ones ({cfg.window_size}, 0): per-query nDCG@10 difference, paired",
            "overlap_minus_no_overlap.ndcg_at_10", win, win0, margin=c.min_overlap_gain),
        Finding.at_least("every chunker keeps every word of every abstract (fraction of (document, "
                         "word) pairs found in its chunks)", "word_coverage", coverage,
                         c.min_word_coverage, kind=INVARIANT),
        Finding.at_most("sliding windows number ceil((n - overlap) / (size - overlap)) for n words "
                        "(documents that differ)", "window_count_errors", count_errors,
                        c.max_window_count_errors, kind=INVARIANT),
    ]
    return ItemResult(item=ITEMS[0], metrics={metric_key(k): v for k, v in metrics.items()},
                      timings=timings, figures={"ndcg_by_chunker.png": fig},
                      texts={"chunking.txt": "\n".join(lines) + "\n"}, findings=findings)


def _tune_weights(h: HierarchicalIndex, tune: BeirData, an: Analyzer, cfg: ChunkingConfig
                  ) -> tuple[dict[str, float], list[str]]:
    """The (section, sentence) weights of the grid with the best mean nDCG@10 on the tuning split."""
    grid = list(product(cfg.weight_grid, repeat=2))
    if tune is None:
        return {"section": grid[0][0], "sentence": grid[0][1]}, ["no tuning split: first grid point"]
    queries = an.batch(tune.queries["text"].tolist())
    cand, doc_s, best, _ = h.evidence(queries, cfg.coarse_k)
    ids = tune.corpus["doc_id"].tolist()
    lines, scored = [], []
    for ws, wt in grid:
        top, val = h.combine(cand, doc_s, best, {"section": ws, "sentence": wt}, 11)
        run = run_from_topk(tune.queries["query_id"].tolist(), ids, top, val)
        score = float(np.mean(evaluate(run, tune.qrels, ["ndcg@10"])["ndcg@10"]))
        scored.append((score, -ws - wt, ws, wt))        # ties: the smaller total weight
        lines.append(f"  w_section {ws:<5} w_sentence {wt:<5} nDCG@10 {score:.4f}")
    _, _, ws, wt = max(scored)
    return {"section": ws, "sentence": wt}, lines


def hierarchical_item(data: BeirData, tune: BeirData | None, methods: dict[str, _Method],
                      queries: list[list[str]], an: Analyzer, cfg: ChunkingConfig,
                      per_query: dict[str, dict[str, np.ndarray]]) -> ItemResult:
    """Item 2: the document -> section -> sentence index, coarse to fine; recall@k across methods."""
    import matplotlib.pyplot as plt

    c = cfg.checks
    start = time.perf_counter()
    h = HierarchicalIndex(
        [t for t in an.batch(methods["document"].chunks.texts)],
        {"section": (an.batch(methods["paragraph"].chunks.texts), methods["paragraph"].chunks.chunk_doc),
         "sentence": (an.batch(methods["sentence"].chunks.texts), methods["sentence"].chunks.chunk_doc)},
        cfg.bm25)
    build_s = time.perf_counter() - start
    weights, tune_lines = _tune_weights(h, tune, an, cfg)
    start = time.perf_counter()
    cand, doc_s, best, units_scored = h.evidence(queries, cfg.coarse_k)
    top, val = h.combine(cand, doc_s, best, weights, max(max(cfg.ks), 10) + 1)
    search_s = time.perf_counter() - start
    run = run_from_topk(data.queries["query_id"].tolist(), data.corpus["doc_id"].tolist(), top, val)
    per_query = dict(per_query, hierarchical=evaluate(run, data.qrels, _measures(cfg)))
    flat_units = len(queries) * len(methods["sentence"].chunks.texts) + len(queries) * len(
        methods["paragraph"].chunks.texts)
    fraction = units_scored / flat_units

    # invariant: every document a candidate, weights (0 doc, 1 sentence) = flat sentence MaxP
    nq = min(cfg.equivalence_queries, len(queries))
    eq_idx, eq_val, _ = h.search(queries[:nq], k=len(data.corpus), coarse_k=len(data.corpus),
                                 weights={"sentence": 1.0}, doc_weight=0.0)
    flat = methods["sentence"].doc_scores[:nq]
    eq_diff = float(np.abs(np.take_along_axis(flat, eq_idx, axis=1) - eq_val).max()) if nq else 0.0

    names = list(METHODS) + ["hierarchical"]
    metrics: dict[str, float] = {"w_section": weights["section"], "w_sentence": weights["sentence"],
                                 "coarse_k": cfg.coarse_k, "units_scored": units_scored,
                                 "units_fraction": fraction, "flat_equivalence_diff": eq_diff}
    header = f"{'method':18s} " + " ".join(f"{'R@' + str(k):>7s}" for k in cfg.ks) + f" {'nDCG@10':>8s}"
    lines = [header]
    for name in names:
        means = mean_metrics(per_query[name])
        metrics |= {f"{name}.recall@{k}": means[f"recall@{k}"] for k in cfg.ks}
        metrics[f"{name}.ndcg@10"] = means["ndcg@10"]
        lines.append(f"{name:18s} " + " ".join(f"{means[f'recall@{k}']:7.4f}" for k in cfg.ks)
                     + f" {means['ndcg@10']:8.4f}")
    gain = paired_bootstrap(per_query["hierarchical"]["recall@10"], per_query["document"]["recall@10"],
                            cfg.n_boot, cfg.seed)
    metrics |= {"hierarchical_minus_document.recall@10": gain.mean,
                "hierarchical_minus_document.low": gain.low, "hierarchical_minus_document.high": gain.high}
    lines += ["", f"hierarchy: document -> section -> sentence, coarse_k {cfg.coarse_k}, weights "
              f"{weights} (picked on {cfg.tune_split or 'nothing'}); sentence+section units scored "
              f"{units_scored} of {flat_units} ({fraction:.2%}); recall@10 vs document "
              f"{gain.mean:+.4f} [{gain.low:+.4f}, {gain.high:+.4f}] (paired 95% CI); the hierarchy "
              f"ranks only its {cfg.coarse_k} candidates, so its recall@k for k > {cfg.coarse_k} is its "
              f"recall@{cfg.coarse_k}",
              "tuning grid (nDCG@10 on the tuning split):", *tune_lines]

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, name in enumerate(names):
        ax.plot(cfg.ks, [metrics[f"{name}.recall@{k}"] for k in cfg.ks], "o-",
                color="k" if name == "hierarchical" else f"C{i}", label=name.replace("_", " "))
    ax.set(xscale="log", xlabel="k", ylabel="recall@k", title=f"recall@k by index ({len(queries)} queries)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ItemResult(
        item=ITEMS[1], metrics={metric_key(k): v for k, v in metrics.items()},
        timings={"hierarchical.build_s": build_s,
                 "hierarchical.queries_per_s": len(queries) / max(search_s, 1e-9)},
        series={f"recall_{n}": [(k, metrics[f"{n}.recall@{k}"]) for k in cfg.ks] for n in names},
        figures={"recall_at_k.png": fig}, texts={"hierarchical.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.compare(
                "the hierarchical index (coarse documents, then best section and sentence, weights "
                "picked on the train claims) puts more relevant abstracts in the top 10 than the "
                "whole-document index: per-query recall@10 difference, paired over test queries",
                "hierarchical_minus_document.recall_at_10", per_query["hierarchical"]["recall@10"],
                per_query["document"]["recall@10"], margin=c.min_hier_recall10_gain),
            Finding.at_most(
                f"the coarse step (top {cfg.coarse_k} documents) leaves the fine levels a small share "
                "of the section and sentence units a flat search scores (units scored / flat units)",
                "units_fraction", fraction, c.max_units_fraction),
            Finding.at_most(
                "with every document a candidate and weights (document 0, sentence 1) the hierarchy "
                "is the flat sentence MaxP search (max |score difference| over the ranked documents)",
                "flat_equivalence_diff", eq_diff, c.max_flat_equivalence_diff, kind=INVARIANT),
        ])


def load_inputs(cfg: ChunkingConfig) -> Inputs:
    """Read ``cfg.data``: the evaluation split, subset as asked, and the tuning split's queries on
    the same corpus (judgments of documents outside a subset corpus dropped, then queries left
    without a judgment dropped)."""
    from nlpcurriculum.retrieval.beir import load_beir

    test = load_beir(cfg.data, cfg.split).subset(cfg.n_queries, cfg.n_docs, cfg.seed)
    if not cfg.tune_split:
        return Inputs(test, None)
    tune = load_beir(cfg.data, cfg.tune_split).on_corpus(test.corpus)
    if 0 < cfg.n_queries < len(tune.queries):
        kept = tune.queries.iloc[:cfg.n_queries].reset_index(drop=True)
        tune = BeirData(tune.corpus, kept, {q: tune.qrels[q] for q in kept["query_id"]}, tune.name)
    return Inputs(test, tune)


def run(cfg: ChunkingConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Both items on ``inputs.test`` (weights of item 2 tuned on ``inputs.tune``)."""
    an = Analyzer()
    data = inputs.test
    queries = an.batch(data.queries["text"].tolist())
    methods = _build_methods(data, queries, an, cfg)
    per_query = {name: _per_query(data, m.doc_scores, cfg) for name, m in methods.items()}
    if outputs is not None:
        outputs.index = methods["document"].index
    return [chunking_item(data, methods, cfg, per_query),
            hierarchical_item(data, inputs.tune, methods, queries, an, cfg, per_query)]
