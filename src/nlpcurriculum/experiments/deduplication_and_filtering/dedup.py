"""Experiment of stage ``dedup``: item ``deduplication-and-filtering/1``, MinHash LSH checked.

:func:`run` runs MinHash + LSH on a corpus with planted duplicates and ground-truth
clusters (pairwise precision / recall / F1), compares its Jaccard estimates with ``datasketch``
(the reference implementation), and measures the LSH S-curve on pairs of known Jaccard against
the theory 1 - (1 - s^r)^b (Leskovec et al., *Mining of Massive Datasets*, ch. 3.4).

It takes the stage's already-computed tables (:func:`~nlpcurriculum.data.cleaning.dedup_documents`)
for the real-corpus numbers and builds its benchmark itself; it returns an
:class:`~nlpcurriculum.results.ItemResult`. Left out: the downstream effect of deduplication on a
model (item 3 of the section, :mod:`.dedup_impact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.data.cleaning import DedupTables
from nlpcurriculum.data.lsh import (
    DedupConfig,
    deduplicate,
    empirical_s_curve,
    pairwise_cluster_scores,
    s_curve,
    shares_a_band,
)
from nlpcurriculum.data.minhash import MinHashConfig, MinHasher, estimate_jaccard, shingles
from nlpcurriculum.data.synthetic.base import as_rng
from nlpcurriculum.data.synthetic.duplicates import (
    DuplicatesConfig,
    make_near_duplicate,
    pseudo_vocabulary,
    random_documents,
)
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = ["ITEMS", "DedupStageConfig", "Inputs", "run", "s_curve_pairs"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("deduplication-and-filtering/1",)


@dataclass
class DedupChecks:
    """Bounds of the findings that no knob above sets (params ``dedup.checks``).

    Attributes:
        min_benchmark_f1: pairwise F1 of the recovered clusters against the planted ones.
        parity_sds: with ``hash_fn`` "fast" (another shingle hash than datasketch's), the allowed
            max |ours - datasketch| Jaccard estimate, in standard deviations of the difference of
            two independent estimates at the lowest planted Jaccard. With "sha1" the signatures
            themselves must be equal (an invariant with bound 0).
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


def _datasketch_signatures(texts: list[str], cfg: DedupConfig) -> np.ndarray:
    """datasketch's MinHash hash values of each text, on the same shingle sets as ours: ``(n, P)``."""
    from datasketch import MinHash

    mh = cfg.minhash
    scheme = {"mersenne61": "legacy", "affine32": "affine32"}[mh.scheme]
    sets = [[s.encode("utf-8") for s in shingles(t, mh)] for t in texts]
    out = MinHash.bulk(sets, num_perm=mh.num_perm, seed=mh.seed, scheme=scheme) if sets else []
    return np.array([m.hashvalues for m in out], dtype=np.uint64).reshape(len(texts), mh.num_perm)


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


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the dedup stage's result on the real corpus (its counts are reported)."""

    tables: DedupTables


def run(cfg: DedupStageConfig, inputs: Inputs) -> list[ItemResult]:
    """Benchmark MinHash LSH against ground truth, datasketch and the S-curve theory.

    Args:
        cfg: the stage configuration.
        inputs: the real corpus's dedup tables.

    Returns:
        ``[item 1]``.
    """
    real = inputs.tables
    import matplotlib.pyplot as plt

    from nlpcurriculum.data.synthetic.duplicates import inject_duplicates

    lsh = cfg.lsh
    res = ItemResult(ITEMS[0])
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
    ref_a = _datasketch_signatures([a for a, _, _ in near], lsh)
    ref_b = _datasketch_signatures([c for _, c, _ in near], lsh)
    ref = np.reshape(estimate_jaccard(ref_a, ref_b), -1)  # datasketch's jaccard(): share of equal values
    mismatches = int((sig_a.astype(np.uint64) != ref_a).sum() + (sig_b.astype(np.uint64) != ref_b).sum())
    true_j = np.array([j for _, _, j in near])
    diff = float(np.max(np.abs(ours - ref))) if len(near) else 0.0
    p = lsh.minhash.num_perm
    # Two independent estimates of J differ with standard deviation sqrt(2 J (1 - J) / P); at the
    # lowest planted J (the widest case) checks.parity_sds (3) of those is the tolerance of the
    # hash_fn "fast" comparison. Identical hashing (hash_fn "sha1") is checked bit for bit instead.
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
    if lsh.minhash.hash_fn == "sha1":  # datasketch's own shingle hash: the signatures must be equal
        res.metrics["parity.signature_mismatches"] = mismatches
        res.findings.append(Finding.invariant(
            f"our MinHash signatures equal datasketch's bit for bit (hash_fn sha1, scheme "
            f"{lsh.minhash.scheme}; differing hash values over {len(near)} pairs)",
            "parity.signature_mismatches", mismatches, mismatches == 0, threshold=0))
    else:  # another shingle hash: two independent estimates, equal only within sampling error
        res.findings.append(Finding.at_most(
            "our MinHash Jaccard estimates agree with datasketch within sampling error "
            f"({cfg.checks.parity_sds:g} sd of the difference of two estimates)", "parity.max_abs_diff",
            diff, float(tol), kind=INVARIANT))

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
        cfg.checks.max_scurve_z, kind=INVARIANT))

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
    return [res]
