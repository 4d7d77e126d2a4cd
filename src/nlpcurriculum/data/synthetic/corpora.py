"""Task corpora for the pipeline: generate, add noise, plant duplicates, dedupe, split.

For each task family (arithmetic, kv_recall, copy/reverse, instructions, preferences,
classification, stories) :func:`build_task_corpus`:

1. generates ``n`` records and renders each as one training ``text`` (the generator's fields are
   kept, so evaluation can use the structured answer);
2. adds noise (:mod:`.noise`: keyboard typos, letter swaps, word shuffles) to the ``text`` of a
   ``noisy_fraction`` of records, keeping ``clean_text`` and the edit counts (ground truth);
3. plants duplicates: a ``duplicate_fraction`` of records is added again, half verbatim and half
   with one character edited, each remembering its source (``dup_of``);
4. deduplicates all texts with MinHash + LSH (:mod:`nlpcurriculum.data.lsh`; character
   shingles, since many task texts are a line or two);
5. splits the survivors train/val/test by a hash of the text (so a split never depends on
   generation order) -- after dedup, so no near duplicate can sit on both sides of a split.

The result keeps enough ground truth to check each step: which records were planted copies
(recall of dedup), the noise counts (the measured noise rate against the configured one), and
the split of every survivor (a cross-split near-duplicate search finds leakage if any).

Left out: paraphrase duplicates, class-balanced splits and per-task difficulty curricula.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.data.lsh import DedupConfig, deduplicate
from nlpcurriculum.data.minhash import MinHashConfig
from nlpcurriculum.data.synthetic import (
    arithmetic,
    classification,
    instructions,
    kv_recall,
    preferences,
    sequence,
    stories,
)
from nlpcurriculum.data.synthetic.base import as_rng
from nlpcurriculum.data.synthetic.noise import KEYBOARD_NEIGHBOURS, NoiseConfig, apply_noise

TASKS = ("arithmetic", "kv_recall", "copy_reverse", "instructions", "preferences",
         "classification", "stories")  # fmt: skip
SPLIT_NAMES = ("train", "val", "test")


def _generate(task: str, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` records of ``task``, each with a ``text`` rendering."""
    if task == "arithmetic":
        recs = arithmetic.generate(arithmetic.ArithmeticConfig(n=n), rng)
        return [{**r, "text": f"{r['question']}\n{r['solution']}"} for r in recs]
    if task == "kv_recall":
        recs = kv_recall.generate(kv_recall.KVRecallConfig(n=n), rng)
        return [{**r, "text": f"{r['prompt']}{r['answer']}"} for r in recs]
    if task == "copy_reverse":
        return sequence.generate(sequence.SequenceTaskConfig(n=n, task="mixed"), rng)
    if task == "instructions":
        recs = instructions.generate(instructions.InstructionConfig(n=n), rng)
        return [{**r, "text": f"{r['prompt']}\n\n{r['response']}"} for r in recs]
    if task == "preferences":
        recs = preferences.generate(preferences.PreferenceConfig(n=n), rng)
        return [{**r, "text": f"{r['prompt']}\n\n{r['chosen']}"} for r in recs]
    if task == "classification":
        return classification.generate(classification.ClassificationConfig(n=n), rng)
    if task == "stories":
        return [{"text": t} for t in stories.generate_stories(n, rng)]
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


@dataclass
class SyntheticChecks:
    """Bounds of the ``synthetic`` stage's findings (params ``synthetic.checks``).

    Attributes:
        near_duplicate_jaccard: planted copies at least this similar to their source (true Jaccard)
            count as near duplicates for the recall finding.
        min_dedup_recall: lowest recall over tasks of those planted duplicates.
        max_cross_split_near_duplicates: near duplicates a fresh LSH pass finds across train, val
            and test.
        max_typo_rate_z: |measured - configured typo rate| in binomial standard errors.
    """

    near_duplicate_jaccard: float = 0.8
    min_dedup_recall: float = 0.95
    max_cross_split_near_duplicates: float = 0.0
    max_typo_rate_z: float = 4.0


@dataclass
class SyntheticCorporaConfig:
    """The ``synthetic`` section of params/synthetic_data.yaml.

    Attributes:
        tasks: which task corpora to build.
        n_per_task: records generated per task (before duplicates).
        noisy_fraction: share of records whose text gets noise.
        noise: the noise applied to those records.
        duplicate_fraction: share of records planted again as duplicates (half exact, half with
            one character changed).
        val_fraction, test_fraction: split sizes (of the deduplicated records).
        lsh: deduplication; character 5-shingles suit short task texts.
        seed: the one seed every task's stream derives from.
        checks: the other bounds of the findings.
    """

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    n_per_task: int = 1000
    noisy_fraction: float = 0.2
    noise: NoiseConfig = field(default_factory=lambda: NoiseConfig(typo_rate=0.02))
    duplicate_fraction: float = 0.1
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    lsh: DedupConfig = field(
        default_factory=lambda: DedupConfig(threshold=0.7, minhash=MinHashConfig(shingle="char",
                                                                                k=5))
    )
    seed: int = 0
    checks: SyntheticChecks = field(default_factory=SyntheticChecks)

    def __post_init__(self) -> None:
        unknown = set(self.tasks) - set(TASKS)
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if self.n_per_task < 10:
            raise ValueError(f"n_per_task must be >= 10, got {self.n_per_task}")
        for name in ("noisy_fraction", "duplicate_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("need val_fraction, test_fraction >= 0 with a sum below 1")


def _one_char_edit(text: str, rng: np.random.Generator) -> str:
    """Change one letter to a keyboard neighbour (a near duplicate, not an exact one)."""
    spots = [i for i, c in enumerate(text) if KEYBOARD_NEIGHBOURS.get(c.lower())]
    if not spots:
        return text + " ."
    i = spots[int(rng.integers(len(spots)))]
    near = KEYBOARD_NEIGHBOURS[text[i].lower()]
    return text[:i] + near[int(rng.integers(len(near)))] + text[i + 1 :]


def split_of(text: str, seed: int, val: float, test: float) -> str:
    """train / val / test from a hash of the text: u in [0, 1) -> val if u < val, ..."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:8], "big") / 2**64
    return "val" if u < val else "test" if u < val + test else "train"


@dataclass
class TaskCorpus:
    """One task's corpus and its ground truth.

    Attributes:
        splits: records per split (``text``, ``clean_text``, ``is_noisy``, noise counts and the
            generator's fields).
        records: every record before dedup, including planted copies (``dup_of`` is the index
            of the source record, -1 for originals).
        keep: (len(records),) whether dedup kept each record.
        cluster: (len(records),) the kept record of each record's cluster.
    """

    splits: dict[str, list[dict]]
    records: list[dict]
    keep: np.ndarray
    cluster: np.ndarray


def build_task_corpus(task: str, cfg: SyntheticCorporaConfig) -> TaskCorpus:
    """Generate, noise, duplicate, dedupe and split one task (see the module docstring)."""
    rng = as_rng(int(hashlib.sha256(f"{cfg.seed}:{task}".encode()).hexdigest()[:8], 16))
    records = _generate(task, cfg.n_per_task, rng)
    for rec in records:
        rec["clean_text"] = rec["text"]
        rec["dup_of"] = -1
        noisy = bool(rng.random() < cfg.noisy_fraction)
        counts = {"n_shuffles": 0, "n_swaps": 0, "n_typos": 0}
        if noisy:
            out = apply_noise(rec["text"], cfg.noise, rng)
            rec["text"] = out["text"]
            counts = {k: out[k] for k in counts}
        rec.update(counts, is_noisy=noisy)
    n_dup = int(round(cfg.duplicate_fraction * len(records)))
    for j, src in enumerate(rng.choice(len(records), size=n_dup, replace=False).tolist()):
        copy = dict(records[src], dup_of=src)
        if j % 2:  # every other copy is a near duplicate
            copy["text"] = _one_char_edit(copy["text"], rng)
        records.append(copy)
    order = rng.permutation(len(records))  # copies are not next to their source
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    records = [records[i] for i in order.tolist()]
    for rec in records:
        if rec["dup_of"] >= 0:
            rec["dup_of"] = int(inverse[rec["dup_of"]])
    result = deduplicate([r["text"] for r in records], cfg.lsh)
    splits: dict[str, list[dict]] = {name: [] for name in SPLIT_NAMES}
    for rec, kept in zip(records, result.keep.tolist()):
        if kept:
            name = split_of(rec["clean_text"], cfg.seed, cfg.val_fraction, cfg.test_fraction)
            splits[name].append({k: v for k, v in rec.items() if k != "dup_of"})
    return TaskCorpus(splits, records, result.keep, result.cluster)
