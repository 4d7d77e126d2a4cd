"""Stage ``semantic_cache``: item 3 of "Chunking & Indexing Strategies" on BEIR SciFact.

``chunking-and-indexing-strategies/3`` ("implement semantic caching for repeated queries") runs
in its own stage, ``semantic_cache``, beside the section's stage ``chunking`` (items 1-2, module
:mod:`~nlpcurriculum.experiments.chunking_and_indexing_strategies.chunking`).

The cache (:mod:`nlpcurriculum.retrieval.semantic_cache`) sits in front of dense retrieval: our
bi-encoder (:mod:`nlpcurriculum.retrieval.dense`, trained here on corpus titles -> abstracts and
the *train* claims, in-batch negatives) and an exact top-k search over the passages. The probes:

* **near-repeats** of cached claims, generated from a seed: the exact claim again, and rewordings
  by one edit each (a word dropped, two neighbours swapped, a word replaced from the fixed
  :data:`SYNONYMS` list, letters' case changed);
* **distinct-but-similar** claims: the other claims of the same split, never cached, from the
  same scientific domain (their nearest cached claim is what the cache compares them with).

Half of a split's claims are cached (their fresh top-k); every probe is looked up. A hit is a
*false hit* when the cached result differs materially from the probe's own fresh retrieval: a
top-k overlap below ``overlap_bound``. Measured against the cosine threshold as a curve; the
threshold is chosen on the *train* claims (the least one whose false-hit rate is at most
``target_false_hit``) and the findings are measured on the *test* claims:

* near-repeat hit rate (lower end of its 95% bootstrap interval over probes) at least a bound;
* false-hit rate (upper end of its interval) at most a bound;
* against the control, an exact-string cache (lowercased, whitespace collapsed): the semantic
  cache serves more of the reworded probes (paired per probe, bootstrap);
* latency: serving the probes through the cache (encode + cache scan, fresh retrieval on a miss)
  against fresh retrieval for every probe, interleaved rounds (a timed finding);
* invalidation: documents are updated (one in a cached result edited; another given a cached
  claim's words, so that it should enter that claim's result) while the cached claims keep
  coming back; a hit whose result differs from the fresh result of its own query is *stale*.
  Invariant: ``versions+bound`` serves no stale result; control: the cache without
  invalidation does (so the check can fail); ``versions`` alone (stamps of the used documents)
  is reported beside them.

Left out: caching generated answers (the RAG stage's LM), eviction by size or age, an
approximate (FAISS) search over a large cache.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.retrieval.beir import BeirData
from nlpcurriculum.retrieval.dense import DenseConfig, Vocabulary, encode, train_biencoder
from nlpcurriculum.retrieval.evaluate import bootstrap_ci, metric_key, paired_bootstrap
from nlpcurriculum.retrieval.semantic_cache import DocStore, SemanticCache
from nlpcurriculum.retrieval.text import Analyzer

__all__ = ["ITEMS", "SYNONYMS", "Inputs", "Probe", "SemanticCacheChecks", "SemanticCacheConfig",
           "load_inputs", "make_probes", "perturb", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("chunking-and-indexing-strategies/3",)

#: The fixed synonym list the rewordings draw from (word -> replacement, lowercase).
SYNONYMS: dict[str, str] = {
    "increase": "raise", "increases": "raises", "increased": "elevated", "decrease": "lower",
    "decreases": "lowers", "decreased": "reduced", "reduces": "lowers", "reduced": "decreased",
    "associated": "linked", "risk": "likelihood", "patients": "subjects", "higher": "greater",
    "lower": "reduced", "children": "kids", "women": "females", "men": "males",
    "cancer": "tumor", "treatment": "therapy", "effect": "impact", "causes": "induces",
    "cause": "induce", "inhibits": "blocks", "promotes": "enhances", "required": "needed",
    "important": "key", "levels": "concentrations", "mice": "rodents", "reduce": "lessen",
    "leads": "contributes", "improves": "enhances", "cells": "cell", "protein": "proteins",
}

EDITS = ("case", "drop", "swap", "synonym")


@dataclass
class SemanticCacheChecks:
    """Bounds of the findings (params ``semantic_cache.checks``).

    Attributes:
        min_hit_rate: lower end of the near-repeat hit rate's 95% interval at the chosen threshold.
        max_false_hit_rate: upper end of the false-hit rate's 95% interval (over hits).
        min_gain_over_exact: reworded probes served: semantic minus exact-string cache, lower end
            of the paired 95% interval.
        min_speedup: fresh retrieval time / cached service time over the probe stream.
        max_stale_hits: stale results served by the ``versions+bound`` cache (an invariant).
        min_stale_hits_control: stale results served by the cache without invalidation.
    """

    min_hit_rate: float = 0.5
    max_false_hit_rate: float = 0.1
    min_gain_over_exact: float = 0.2
    min_speedup: float = 1.0
    max_stale_hits: float = 0.0
    min_stale_hits_control: float = 1.0


@dataclass
class SemanticCacheConfig:
    """The stage ``semantic_cache`` (params/chunking_and_indexing_strategies.yaml).

    Attributes:
        data: a BEIR-format folder.
        split: the claims the findings are measured on.
        tune_split: the claims the threshold is chosen on (also the encoder's training claims).
        n_queries: judged claims kept per split (0: all).
        n_docs: documents kept (0: all).
        dense: the bi-encoder and its training.
        seed: encoder, which claims are cached, the rewordings, the updates.
        k: the result length (cached and fresh).
        rewordings: reworded probes per cached claim (plus one exact repeat).
        thresholds: the cosine thresholds of the curve (the chosen one is among them).
        target_false_hit: the false-hit rate the threshold is chosen for, on the tuning claims.
        overlap_bound: a hit whose top-k overlap with the fresh result is below this is false.
        n_updates: document updates of the invalidation check.
        timing_rounds: interleaved rounds of the latency comparison.
        n_boot: bootstrap resamples.
        num_threads: torch threads.
        checks: the finding bounds.
    """

    data: str = "data/beir_scifact"
    split: str = "test"
    tune_split: str = "train"
    n_queries: int = 0
    n_docs: int = 0
    dense: DenseConfig = field(default_factory=DenseConfig)
    seed: int = 0
    k: int = 10
    rewordings: int = 3
    thresholds: list[float] = field(default_factory=lambda: [round(0.80 + 0.01 * i, 2) for i in range(20)])
    target_false_hit: float = 0.05
    overlap_bound: float = 0.5
    n_updates: int = 100
    timing_rounds: int = 7
    n_boot: int = 2000
    num_threads: int = 1
    checks: SemanticCacheChecks = field(default_factory=SemanticCacheChecks)

    def __post_init__(self) -> None:
        if not self.thresholds or sorted(self.thresholds) != list(self.thresholds):
            raise ValueError("semantic_cache.thresholds must be a non-empty increasing list")


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the evaluation claims and the tuning claims on the same corpus."""

    test: BeirData
    tune: BeirData


def load_inputs(cfg: SemanticCacheConfig) -> Inputs:
    """Both splits of ``cfg.data`` (subset as asked), the tuning split judged on the same corpus."""
    from nlpcurriculum.retrieval.beir import load_beir

    test = load_beir(cfg.data, cfg.split).subset(cfg.n_queries, cfg.n_docs, 0)
    tune = load_beir(cfg.data, cfg.tune_split).on_corpus(test.corpus).subset(cfg.n_queries, 0, 1)
    return Inputs(test, tune)


# ----------------------------------------------------------------------------- probes

def perturb(text: str, edit: str, rng: np.random.Generator) -> str | None:
    """``text`` with one ``edit`` (``"case"``, ``"drop"``, ``"swap"``, ``"synonym"``), or None when
    the edit does not apply (too few words, no word of :data:`SYNONYMS`)."""
    words = text.split()
    if edit == "case":
        i = int(rng.integers(len(words)))
        words[i] = words[i].upper() if words[i] != words[i].upper() else words[i].lower()
    elif edit == "drop":
        if len(words) < 4:
            return None
        del words[int(rng.integers(1, len(words)))]
    elif edit == "swap":
        if len(words) < 3:
            return None
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    elif edit == "synonym":
        spots = [i for i, w in enumerate(words) if re.sub(r"\W", "", w.lower()) in SYNONYMS]
        if not spots:
            return None
        i = spots[int(rng.integers(len(spots)))]
        bare = re.sub(r"\W", "", words[i].lower())
        words[i] = words[i].lower().replace(bare, SYNONYMS[bare])
    else:
        raise ValueError(f"unknown edit {edit!r}: use one of {EDITS}")
    out = " ".join(words)
    return out if out != text else None


@dataclass(frozen=True)
class Probe:
    """A query put to the cache: its text, the claim it came from, and its kind.

    ``kind`` is ``"repeat"`` (the cached claim again), an edit of :data:`EDITS` (a rewording of a
    cached claim) or ``"distinct"`` (a claim never cached).
    """

    text: str
    source: int
    kind: str


def make_probes(texts: list[str], cached: np.ndarray, rewordings: int, rng: np.random.Generator) -> list[Probe]:
    """One exact repeat and ``rewordings`` one-edit rewordings of each cached claim, then every
    claim not cached as a distinct probe. Rewordings draw an edit at random among those that apply."""
    probes = []
    for c in cached.tolist():
        probes.append(Probe(texts[c], c, "repeat"))
        for _ in range(rewordings):
            for edit in rng.permutation(EDITS).tolist():
                out = perturb(texts[c], edit, rng)
                if out is not None:
                    probes.append(Probe(out, c, edit))
                    break
    held = np.setdiff1d(np.arange(len(texts)), cached)
    probes += [Probe(texts[h], int(h), "distinct") for h in held.tolist()]
    return probes


def _normalise(text: str) -> str:
    """The exact-string cache's key: lowercase, whitespace collapsed."""
    return " ".join(text.lower().split())


# ----------------------------------------------------------------------------- measurement

@dataclass
class _Split:
    """One split's probes scored against its cache (before any threshold is applied)."""

    probes: list[Probe]
    sims: np.ndarray          # (P,) best cosine to a cached claim
    false: np.ndarray         # (P,) the best entry's result overlaps the fresh one < bound
    overlap: np.ndarray       # (P,) top-k overlap of the best entry's result with the fresh one
    rel_differs: np.ndarray   # (P,) the best entry's claim shares no relevant document
    exact_hit: np.ndarray     # (P,) an exact-string cache would serve it

    @property
    def positive(self) -> np.ndarray:
        return np.array([p.kind != "distinct" for p in self.probes])

    def curve(self, t: float) -> dict[str, float]:
        hit = self.sims >= t
        pos = self.positive
        return {"hit_rate": float(hit[pos].mean()), "distinct_hit_rate": float(hit[~pos].mean()),
                "false_hit_rate": float((hit & self.false).sum() / max(hit.sum(), 1)),
                "hits": float(hit.sum())}


class _Service:
    """Fresh retrieval (analyse, encode, exact top-k) and the same behind a semantic cache."""

    def __init__(self, model, vocab: Vocabulary, an: Analyzer, store: DocStore, k: int) -> None:
        self.model, self.vocab, self.an, self.store, self.k = model, vocab, an, store, k

    def embed(self, texts: list[str]) -> np.ndarray:
        return encode(self.model, self.vocab, self.an.batch(texts), "query")     # (n, dim)

    def fresh(self, text: str) -> np.ndarray:
        return self.store.search(self.embed([text])[0], self.k)[0]

    def cached(self, cache: SemanticCache, text: str) -> np.ndarray:
        q = self.embed([text])[0]
        got = cache.lookup(q, self.store.versions)
        return got.ids if got.hit else self.store.search(q, self.k)[0]


def _fill(cache: SemanticCache, store: DocStore, Q: np.ndarray, k: int) -> None:
    """Insert each row of ``Q`` ``(n, dim)`` with its fresh top-k."""
    idx, val = store.search(Q, k)
    for q, i, v in zip(Q, idx, val):
        cache.insert(q, i, v, store.versions)


def _score_split(data: BeirData, svc: _Service, cfg: SemanticCacheConfig, rng: np.random.Generator) -> tuple[_Split, np.ndarray]:
    """Cache half the claims, make the probes and score each against the cache."""
    texts = data.queries["text"].tolist()
    qids = data.queries["query_id"].tolist()
    cached = np.sort(rng.choice(len(texts), size=len(texts) // 2, replace=False))
    probes = make_probes(texts, cached, cfg.rewordings, rng)
    C = svc.embed([texts[c] for c in cached])                                    # (n_cached, dim)
    cached_top = svc.store.search(C, cfg.k)[0]                                  # (n_cached, k)
    P = svc.embed([p.text for p in probes])                                      # (P, dim)
    fresh = svc.store.search(P, cfg.k)[0]                                       # (P, k)
    S = P @ C.T                                                                  # (P, n_cached)
    best = S.argmax(axis=1)
    overlap = np.array([len(set(cached_top[b]) & set(f)) / cfg.k for b, f in zip(best, fresh)])
    rel = [{d for d, s in data.qrels[q].items() if s > 0} for q in qids]
    rel_differs = np.array([not (rel[p.source] & rel[cached[b]]) for p, b in zip(probes, best)])
    keys = {_normalise(texts[c]) for c in cached}
    exact = np.array([_normalise(p.text) in keys for p in probes])
    return _Split(probes, S.max(axis=1), overlap < cfg.overlap_bound, overlap, rel_differs, exact), cached


def _choose_threshold(split: _Split, cfg: SemanticCacheConfig) -> float:
    """The least threshold of the grid whose false-hit rate is at most the target (else the top)."""
    for t in cfg.thresholds:
        if split.curve(t)["false_hit_rate"] <= cfg.target_false_hit:
            return t
    return cfg.thresholds[-1]


def _invalidation(svc: _Service, docs_text: list[str], C: np.ndarray, cached_texts: list[str],
                  threshold: float, cfg: SemanticCacheConfig) -> dict[str, dict[str, int]]:
    """Updates interleaved with the cached claims coming back, under each policy.

    Update ``u`` (even): a document of a cached result loses half its words; (odd): a document
    gets a cached claim's words appended (it should now enter that claim's result). After each,
    every cached claim is looked up; a miss is retrieved fresh and cached again. A hit is stale
    when its result differs from the fresh top-k of the query it was cached for (a hit on a
    neighbouring claim's entry is a near-repeat hit, measured by the false-hit rate, not staleness).
    """
    out = {}
    base = svc.store.vectors.copy()
    for policy in ("none", "versions", "versions+bound"):
        rng = np.random.default_rng(cfg.seed + 17)
        store = DocStore(base.copy())
        cache = SemanticCache(C.shape[1], threshold, policy)
        _fill(cache, store, C, cfg.k)
        stale = hits = 0
        for u in range(cfg.n_updates):
            c = int(rng.integers(len(C)))
            if u % 2 == 0:
                doc = int(store.search(C[c], cfg.k)[0][int(rng.integers(cfg.k))])
                words = docs_text[doc].split()
                keep = np.sort(rng.choice(len(words), size=max(1, len(words) // 2), replace=False))
                text = " ".join(words[i] for i in keep)
            else:
                doc = int(rng.integers(len(base)))
                text = docs_text[doc] + " " + cached_texts[c]
            vec = encode(svc.model, svc.vocab, svc.an.batch([text]), "passage")[0]
            store.update(doc, vec)
            cache.on_update(doc, vec)
            fresh_idx, fresh_val = store.search(C, cfg.k)                        # (n_cached, k)
            for i, q in enumerate(C):
                got = cache.lookup(q, store.versions)
                if got.hit:      # stale: not what fresh retrieval gives the entry's own query now
                    hits += 1
                    own = store.search(cache.vector(got.entry), cfg.k)[0]
                    stale += int(not np.array_equal(got.ids, own))
                else:
                    cache.insert(q, fresh_idx[i], fresh_val[i], store.versions)
        out[policy] = {"stale_hits": stale, "hits": hits, "update_evictions": cache.stats.update_evictions,
                       "stale_evictions": cache.stats.stale_evictions}
    return out


def run(cfg: SemanticCacheConfig, inputs: Inputs) -> list[ItemResult]:
    """The item; torch and numpy's BLAS on ``cfg.num_threads`` threads (OpenBLAS's own threads
    spin against a loaded machine: one query's search ran 100x slower with two of them)."""
    from threadpoolctl import threadpool_limits

    from nlpcurriculum.metrics.timing import interleaved_rounds, torch_threads

    an = Analyzer()
    data = inputs.test
    docs_text = data.documents()
    docs = an.batch(docs_text)
    vocab = Vocabulary(docs, cfg.dense.min_count)
    titles = an.batch(data.corpus["title"].tolist())
    pairs = [(t, i) for i, t in enumerate(titles) if t]
    pos = {d: i for i, d in enumerate(data.corpus["doc_id"])}
    for q, qid in zip(an.batch(inputs.tune.queries["text"].tolist()), inputs.tune.queries["query_id"]):
        pairs += [(q, pos[d]) for d, s in inputs.tune.qrels[qid].items() if s > 0]
    with torch_threads(cfg.num_threads), threadpool_limits(cfg.num_threads, user_api="blas"):
        start = time.perf_counter()
        model, losses = train_biencoder(pairs, docs, vocab, cfg.dense, cfg.seed, hard=None)
        train_s = time.perf_counter() - start
        svc = _Service(model, vocab, an, DocStore(encode(model, vocab, docs, "passage")), cfg.k)
        rng = np.random.default_rng(cfg.seed)
        tune, _ = _score_split(inputs.tune, svc, cfg, rng)
        test, cached = _score_split(data, svc, cfg, rng)
        threshold = _choose_threshold(tune, cfg)

        texts = data.queries["text"].tolist()
        cached_texts = [texts[c] for c in cached]
        C = svc.embed(cached_texts)
        cache = SemanticCache(C.shape[1], threshold)
        _fill(cache, svc.store, C, cfg.k)
        stream = [p.text for p in test.probes]
        times = interleaved_rounds({"fresh": lambda: [svc.fresh(t) for t in stream],
                                    "cached": lambda: [svc.cached(cache, t) for t in stream]},
                                   cfg.timing_rounds)
        inval = _invalidation(svc, docs_text, C, cached_texts, threshold, cfg)
    return [_item(data, tune, test, threshold, times, inval, losses, train_s, cfg)]


def _item(data: BeirData, tune: _Split, test: _Split, threshold: float, times: dict[str, list[float]],
          inval: dict[str, dict[str, int]], losses: list[float], train_s: float,
          cfg: SemanticCacheConfig) -> ItemResult:
    import matplotlib.pyplot as plt

    c = cfg.checks
    hit = test.sims >= threshold                                                 # (P,)
    pos = test.positive
    reworded = pos & np.array([p.kind != "repeat" for p in test.probes])
    hit_ci = bootstrap_ci(hit[pos].astype(float), cfg.n_boot, 0)
    false_ci = bootstrap_ci(test.false[hit].astype(float), cfg.n_boot, 0) if hit.any() else None
    gain = paired_bootstrap(hit[reworded].astype(float), test.exact_hit[reworded].astype(float), cfg.n_boot, 0)
    repeats = np.array([p.kind == "repeat" for p in test.probes])
    repeat_misses = int((~hit[repeats]).sum() + (test.overlap[repeats] < 1.0).sum())
    n = len(times["fresh"])
    fresh_s, cached_s = float(np.median(times["fresh"])), float(np.median(times["cached"]))
    metrics: dict[str, float] = {
        "threshold": threshold, "hit_rate": hit_ci.mean, "hit_rate.low": hit_ci.low, "hit_rate.high": hit_ci.high,
        "false_hit_rate": false_ci.mean if false_ci else 0.0,
        "false_hit_rate.low": false_ci.low if false_ci else 0.0,
        "false_hit_rate.high": false_ci.high if false_ci else 0.0,
        "distinct_hit_rate": float(hit[~pos].mean()),
        "relevant_mismatch_hits": float((hit & test.rel_differs).sum()),
        "exact_cache.reworded_hit_rate": float(test.exact_hit[reworded].mean()),
        "semantic.reworded_hit_rate": float(hit[reworded].mean()),
        "gain_over_exact": gain.mean, "gain_over_exact.low": gain.low,
        "repeat_misses": float(repeat_misses), "n_probes": float(len(test.probes)),
        "n_cached": float(pos.sum() // (cfg.rewordings + 1)), "n_docs": float(len(data.corpus)),
        "tune.false_hit_rate": tune.curve(threshold)["false_hit_rate"],
        "tune.hit_rate": tune.curve(threshold)["hit_rate"]}
    for kind in ("repeat", *EDITS):
        mask = np.array([p.kind == kind for p in test.probes])
        if mask.any():
            metrics[f"hit_rate.{kind}"] = float(hit[mask].mean())
    for policy, counts in inval.items():
        for key, v in counts.items():
            metrics[f"invalidation.{policy.replace('+', '_')}.{key}"] = float(v)
    timings = {"fresh_s_per_query": fresh_s / len(test.probes), "cached_s_per_query": cached_s / len(test.probes),
               "saved_s_per_query": (fresh_s - cached_s) / len(test.probes), "encoder_train_s": train_s,
               "timing_rounds": float(n)}

    curve_rows = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for a, (name, split) in zip(ax, (("train claims (tuning)", tune), ("test claims", test))):
        rows = [split.curve(t) for t in cfg.thresholds]
        for key, style in (("hit_rate", "o-"), ("distinct_hit_rate", "s--"), ("false_hit_rate", "x-")):
            a.plot(cfg.thresholds, [r[key] for r in rows], style, label=key.replace("_", " "))
        a.axvline(threshold, color="0.5", lw=0.8)
        a.set(xlabel="cosine threshold", title=name)
        if split is test:
            curve_rows = rows
    ax[0].set_ylabel("rate")
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    series = {key: [(int(round(t * 100)), r[key]) for t, r in zip(cfg.thresholds, curve_rows)]
              for key in ("hit_rate", "distinct_hit_rate", "false_hit_rate")}

    lines = [f"semantic cache on {data.name}: {int(metrics['n_cached'])} claims cached, "
             f"{len(test.probes)} probes ({int(pos.sum())} near-repeats, {int((~pos).sum())} distinct claims)",
             f"threshold {threshold:.2f} chosen on the train claims (false-hit rate "
             f"{metrics['tune.false_hit_rate']:.3f} <= target {cfg.target_false_hit})",
             f"near-repeat hit rate {hit_ci.mean:.3f} [{hit_ci.low:.3f}, {hit_ci.high:.3f}]; "
             f"false-hit rate {metrics['false_hit_rate']:.3f} [{metrics['false_hit_rate.low']:.3f}, "
             f"{metrics['false_hit_rate.high']:.3f}] (top-{cfg.k} overlap < {cfg.overlap_bound}); "
             f"distinct claims served {metrics['distinct_hit_rate']:.3f}",
             "hit rate by probe kind: " + ", ".join(f"{k}: {metrics[f'hit_rate.{k}']:.3f}"
                                                    for k in ("repeat", *EDITS) if f"hit_rate.{k}" in metrics),
             f"reworded probes served: semantic {metrics['semantic.reworded_hit_rate']:.3f} vs exact-string "
             f"cache {metrics['exact_cache.reworded_hit_rate']:.3f}",
             f"latency per query: fresh {timings['fresh_s_per_query'] * 1e6:.0f} us, through the cache "
             f"{timings['cached_s_per_query'] * 1e6:.0f} us (median of {n} interleaved rounds)",
             f"{'threshold':>9s} {'hit':>6s} {'distinct':>8s} {'false':>6s}"]
    lines += [f"{t:9.2f} {r['hit_rate']:6.3f} {r['distinct_hit_rate']:8.3f} {r['false_hit_rate']:6.3f}"
              for t, r in zip(cfg.thresholds, curve_rows)]
    lines.append(f"invalidation over {cfg.n_updates} document updates (stale hits / hits): " + "; ".join(
        f"{p}: {v['stale_hits']} / {v['hits']}" for p, v in inval.items()))
    lines.append("encoder loss per epoch: " + ", ".join(f"{x:.3f}" for x in losses))

    return ItemResult(
        item=ITEMS[0], metrics={metric_key(k): v for k, v in metrics.items()}, timings=timings,
        series=series, figures={"threshold_curve.png": fig}, texts={"semantic_cache.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.at_least("near-repeats of cached claims (the claim again, one word dropped, swapped, "
                             "replaced by a synonym or re-cased) are served from the cache at the threshold "
                             "chosen on the train claims (lower end of the 95% interval); an encoder that "
                             "moves with every edit, or a threshold too strict, fails it",
                             "hit_rate_low", hit_ci.low, c.min_hit_rate),
            Finding.at_most("few hits are false: a served result overlaps the probe's fresh top-"
                            f"{cfg.k} by at least {cfg.overlap_bound} (upper end of the 95% interval over hits); "
                            "a threshold too loose, or an encoder that maps distinct claims together, fails it",
                            "false_hit_rate_high", false_ci.high if false_ci else 0.0, c.max_false_hit_rate),
            Finding.at_least("the semantic cache serves more reworded probes than an exact-string cache "
                             "(lowercased, whitespace collapsed; paired per probe, lower end of the 95% interval)",
                             "gain_over_exact_low", gain.low, c.min_gain_over_exact),
            Finding.timing_ratio("serving the probe stream through the cache (encode, scan the cache, fresh "
                                 "retrieval on a miss) is faster than fresh retrieval for every probe",
                                 "speedup", times["fresh"], times["cached"], c.min_speedup),
            Finding.at_most("with version stamps and the score bound, no stale result is served after "
                            f"{cfg.n_updates} document updates (hits whose result differs from fresh retrieval)",
                            "stale_hits", inval["versions+bound"]["stale_hits"], c.max_stale_hits, kind=INVARIANT),
            Finding.at_most("an exact repeat of a cached claim is always served, with the fresh result",
                            "repeat_misses", repeat_misses, 0.0, kind=INVARIANT),
            Finding.at_least("control: the same cache without invalidation serves stale results after the "
                             "same updates (so the staleness check can fail)", "stale_hits_no_invalidation",
                             inval["none"]["stale_hits"], c.min_stale_hits_control),
        ])
