"""Experiment of stage ``synthetic``: item ``synthetic-data/1``, the toy task corpora checked.

:func:`run` checks each step of
:func:`~nlpcurriculum.data.synthetic.corpora.build_task_corpus` (noise, planted duplicates, dedup,
eval splits) on the corpora the stage built: dedup recall on the planted duplicates, no near
duplicate across splits, and the measured typo rate against the configured one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.lsh import deduplicate, pairwise_cluster_scores
from nlpcurriculum.data.minhash import jaccard, shingles
from nlpcurriculum.data.synthetic.corpora import SyntheticCorporaConfig, TaskCorpus
from nlpcurriculum.results import INVARIANT, Finding, ItemResult

__all__ = ["ITEMS", "Inputs", "SyntheticCorporaConfig", "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("synthetic-data/1",)


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads: the corpora the stage built, by task."""

    corpora: dict[str, TaskCorpus]


def run(cfg: SyntheticCorporaConfig, inputs: Inputs) -> list[ItemResult]:
    """Check each step of :func:`~nlpcurriculum.data.synthetic.corpora.build_task_corpus`.

    Args:
        cfg: the stage configuration (the library's
            :class:`~nlpcurriculum.data.synthetic.corpora.SyntheticCorporaConfig`).
        inputs: the task corpora.

    Returns:
        ``[item 1]``.

    Findings: dedup finds the planted duplicates (pairwise recall against the ground truth),
    no near duplicate spans two splits (a fresh LSH pass over the union of the splits), and the
    measured typo rate matches the configured one within ``checks.max_typo_rate_z`` binomial
    standard errors.
    """
    import matplotlib.pyplot as plt

    from nlpcurriculum.data.synthetic.corpora import SPLIT_NAMES
    from nlpcurriculum.data.synthetic.noise import KEYBOARD_NEIGHBOURS

    corpora = inputs.corpora
    res = ItemResult(ITEMS[0])
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
        "splits)", "cross_split_near_duplicates", leaks, cfg.checks.max_cross_split_near_duplicates,
        kind=INVARIANT))
    p = cfg.noise.typo_rate
    measured = typos / max(eligible, 1)
    z = abs(measured - p) / np.sqrt(max(p * (1 - p), 1e-12) / max(eligible, 1))
    res.metrics.update({"noise.typo_rate_configured": p, "noise.typo_rate_measured": measured,
                        "noise.typo_rate_z": float(z), "noise.eligible_chars": eligible,
                        "noise.noisy_fraction_configured": cfg.noisy_fraction,
                        "noise.noisy_fraction_measured": noisy / max(total, 1)})
    res.findings.append(Finding.at_most(
        f"the measured typo rate equals the configured one within {cfg.checks.max_typo_rate_z:g} "
        "binomial standard errors", "noise.typo_rate_z", float(z), cfg.checks.max_typo_rate_z,
        kind=INVARIANT))

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
    return [res]
