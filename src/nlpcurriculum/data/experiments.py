"""Experiments of the data-cleaning items: each checks its expected finding against a measurement.

* ``deduplication-and-filtering/1`` (:func:`dedup_experiment`): MinHash + LSH on a corpus with
  planted duplicates and ground-truth clusters (pairwise precision / recall / F1), Jaccard
  estimates against ``datasketch`` (the reference implementation), and the LSH S-curve measured
  on pairs of known Jaccard against the theory 1 - (1 - s^r)^b (Leskovec et al., *Mining of
  Massive Datasets*, ch. 3.4).
* ``deduplication-and-filtering/2`` (:func:`filter_experiment`): Gopher heuristics (Rae et al.
  2021, arXiv:2112.11446) and a CCNet-style Kneser-Ney perplexity filter (arXiv:1911.00359) on
  the real corpus, plus injected junk made from held-out clean documents (word-shuffled,
  character garbage, one line repeated): the rank AUC of perplexity (junk vs clean) and the drop
  rates of each filter family.

Both take the stage's already-computed tables (:mod:`.cleaning`) for the real-corpus numbers and
build their benchmarks themselves; they return :class:`~nlpcurriculum.results.ItemResult`.
Left out: downstream-task impact of cleaning (item 3 of the section).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.data.cleaning import (
    DedupTables,
    FilterTables,
    PerplexityStageConfig,
    heuristic_reasons,
)
from nlpcurriculum.data.filters import QualityFilterConfig
from nlpcurriculum.data.lsh import (
    DedupConfig,
    deduplicate,
    empirical_s_curve,
    pairwise_cluster_scores,
    s_curve,
    shares_a_band,
)
from nlpcurriculum.data.minhash import (
    MinHashConfig,
    MinHasher,
    estimate_jaccard,
    jaccard,
    shingles,
)
from nlpcurriculum.data.synthetic.base import as_rng
from nlpcurriculum.data.synthetic.duplicates import (
    DuplicatesConfig,
    make_near_duplicate,
    pseudo_vocabulary,
    random_documents,
)
from nlpcurriculum.results import Finding, ItemResult

DEDUP_ITEM = "deduplication-and-filtering/1"
FILTER_ITEM = "deduplication-and-filtering/2"


# ---------------------------------------------------------------------------------------------
# Item 1: MinHash LSH
# ---------------------------------------------------------------------------------------------


@dataclass
class DedupChecks:
    """Bounds of the findings that no knob above sets (params ``dedup.checks``).

    Attributes:
        min_benchmark_f1: pairwise F1 of the recovered clusters against the planted ones.
        parity_sds: allowed max |ours - datasketch| Jaccard estimate, in standard deviations of the
            difference of two independent estimates at the lowest planted Jaccard.
        max_scurve_z: largest deviation of a bin's measured LSH candidate rate from the S-curve, in
            binomial standard errors.
    """

    min_benchmark_f1: float = 0.95
    parity_sds: float = 3.0
    max_scurve_z: float = 4.0


@dataclass
class DedupStageConfig:
    """The ``dedup`` section of params/deduplication_and_filtering.yaml.

    Attributes:
        lsh: the deduplication run on the real corpus and on the benchmark.
        benchmark: the planted-duplicates corpus (near copies at Jaccard in
            [jaccard_low, jaccard_high], hard negatives at [related_low, related_high]).
        scurve_pairs: document pairs of known Jaccard (uniform in [0.05, 1]) for the S-curve.
        parity_pairs: near-duplicate pairs compared with datasketch.
        seed: seeds the benchmark and the S-curve pairs.
        checks: the other bounds of the findings.
    """

    lsh: DedupConfig = field(default_factory=DedupConfig)
    benchmark: DuplicatesConfig = field(
        default_factory=lambda: DuplicatesConfig(n_originals=1000, n_exact=100, n_near=200,
                                                 n_related=100)
    )
    scurve_pairs: int = 600
    parity_pairs: int = 100
    seed: int = 0
    checks: DedupChecks = field(default_factory=DedupChecks)

    def __post_init__(self) -> None:
        if self.scurve_pairs < 10 or self.parity_pairs < 1:
            raise ValueError("need scurve_pairs >= 10 and parity_pairs >= 1")


def _datasketch_estimates(pairs: list[tuple[str, str]], cfg: DedupConfig) -> np.ndarray:
    """datasketch's Jaccard estimate for each pair, on the same shingle sets as ours."""
    from datasketch import MinHash

    mh = cfg.minhash
    scheme = {"mersenne61": "legacy", "affine32": "affine32"}[mh.scheme]
    out = []
    for a, b in pairs:
        sa, sb = (
            MinHash.bulk([[s.encode("utf-8") for s in shingles(t, mh)]], num_perm=mh.num_perm,
                         seed=mh.seed, scheme=scheme)[0]
            for t in (a, b)
        )
        out.append(sa.jaccard(sb))
    return np.asarray(out)


def s_curve_pairs(
    n: int, seed: int, bench: DuplicatesConfig
) -> tuple[list[str], list[str], np.ndarray]:
    """n (original, edited copy) pairs with target Jaccard uniform in [0.05, 1] and measured J."""
    rng = as_rng(seed)
    originals = random_documents(n, rng, bench.vocab_size, bench.min_words, bench.max_words)
    vocab = pseudo_vocabulary(bench.vocab_size, rng)
    copies, true_j = [], []
    for doc in originals:
        text, j = make_near_duplicate(doc, float(rng.uniform(0.05, 1.0)), rng, vocab,
                                      MinHashConfig(k=bench.k))
        copies.append(text)
        true_j.append(j)
    return originals, copies, np.asarray(true_j)


def dedup_experiment(real: DedupTables, cfg: DedupStageConfig) -> ItemResult:
    """Benchmark MinHash LSH against ground truth, datasketch and the S-curve theory.

    Args:
        real: the dedup stage's result on the real corpus (its counts are reported).
        cfg: the stage configuration.
    """
    import matplotlib.pyplot as plt

    from nlpcurriculum.data.synthetic.duplicates import inject_duplicates

    lsh = cfg.lsh
    res = ItemResult(DEDUP_ITEM)
    b, r = real.result.bands, real.result.rows
    res.metrics.update({f"real.{k}": int(v) for k, v in real.counts.items()})
    res.metrics.update({"lsh.bands": b, "lsh.rows": r})

    # 1. Planted duplicates with ground-truth clusters.
    records = inject_duplicates(cfg.benchmark, cfg.seed)
    bench = deduplicate([x["text"] for x in records], lsh)
    truth = np.array([x["cluster"] for x in records])
    scores = pairwise_cluster_scores(bench.cluster, truth)
    kinds = np.array([x["kind"] for x in records])
    for key in ("precision", "recall", "f1"):
        res.metrics[f"benchmark.{key}"] = float(scores[key])
    res.metrics["benchmark.documents"] = len(records)
    res.metrics["benchmark.dropped"] = int((~bench.keep).sum())
    planted = int(np.isin(kinds, ["exact", "near"]).sum())
    res.metrics["benchmark.planted_duplicates"] = planted
    # A related document ("hard negative", J <= related_high) that was dropped is a false merge.
    res.metrics["benchmark.related_dropped"] = int((~bench.keep & (kinds == "related")).sum())
    res.findings.append(Finding.at_least(
        "MinHash LSH recovers planted near duplicates (Jaccard >= 0.8) with pairwise F1 >= "
        f"{cfg.checks.min_benchmark_f1:g} against ground-truth clusters", "benchmark.f1", scores["f1"],
        cfg.checks.min_benchmark_f1))

    # 2. Agreement with datasketch on near-duplicate pairs.
    source_of = {x["cluster"]: x["text"] for x in records if x["kind"] == "original"}
    near = [(source_of[x["cluster"]], x["text"], x["jaccard"]) for x in records
            if x["kind"] == "near"][: cfg.parity_pairs]
    hasher = MinHasher(lsh.minhash)
    sig_a = hasher.signatures([a for a, _, _ in near])
    sig_b = hasher.signatures([c for _, c, _ in near])
    ours = np.reshape(estimate_jaccard(sig_a, sig_b), -1)
    ref = _datasketch_estimates([(a, c) for a, c, _ in near], lsh)
    true_j = np.array([j for _, _, j in near])
    diff = float(np.max(np.abs(ours - ref))) if len(near) else 0.0
    p = lsh.minhash.num_perm
    # Two independent estimates of J differ with standard deviation sqrt(2 J (1 - J) / P); at the
    # lowest planted J (the widest case) checks.parity_sds (3) of those is the tolerance. Identical
    # hashing (hash_fn "sha1") must give exactly 0.
    j_low = cfg.benchmark.jaccard_low
    tol = cfg.checks.parity_sds * np.sqrt(2.0 * j_low * (1.0 - j_low) / p)
    res.metrics.update({
        "parity.pairs": len(near),
        "parity.max_abs_diff": diff,
        "parity.tolerance": float(tol),
        "parity.ours_mae_vs_true": float(np.mean(np.abs(ours - true_j))) if len(near) else 0.0,
        "parity.datasketch_mae_vs_true": float(np.mean(np.abs(ref - true_j))) if len(near) else 0.0,
        "parity.sampling_sd_at_jaccard_low": float(np.sqrt(j_low * (1 - j_low) / p)),
    })
    res.findings.append(Finding.at_most(
        "our MinHash Jaccard estimates agree with datasketch within sampling error "
        f"({cfg.checks.parity_sds:g} sd of the difference of two estimates)", "parity.max_abs_diff",
        diff, float(tol)))

    # 3. The S-curve, measured on pairs of known Jaccard.
    a_docs, c_docs, j = s_curve_pairs(cfg.scurve_pairs, cfg.seed + 1, cfg.benchmark)
    collided = shares_a_band(hasher.signatures(a_docs), hasher.signatures(c_docs), b, r)
    centers, rate, counts = empirical_s_curve(j, collided, bins=10)
    expected_p = s_curve(j, b, r)  # (n,) each pair's own theoretical probability
    bins = np.clip(np.searchsorted(np.linspace(0, 1, 11), j, side="right") - 1, 0, 9)
    z_max = 0.0
    for k in range(10):
        m = bins == k
        if m.sum() < 10:
            continue
        mean_p = expected_p[m].mean()
        sd = np.sqrt(np.sum(expected_p[m] * (1 - expected_p[m]))) / m.sum()
        z = abs(collided[m].mean() - mean_p) / max(sd, 1e-3 / m.sum())
        z_max = max(z_max, float(z))
    res.metrics["scurve.pairs"] = int(len(j))
    res.metrics["scurve.max_z"] = z_max
    res.findings.append(Finding.at_most(
        "the measured LSH candidate rate follows the theoretical S-curve 1 - (1 - s^r)^b "
        "(largest bin deviation in binomial standard errors)", "scurve.max_z", z_max,
        cfg.checks.max_scurve_z))

    fig, ax = plt.subplots(figsize=(6, 4))
    s = np.linspace(0, 1, 201)
    ax.plot(s, s_curve(s, b, r), label=f"theory b={b}, r={r}")
    ok = counts > 0
    err = np.sqrt(np.where(ok, rate * (1 - rate) / np.maximum(counts, 1), 0))
    ax.errorbar(centers[ok], rate[ok], yerr=err[ok], fmt="o", label="measured (binned pairs)")
    ax.axvline(lsh.threshold, ls="--", c="gray", label=f"threshold {lsh.threshold}")
    ax.set(xlabel="true Jaccard similarity s", ylabel="P(candidate pair)",
           title="LSH S-curve: theory vs measured")
    ax.legend()
    res.figures["s_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(true_j, ref, s=12, label="datasketch", marker="x")
    ax.scatter(true_j, ours, s=12, label="ours", facecolors="none", edgecolors="C1")
    lo = min(true_j.min(), ours.min(), ref.min()) if len(near) else 0.0
    ax.plot([lo, 1], [lo, 1], c="gray", lw=1)
    ax.set(xlabel="true Jaccard", ylabel="MinHash estimate", title="Jaccard estimates")
    ax.legend()
    res.figures["jaccard_parity.png"] = fig
    return res


# ---------------------------------------------------------------------------------------------
# Item 2: perplexity and heuristic filters
# ---------------------------------------------------------------------------------------------


@dataclass
class FilterChecks:
    """Bounds of the findings that no knob above sets (params ``filter.checks``).

    Attributes:
        min_clean_keep_rate: share of the clean documents (``clean_sources``) the heuristic rules
            keep.
        min_shuffled_perplexity_auc: rank AUC of word-shuffled junk's perplexity over the clean
            documents'.
        min_combined_drop_rate: share of all injected junk that heuristics + perplexity drop.
        min_loud_junk_drop_rate: share of garbage and repeated-line junk the heuristic rules drop.
    """

    min_clean_keep_rate: float = 0.85
    min_shuffled_perplexity_auc: float = 0.9
    min_combined_drop_rate: float = 0.9
    min_loud_junk_drop_rate: float = 0.9


@dataclass
class FilterStageConfig:
    """The ``filter`` section of params/deduplication_and_filtering.yaml.

    Attributes:
        quality: the heuristic rules' thresholds.
        perplexity: the Kneser-Ney perplexity filter and its clean reference.
        clean_sources: sources of curated prose; the share of their documents the heuristic
            rules keep is the "clean keep rate" finding.
        junk_per_kind: injected junk documents per kind (made from held-out clean reference
            documents) for the benchmark.
        seed: seeds the junk.
        checks: the other bounds of the findings.
    """

    quality: QualityFilterConfig = field(default_factory=QualityFilterConfig)
    perplexity: PerplexityStageConfig = field(default_factory=PerplexityStageConfig)
    clean_sources: list[str] = field(default_factory=lambda: ["pydoc_topics"])
    junk_per_kind: int = 50
    seed: int = 0
    checks: FilterChecks = field(default_factory=FilterChecks)

    def __post_init__(self) -> None:
        if self.junk_per_kind < 1:
            raise ValueError(f"junk_per_kind must be >= 1, got {self.junk_per_kind}")


JUNK_KINDS = ("shuffled", "garbage", "repeated_line")
_GARBAGE_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789#@$%&*/=+<>|~^_"))


def make_junk(text: str, kind: str, rng: np.random.Generator) -> str:
    """A junk version of ``text`` with the same word count.

    ``shuffled``: the same words in random order (every heuristic statistic is unchanged, only
    word order is broken); ``garbage``: random strings of letters, digits and symbols;
    ``repeated_line``: the first 12 words repeated (boilerplate, spam).
    """
    words = text.split()
    n = len(words)
    if kind == "shuffled":
        return " ".join(words[i] for i in rng.permutation(n))
    if kind == "garbage":
        lengths = rng.integers(1, 11, size=n)
        chars = _GARBAGE_CHARS[rng.integers(len(_GARBAGE_CHARS), size=int(lengths.sum()))]
        out, pos = [], 0
        for length in lengths.tolist():
            out.append("".join(chars[pos : pos + length]))
            pos += length
        return " ".join(out)
    if kind == "repeated_line":
        line = " ".join(words[:12])
        return "\n".join([line] * max(1, n // 12))
    raise ValueError(f"unknown junk kind {kind!r} (known: {JUNK_KINDS})")


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def filter_experiment(docs_texts: list[str], sources: list[str], real: FilterTables,
                      cfg: FilterStageConfig) -> ItemResult:
    """Filter the real corpus's report plus the injected-junk benchmark.

    Args:
        docs_texts: the filter stage's input texts (same order as ``real``'s arrays).
        sources: their sources.
        real: the filter stage's result.
        cfg: the stage configuration.
    """
    import matplotlib.pyplot as plt

    res = ItemResult(FILTER_ITEM)
    n = len(docs_texts)
    res.metrics.update({f"real.{k}": int(v) for k, v in real.counts.items()})
    res.metrics["real.documents"] = n
    res.metrics["real.kept_fraction"] = real.counts["kept"] / n
    res.metrics["perplexity.threshold"] = real.threshold

    # Clean keep rate: curated prose (clean_sources); how much of it do the rules keep?
    ref_mask = real.is_reference
    clean_mask = np.isin(np.asarray(sources), cfg.clean_sources)
    heur = np.array([r is None for r in heuristic_reasons(
        [t for t, m in zip(docs_texts, clean_mask) if m], cfg.quality)])
    clean_keep = float(heur.mean()) if heur.size else float("nan")
    res.metrics["clean.documents"] = int(clean_mask.sum())
    res.metrics["clean.heuristic_keep_rate"] = clean_keep
    res.findings.append(Finding.at_least(
        f"the heuristic rules keep >= {cfg.checks.min_clean_keep_rate:.0%} of the clean documents "
        f"({', '.join(cfg.clean_sources)})", "clean.heuristic_keep_rate", clean_keep,
        cfg.checks.min_clean_keep_rate))

    # Junk benchmark: junk made from held-out reference documents, scored by the fold model
    # that never saw the source document, so clean and junk are judged by the same model.
    rng = as_rng(cfg.seed)
    ref_idx = np.flatnonzero(ref_mask & np.isfinite(real.perplexity))
    pick = rng.permutation(ref_idx)[: cfg.junk_per_kind]
    clean_ppl = real.perplexity[pick]
    junk_heur_drop: dict[str, float] = {}
    junk_ppl: dict[str, np.ndarray] = {}
    folds = {int(i): int(real.fold[i]) for i in pick} if real.fold_filters else None
    for kind in JUNK_KINDS:
        junk = [make_junk(docs_texts[i], kind, rng) for i in pick.tolist()]
        reasons = heuristic_reasons(junk, cfg.quality)
        dropped = np.array([r is not None for r in reasons])
        junk_heur_drop[kind] = float(dropped.mean()) if len(junk) else float("nan")
        res.metrics[f"junk.{kind}.heuristic_drop_rate"] = junk_heur_drop[kind]
        if folds is not None:
            ppl = np.array([real.fold_filters[folds[int(i)]].doc_perplexity(t)
                            for i, t in zip(pick.tolist(), junk)])
            junk_ppl[kind] = ppl
            auc = rank_auc(ppl, clean_ppl)
            res.metrics[f"junk.{kind}.perplexity_auc"] = auc
            combined = dropped | ~(ppl <= real.threshold)
            res.metrics[f"junk.{kind}.combined_drop_rate"] = float(combined.mean())
    res.metrics["junk.per_kind"] = int(len(pick))
    if folds is not None:
        res.findings.append(Finding.at_least(
            "word-shuffled documents get higher Kneser-Ney perplexity than the clean documents "
            "they came from (rank AUC)", "junk.shuffled.perplexity_auc",
            res.metrics["junk.shuffled.perplexity_auc"], cfg.checks.min_shuffled_perplexity_auc))
        combined_all = np.mean([res.metrics[f"junk.{k}.combined_drop_rate"] for k in JUNK_KINDS])
        res.metrics["junk.all.combined_drop_rate"] = float(combined_all)
        res.findings.append(Finding.at_least(
            f"heuristics + perplexity drop >= {cfg.checks.min_combined_drop_rate:.0%} of all injected "
            "junk", "junk.all.combined_drop_rate", combined_all, cfg.checks.min_combined_drop_rate))
    loud = np.mean([junk_heur_drop[k] for k in ("garbage", "repeated_line")])
    res.metrics["junk.garbage_and_repeated.heuristic_drop_rate"] = float(loud)
    res.findings.append(Finding.at_least(
        f"the heuristic rules drop >= {cfg.checks.min_loud_junk_drop_rate:.0%} of garbage and "
        "repeated-line junk", "junk.garbage_and_repeated.heuristic_drop_rate", loud,
        cfg.checks.min_loud_junk_drop_rate))

    # Figures: drops per reason, and the perplexity histogram with the threshold.
    fig, ax = plt.subplots(figsize=(6, 4))
    items = sorted(((k, v) for k, v in real.counts.items() if k != "kept"), key=lambda kv: -kv[1])
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1])
    ax.set(xlabel="documents dropped", title=f"filter: drops per reason ({real.counts['kept']} of "
           f"{n} kept)")
    res.figures["drops_per_reason.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 4))
    scored = np.isfinite(real.perplexity)
    all_ppl = [real.perplexity[scored & ref_mask], real.perplexity[scored & ~ref_mask],
               *junk_ppl.values()]
    finite = np.concatenate([x[np.isfinite(x)] for x in all_ppl if len(x)])
    if finite.size:
        edges = np.geomspace(max(finite.min(), 1.0), finite.max() * 1.01, 40)
        ax.hist(all_ppl[0], bins=edges, alpha=0.6, label="reference (held-out fold)")
        if len(all_ppl[1]):
            ax.hist(all_ppl[1], bins=edges, alpha=0.6, label="other sources")
        for kind, ppl in junk_ppl.items():
            ax.hist(ppl[np.isfinite(ppl)], bins=edges, alpha=0.4, histtype="step", lw=2,
                    label=f"junk: {kind}")
        ax.set_xscale("log")
    if np.isfinite(real.threshold):
        ax.axvline(real.threshold, c="k", ls="--",
                   label=f"threshold (p{cfg.perplexity.percentile:g} of reference)")
    ax.set(xlabel="Kneser-Ney perplexity", ylabel="documents", title="perplexity filter")
    ax.legend(fontsize=7)
    res.figures["perplexity_hist.png"] = fig
    return res



# ---------------------------------------------------------------------------------------------
# synthetic-data/1: toy task corpora with noise, duplicates, dedup and eval splits
# ---------------------------------------------------------------------------------------------

SYNTHETIC_ITEM = "synthetic-data/1"


def synthetic_experiment(corpora: dict, cfg) -> ItemResult:
    """Check each step of :func:`~nlpcurriculum.data.synthetic.corpora.build_task_corpus`.

    Args:
        corpora: task -> :class:`~nlpcurriculum.data.synthetic.corpora.TaskCorpus`.
        cfg: the :class:`~nlpcurriculum.data.synthetic.corpora.SyntheticCorporaConfig`.

    Findings: dedup finds the planted duplicates (pairwise recall against the ground truth),
    no near duplicate spans two splits (a fresh LSH pass over the union of the splits), and the
    measured typo rate matches the configured one within ``checks.max_typo_rate_z`` binomial
    standard errors.
    """
    import matplotlib.pyplot as plt

    from nlpcurriculum.data.synthetic.corpora import SPLIT_NAMES
    from nlpcurriculum.data.synthetic.noise import KEYBOARD_NEIGHBOURS

    res = ItemResult(SYNTHETIC_ITEM)
    recalls, leaks, typos, eligible, noisy, total = [], 0, 0, 0, 0, 0
    rows = []
    for task, corpus in corpora.items():
        truth = np.array([r["dup_of"] if r["dup_of"] >= 0 else i
                          for i, r in enumerate(corpus.records)])
        scores = pairwise_cluster_scores(corpus.cluster, truth)
        planted_idx = np.flatnonzero(truth != np.arange(len(truth)))
        planted = len(planted_idx)
        # Recall where the claim applies: planted copies whose true Jaccard with their source is
        # >= checks.near_duplicate_jaccard (one letter changed in a 20-character copy task is not a
        # near duplicate).
        mh = cfg.lsh.minhash
        true_j = np.array([jaccard(shingles(corpus.records[i]["text"], mh),
                                   shingles(corpus.records[truth[i]]["text"], mh))
                           for i in planted_idx])
        found = corpus.cluster[planted_idx] == corpus.cluster[truth[planted_idx]]
        above = true_j >= cfg.checks.near_duplicate_jaccard
        recalls.append(float(found[above].mean()) if above.any() else 1.0)
        res.metrics[f"{task}.planted_above_threshold"] = int(above.sum())
        res.metrics[f"{task}.recall_above_threshold"] = recalls[-1]
        res.metrics[f"{task}.dedup_recall"] = float(scores["recall"])
        res.metrics[f"{task}.dedup_precision"] = float(scores["precision"])
        res.metrics[f"{task}.planted_duplicates"] = planted
        res.metrics[f"{task}.dropped"] = int((~corpus.keep).sum())
        # Leakage: every survivor, all splits together, deduplicated again.
        texts, split_of_text = [], []
        for name in SPLIT_NAMES:
            texts += [r["text"] for r in corpus.splits[name]]
            split_of_text += [name] * len(corpus.splits[name])
            res.metrics[f"{task}.{name}"] = len(corpus.splits[name])
        again = deduplicate(texts, cfg.lsh)
        split_arr = np.array(split_of_text)
        cross = int(np.sum(split_arr != split_arr[again.cluster]))
        leaks += cross
        res.metrics[f"{task}.cross_split_near_duplicates"] = cross
        originals = [r for r in corpus.records if r["dup_of"] < 0]
        for r in originals:
            total += 1
            if r["is_noisy"]:
                noisy += 1
                typos += r["n_typos"]
                eligible += sum(1 for c in r["clean_text"] if KEYBOARD_NEIGHBOURS.get(c.lower()))
        rows.append((task, len(corpus.records), planted, int((~corpus.keep).sum()),
                     *(len(corpus.splits[n]) for n in SPLIT_NAMES)))
    recall = float(np.min(recalls))
    res.metrics["dedup_recall_above_threshold_min"] = recall
    res.findings.append(Finding.at_least(
        f"MinHash LSH removes the planted duplicates (true Jaccard >= "
        f"{cfg.checks.near_duplicate_jaccard:g}) of every task corpus (lowest recall over tasks)",
        "dedup_recall_above_threshold_min", recall, cfg.checks.min_dedup_recall))
    res.metrics["cross_split_near_duplicates"] = leaks
    res.findings.append(Finding.at_most(
        "no near duplicate is shared between train, val and test (fresh LSH pass over all "
        "splits)", "cross_split_near_duplicates", leaks, cfg.checks.max_cross_split_near_duplicates))
    p = cfg.noise.typo_rate
    measured = typos / max(eligible, 1)
    z = abs(measured - p) / np.sqrt(max(p * (1 - p), 1e-12) / max(eligible, 1))
    res.metrics.update({"noise.typo_rate_configured": p, "noise.typo_rate_measured": measured,
                        "noise.typo_rate_z": float(z), "noise.eligible_chars": eligible,
                        "noise.noisy_fraction_configured": cfg.noisy_fraction,
                        "noise.noisy_fraction_measured": noisy / max(total, 1)})
    res.findings.append(Finding.at_most(
        f"the measured typo rate equals the configured one within {cfg.checks.max_typo_rate_z:g} "
        "binomial standard errors", "noise.typo_rate_z", float(z), cfg.checks.max_typo_rate_z))

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r[0] for r in rows]
    x = np.arange(len(rows))
    for k, label in enumerate(["records", "planted duplicates", "dropped by dedup", "train",
                               "val", "test"]):
        ax.bar(x + (k - 2.5) * 0.13, [r[k + 1] for r in rows], width=0.13, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="records", title="synthetic task corpora")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    res.figures["corpora.png"] = fig
    return res
