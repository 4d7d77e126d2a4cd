"""Experiments of "Data Augmentation for NLP": rule, embedding, back-translation, LM paraphrases.

The task is the synthetic topic classification corpus of the ``synthetic`` stage
(:mod:`nlpcurriculum.data.synthetic.classification`: 5 classes, a document is 20-60 words of which
about 20% come from its class's word list and the rest is shared filler). With all ~800 labels a
bag-of-words model is near its ceiling, so the experiments use **few labels** (``per_class``, 5 by
default: 25 labelled documents): at that size a bag-of-words classifier has seen only part of each
class's words, so it underfits and there is something for augmentation to add. The synthetic
train split is cut in two: the *pool* (labelled sets are drawn from it; the translator and the
paraphrase LM train on its texts, unlabelled) and a *test* part that, with the synthetic test
split, is the large held-out test set; the synthetic val split picks ratios.

1. *Back-translation, synonym replacement, random masking* (:func:`ops_item`): EDA's swap /
   deletion / masking (:mod:`nlpcurriculum.data.augment`), synonym replacement with neighbours from
   our own word2vec tables (:func:`~nlpcurriculum.augmentation.model_based.embedding_neighbours`), and
   back-translation through a rule pseudo-language with a translator we train
   (:class:`~nlpcurriculum.augmentation.model_based.PseudoLanguage`,
   :func:`~nlpcurriculum.augmentation.model_based.back_translate`). Measured: the translator's exact-match
   accuracy on held-out pairs in each direction, the round trip's exact-match rate, word BLEU and
   word edit similarity to the source, and, per method, how often an augmented text keeps its
   label by the generator's ground truth (class-word vote).
2. *Paraphrases from a model; the augmented dataset* (:func:`paraphrase_item`): a word-level
   mini-former LM trained on the pool's texts rewrites each labelled example left to right,
   keeping a prefix and resampling each later word with probability ``rewrite_rate`` at a
   temperature; a label-preservation filter (the seed's classifier
   trained on the originals: keep a paraphrase only when it predicts the parent's label) decides
   what enters the dataset, written by the stage as ``data/augmented/train.parquet``.
3. *Ablate the augmentation ratio* (:func:`ratio_item`): a bag-of-words logistic classifier
   trained on the labelled set plus r augmented copies per original (r in ``ratios``; 0.5 = every
   other original gets one), per method and seed (each seed draws its own labelled set), test
   accuracy with error bars. The ratio and method are chosen on the validation split; the finding
   is the test gain of that choice over r = 0 and its size in standard errors of the paired
   per-seed differences.

A bag-of-words model ignores order, so random swap can do nothing for it (kept in the EDA mix
because it is part of EDA). Papers: EDA arXiv:1901.11196, back-translation arXiv:1511.06709 and
UDA arXiv:1904.12848, LM-based augmentation arXiv:2003.02245, BLEU (Papineni et al. 2002).

Left out: a neural classifier (the bag-of-words model is where the label scarcity is easiest to
see and costs milliseconds), consistency training (UDA's unlabelled loss), mixup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from nlpcurriculum.data.augment import AugmentConfig, NeighbourFn, eda
from nlpcurriculum.augmentation.model_based import (
    EN2PS,
    EOS,
    PS2EN,
    PairBatcher,
    PseudoLanguage,
    back_translate,
    char_similarity,
    chunk_words,
    lm_rewrite,
    normalize,
    translate,
    WordCodec,
)
from nlpcurriculum.data.synthetic.classification import SENTIMENT_WORDS, TOPIC_WORDS
from nlpcurriculum.embeddings.vocab import simple_word_tokenize
from nlpcurriculum.experiments.harness import (
    curve,
    plot_curves,
    torch_threads,
    train_run,
)
from nlpcurriculum.metrics.text import bleu
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.results import Finding, ItemResult
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.trainer import TrainerConfig

__all__ = [
    "ITEM",
    "ITEMS",
    "METHODS",
    "AugmentationConfig",
    "BowClassifier",
    "ClassifierConfig",
    "Inputs",
    "Outputs",
    "ParaphraseConfig",
    "TaskData",
    "TranslatorConfig",
    "draw_labelled",
    "oracle_label",
    "prepare_task",
    "run",
]

#: The curriculum item id of each result :func:`run` returns, by short name.
ITEM = {
    "ops": "data-augmentation-for-nlp/1",
    "paraphrase": "data-augmentation-for-nlp/2",
    "ratio": "data-augmentation-for-nlp/3",
}
#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = tuple(ITEM.values())
METHODS = ("eda", "synonym", "backtranslation", "lm_paraphrase")


@dataclass
class AugmentationChecks:
    """Bounds of the findings that no knob above sets (params ``augmentation.checks``).

    Attributes:
        max_roundtrip_identical: item 1: share of sampled round trips identical to their source.
    """

    max_roundtrip_identical: float = 0.9


# vocab_size of both models is set from the word codec at run time (params' value is ignored)
@dataclass(kw_only=True)
class TranslatorConfig:
    """The back-translation translator (``translator`` sub-section).

    Attributes:
        model: the decoder-only mini-former over word ids (``vocab_size`` comes from the codec;
            ``max_seq_len >= 2 * src_len + 1``).
        train: its trainer knobs.
        src_len: S, words per chunk (a text is translated in chunks of S words).
        n_pairs: training chunks (English, pseudo) taken from the pool's texts.
        heldout_pairs: chunks from other pool documents, for the held-out accuracy.
        temperature: sampling temperature of the round trip (0 = greedy: little variety).
        cipher_seed: seed of the pseudo-language's letter permutation.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    src_len: int = 8
    n_pairs: int = 3000
    heldout_pairs: int = 200
    temperature: float = 0.5
    cipher_seed: int = 0


@dataclass(kw_only=True)
class ParaphraseConfig:
    """The paraphrase LM (``paraphrase`` sub-section).

    Attributes:
        model: the word-level mini-former LM (``vocab_size`` comes from the codec).
        train: its trainer knobs.
        seq_len: training window in words (documents joined by an end-of-document id).
        prefix_words: words of the labelled example never rewritten (the prompt).
        rewrite_rate: probability that a later word is replaced by an LM sample given the
            rewritten text before it (1 = keep the prefix and let the LM write the rest: at our
            sizes the LM barely infers the topic from its context, so full continuations lose
            the label about half the time; see params/data_augmentation_for_nlp.yaml).
        temperature: sampling temperature.
        candidates: paraphrases generated per labelled example before filtering.
    """

    model: MiniFormerConfig
    train: TrainerConfig
    seq_len: int = 32
    prefix_words: int = 4
    rewrite_rate: float = 0.3
    temperature: float = 0.8
    candidates: int = 6


@dataclass
class ClassifierConfig:
    """The bag-of-words logistic classifier (``classifier`` sub-section).

    Attributes:
        steps: full-batch Adam steps.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weights (sum of squares times this).
    """

    steps: int = 150
    lr: float = 0.1
    weight_decay: float = 1e-3


@dataclass(kw_only=True)
class AugmentationConfig:
    """The ``augmentation`` section of params/data_augmentation_for_nlp.yaml.

    Attributes:
        per_class: labelled documents per class (few labels: the classifier underfits).
        seeds: one labelled set (and augmentation draw, classifier init) per seed.
        ratios: augmented copies per original; must contain 0 (the baseline).
        methods: the augmentations compared (subset of ``METHODS``).
        test_from_pool: share of the synthetic train split moved to the test set.
        eda_rate: EDA rate of swap, deletion and masking (the ``eda`` method cycles them).
        sr_rate: share of words replaced by the ``synonym`` method.
        tables: word-vector tables of the ``word_embeddings`` stage searched for synonyms.
        min_count: words seen fewer times in the pool are ``<unk>`` to the translator and the LM.
        neighbours_k, min_cos, band: :func:`~nlpcurriculum.augmentation.model_based.embedding_neighbours`.
        classifier, translator, paraphrase: the three models.
        num_threads: torch intra-op threads.
        seed: seed of the pool/test cut, the models and the augmentation draws.
        min_translator_accuracy: item 1: held-out exact-match accuracy of the translator (mean of
            both directions) must clear this by 2 standard errors over the held-out chunks.
        min_roundtrip_bleu: item 1: mean word BLEU of the round trip against its source (the
            same, over parents).
        min_label_preservation: item 2: share of kept LM paraphrases whose ground-truth label
            (class-word vote) is the parent's (the same, over the seeds' labelled sets).
        min_novel_words: item 2: share of an LM paraphrase's words absent from its parent (the
            same, over parents).
        min_gain: item 3: test accuracy gain of the val-chosen (method, ratio) over ratio 0.
        checks: the other bounds of the findings.
    """

    per_class: int = 5
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    ratios: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    test_from_pool: float = 0.5
    eda_rate: float = 0.1
    sr_rate: float = 0.2
    tables: list[str] = field(default_factory=lambda: ["skipgram", "corpus_skipgram"])
    min_count: int = 2
    neighbours_k: int = 5
    min_cos: float = 0.5
    band: float = 2.0
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    translator: TranslatorConfig
    paraphrase: ParaphraseConfig
    num_threads: int = 1
    seed: int = 0
    min_translator_accuracy: float = 0.5
    min_roundtrip_bleu: float = 0.3
    min_label_preservation: float = 0.8
    min_novel_words: float = 0.1
    min_gain: float = 0.01
    checks: AugmentationChecks = field(default_factory=AugmentationChecks)

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if 0.0 not in [float(r) for r in self.ratios] or any(r < 0 for r in self.ratios):
            raise ValueError(f"ratios must be >= 0 and contain 0 (the baseline), got {self.ratios}")
        unknown = set(self.methods) - set(METHODS)
        if not self.methods or unknown:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if not 0.0 < self.test_from_pool < 1.0:
            raise ValueError(f"test_from_pool must be in (0, 1), got {self.test_from_pool}")
        for name in ("eda_rate", "sr_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        t = self.translator
        if t.model.max_seq_len < 2 * t.src_len + 1:
            raise ValueError(f"translator.model.max_seq_len ({t.model.max_seq_len}) must be >= "
                             f"2 * translator.src_len + 1 ({2 * t.src_len + 1})")
        if t.n_pairs < 1 or t.heldout_pairs < 1:
            raise ValueError("translator.n_pairs and translator.heldout_pairs must be >= 1")
        p = self.paraphrase
        if p.candidates < 1 or p.prefix_words < 0:
            raise ValueError("paraphrase.candidates must be >= 1 and paraphrase.prefix_words >= 0")
        if not 0.0 < p.rewrite_rate <= 1.0:
            raise ValueError(f"paraphrase.rewrite_rate must be in (0, 1], got {p.rewrite_rate}")
        if p.seq_len > p.model.max_seq_len:
            raise ValueError(f"paraphrase.seq_len ({p.seq_len}) exceeds paraphrase.model.max_seq_len")

    @property
    def max_ratio(self) -> int:
        return int(math.ceil(max(self.ratios)))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """The classification task cut for the experiments.

    Attributes:
        pool: records labelled sets are drawn from (each with ``text``, ``label``, ``parent_id``).
        val: validation records (ratio / method choice).
        test: held-out test records.
        class_words: the generator's class word lists, by label id (ground truth, for measuring).
    """

    pool: list[dict]
    val: list[dict]
    test: list[dict]
    class_words: list[set[str]]

    @property
    def n_classes(self) -> int:
        return len(self.class_words)


def prepare_task(train: Sequence[dict], val: Sequence[dict], test: Sequence[dict],
                 test_from_pool: float, seed: int) -> TaskData:
    """Cut the synthetic splits into pool / val / test (see the module docstring)."""
    for name, recs in (("train", train), ("val", val), ("test", test)):
        if not recs:
            raise ValueError(f"the classification {name} split is empty")
        for r in recs[:1]:
            if "text" not in r or "label" not in r:
                raise ValueError(f"classification {name} records need 'text' and 'label' fields")
    names = {r["label_name"] for r in train if "label_name" in r}
    table = TOPIC_WORDS if names <= set(TOPIC_WORDS) else SENTIMENT_WORDS
    class_words = [set(v.split()) for v in table.values()]
    order = np.random.default_rng(seed).permutation(len(train)).tolist()
    n_test = int(round(test_from_pool * len(train)))
    tagged = [{"text": r["text"], "label": int(r["label"]), "parent_id": f"train:{i}"}
              for i, r in enumerate(train)]
    pool = [tagged[i] for i in sorted(order[n_test:])]
    extra = [tagged[i] for i in sorted(order[:n_test])]
    as_rec = lambda rs, s: [{"text": r["text"], "label": int(r["label"]), "parent_id": f"{s}:{i}"}
                            for i, r in enumerate(rs)]
    return TaskData(pool, as_rec(val, "val"), extra + as_rec(test, "test"), class_words)


def draw_labelled(pool: Sequence[dict], n_classes: int, per_class: int, seed: int) -> list[int]:
    """``per_class`` pool indices per class, drawn with ``seed``.

    Raises:
        ValueError: when a class has fewer than ``per_class`` pool documents.
    """
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for c in range(n_classes):
        cand = [i for i, r in enumerate(pool) if r["label"] == c]
        if len(cand) < per_class:
            raise ValueError(f"class {c} has {len(cand)} pool documents, per_class={per_class}")
        out += sorted(rng.choice(cand, per_class, replace=False).tolist())
    return out


def oracle_label(text: str, class_words: Sequence[set[str]]) -> int:
    """The generator's ground truth: the class whose word list the text uses most (-1: none/tie)."""
    counts = [0] * len(class_words)
    for w in simple_word_tokenize(text):
        for c, words in enumerate(class_words):
            if w in words:
                counts[c] += 1
    best = max(counts)
    return counts.index(best) if best > 0 and counts.count(best) == 1 else -1


# ---------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------


class BowClassifier:
    """Multinomial logistic regression on L2-normalized bag-of-words counts (vocabulary = training words)."""

    def __init__(self, cfg: ClassifierConfig, n_classes: int) -> None:
        self.cfg, self.n_classes = cfg, n_classes

    def _features(self, docs: Sequence[list[str]]) -> torch.Tensor:
        x = np.zeros((len(docs), len(self.vocab)), dtype=np.float32)  # (N, V)
        for i, words in enumerate(docs):
            for w in words:
                j = self.vocab.get(w)
                if j is not None:
                    x[i, j] += 1.0
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return torch.from_numpy(x / np.maximum(norm, 1e-12))

    def fit(self, docs: Sequence[list[str]], labels: Sequence[int], seed: int) -> "BowClassifier":
        self.vocab: dict[str, int] = {}
        for words in docs:
            for w in words:
                self.vocab.setdefault(w, len(self.vocab))
        x, y = self._features(docs), torch.tensor(list(labels))
        gen = torch.Generator().manual_seed(seed)
        self.w = (0.01 * torch.randn(len(self.vocab), self.n_classes, generator=gen)).requires_grad_()
        self.b = torch.zeros(self.n_classes, requires_grad=True)
        opt = torch.optim.Adam([self.w, self.b], lr=self.cfg.lr)
        for _ in range(self.cfg.steps):
            opt.zero_grad()
            loss = F.cross_entropy(x @ self.w + self.b, y) + self.cfg.weight_decay * (self.w ** 2).sum()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def predict(self, docs: Sequence[list[str]]) -> np.ndarray:
        return (self._features(docs) @ self.w + self.b).argmax(1).numpy()

    def accuracy(self, docs: Sequence[list[str]], labels: np.ndarray) -> float:
        return float((self.predict(docs) == labels).mean())


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def _text_stats(parents: Sequence[str], augmented: Sequence[str], labels: Sequence[int],
                class_words: Sequence[set[str]]) -> dict[str, float]:
    """Per method: the means of :func:`_example_stats`, and ``n``."""
    return _mean_stats(_example_stats(parents, augmented, labels, class_words))


def _mean_stats(per: dict[str, list[float]]) -> dict[str, float]:
    m = lambda v: float(np.mean(v)) if v else 0.0
    return {k: m(v) for k, v in per.items()} | {"n": float(len(per["bleu"]))}


def _per_parent(values: Sequence[float], parent_of: Sequence[int]) -> list[float]:
    """The mean of ``values`` per parent: a parent's several augmentations are not independent
    samples, the parents are (the unit of a finding's standard error)."""
    groups: dict[int, list[float]] = {}
    for v, k in zip(values, parent_of):
        groups.setdefault(k, []).append(v)
    return [float(np.mean(g)) for g in groups.values()]


def _example_stats(parents: Sequence[str], augmented: Sequence[str], labels: Sequence[int],
                   class_words: Sequence[set[str]]) -> dict[str, list[float]]:
    """Per augmented text: word BLEU and word edit similarity to its parent, identical or not,
    novelty (share of its words not in the parent), ground-truth label preserved or not."""
    bl, sim, same, novel, keep = [], [], [], [], []
    for p, a, y in zip(parents, augmented, labels):
        pw, aw = simple_word_tokenize(p), simple_word_tokenize(a)
        bl.append(bleu(aw, [pw], smoothing="add_one"))
        sim.append(char_similarity(aw, pw))  # on word lists: word-level edit similarity
        same.append(float(aw == pw))
        novel.append(float(np.mean([w not in set(pw) for w in aw])) if aw else 0.0)
        keep.append(float(oracle_label(a, class_words) == y))
    return {"bleu": bl, "word_similarity": sim, "identical": same, "novel_words": novel,
            "label_preserved": keep}


# ---------------------------------------------------------------------------------------------
# Augmentations of the labelled parents
# ---------------------------------------------------------------------------------------------


def _rule_augment(texts: Sequence[str], n: int, cfg: AugmentConfig, seed: int,
                  neighbours: NeighbourFn | None) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[a["text"] for a in eda(t, replace(cfg, n_aug=n), rng, neighbours)] for t in texts]


def _codec(cfg: AugmentationConfig, pool_texts: Sequence[str]) -> WordCodec:
    return WordCodec.build([normalize(t) for t in pool_texts], cfg.min_count)


def _train_translator(cfg: AugmentationConfig, pool_texts: Sequence[str], en: WordCodec) -> dict:
    """Train the pair translator on chunks of pool texts; greedy held-out accuracy per direction."""
    t = cfg.translator
    lang = PseudoLanguage(t.cipher_seed)
    english = en.words[len(WordCodec.SPECIALS):]
    codec = WordCodec(list(dict.fromkeys(english + [lang.to_pseudo(w) for w in english])))
    rng = np.random.default_rng(cfg.seed)
    docs = [pool_texts[i] for i in rng.permutation(len(pool_texts))]
    n_held_docs = max(1, len(docs) // 10)
    chunks = lambda ds: [c for d in ds for c in chunk_words(normalize(d), t.src_len)]
    train_chunks, held_chunks = chunks(docs[n_held_docs:]), chunks(docs[:n_held_docs])
    if not train_chunks or not held_chunks:
        raise ValueError("the pool has too little text to train the translator")
    train_chunks = [train_chunks[i % len(train_chunks)] for i in range(t.n_pairs)]
    pair = lambda c: (codec.encode(c), codec.encode(lang.to_pseudo(c)))
    pairs = [pair(c) for c in train_chunks]
    held = [pair(c) for c in held_chunks[:t.heldout_pairs]]
    model, result = train_run(replace(t.model, vocab_size=len(codec)), t.train,
                              PairBatcher(pairs, t.src_len, seed=cfg.seed),
                              PairBatcher(held, t.src_len, seed=cfg.seed + 1), seed=cfg.seed)
    to_ps = translate(model, [e for e, _ in held], EN2PS, t.src_len)
    to_en = translate(model, [p for _, p in held], PS2EN, t.src_len)
    right_ps = [float(a == p) for a, (_, p) in zip(to_ps, held)]
    right_en = [float(a == e) for a, (e, _) in zip(to_en, held)]
    back = translate(model, to_ps[:4], PS2EN, t.src_len)
    samples = [f"en: {codec.decode(e)}\nps: {codec.decode(p)}\n-> {codec.decode(a)}\n<- {codec.decode(b)}"
               for (e, p), a, b in zip(held[:4], to_ps[:4], back)]
    return {"model": model, "codec": codec, "history": result.history,
            "acc_en2ps": float(np.mean(right_ps)), "acc_ps2en": float(np.mean(right_en)),
            # per held-out chunk: exact in both directions 1, in one 0.5 (the finding's samples)
            "per_pair": [(a + b) / 2 for a, b in zip(right_ps, right_en)],
            "samples": samples, "vocab": float(len(codec))}


def _train_lm(cfg: AugmentationConfig, pool_texts: Sequence[str], codec: WordCodec) -> dict:
    p = cfg.paraphrase
    rng = np.random.default_rng(cfg.seed)
    docs = [pool_texts[i] for i in rng.permutation(len(pool_texts))]
    n_val = max(1, len(docs) // 10)
    stream = lambda ds: torch.tensor([i for d in ds for i in codec.encode(normalize(d)) + [EOS]])
    train = TokenBatcher(stream(docs[n_val:]), p.seq_len, seed=cfg.seed)
    val = TokenBatcher(stream(docs[:n_val]), p.seq_len, mode="sequential")
    model, result = train_run(replace(p.model, vocab_size=len(codec)), p.train, train, val,
                              seed=cfg.seed)
    return {"model": model, "history": result.history}


def _lm_candidates(cfg: AugmentationConfig, model: torch.nn.Module, codec: WordCodec,
                   texts: Sequence[str]) -> list[list[str]]:
    """``candidates`` LM rewrites per text (:func:`~nlpcurriculum.augmentation.model_based.lm_rewrite`)."""
    p = cfg.paraphrase
    docs = [codec.encode(normalize(t)) for t in texts for _ in range(p.candidates)]
    gen = torch.Generator().manual_seed(cfg.seed)
    outs = lm_rewrite(model, docs, start=p.prefix_words, rate=p.rewrite_rate,
                      temperature=p.temperature, banned=range(len(WordCodec.SPECIALS)),
                      generator=gen)
    return [[codec.decode(o) for o in outs[i * p.candidates:(i + 1) * p.candidates]]
            for i in range(len(texts))]


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


def _take(cands: Sequence[str], ratio: float, rng: np.random.Generator) -> list[str]:
    n = int(math.floor(ratio)) + int(rng.random() < ratio - math.floor(ratio))
    return list(cands[:n])


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        data: the task (:func:`prepare_task`).
        neighbours: the synonym source (embedding neighbours).
    """

    data: TaskData
    neighbours: NeighbourFn


@dataclass
class Outputs:
    """What :func:`run` builds besides the items, for the stage to write.

    Attributes:
        rows: the augmented dataset of the first seed's labelled set (``text``, ``label``,
            ``op``, ``parent_id``).
    """

    rows: list[dict] = field(default_factory=list)


def run(cfg: AugmentationConfig, inputs: Inputs, outputs: Outputs | None = None) -> list[ItemResult]:
    """Build every augmentation, run the ratio sweep and check the findings.

    Args:
        cfg: the stage config.
        inputs: the task and the synonym source.
        outputs: when given, receives the augmented dataset as ``outputs.rows``.

    Returns:
        ``[item 1, item 2, item 3]``.
    """
    with torch_threads(cfg.num_threads):
        items, rows = _run(cfg, inputs.data, inputs.neighbours)
    if outputs is not None:
        outputs.rows = rows
    return items


def _run(cfg: AugmentationConfig, data: TaskData, neighbours: NeighbourFn):
    R = cfg.max_ratio
    labelled = {s: draw_labelled(data.pool, data.n_classes, cfg.per_class, s) for s in cfg.seeds}
    parents = sorted({i for idx in labelled.values() for i in idx})
    ptexts = [data.pool[i]["text"] for i in parents]
    plabels = [data.pool[i]["label"] for i in parents]
    pool_texts = [r["text"] for r in data.pool]

    # --- item 1: rule ops, embedding synonyms, back-translation ---------------------------------
    cands: dict[str, dict[int, list[str]]] = {}
    eda_cfg = AugmentConfig(alpha_sr=0.0, alpha_ri=0.0, alpha_rs=cfg.eda_rate, p_rd=cfg.eda_rate,
                            p_mask=cfg.eda_rate)
    sr_cfg = AugmentConfig(alpha_sr=cfg.sr_rate, alpha_ri=0.0, alpha_rs=0.0, p_rd=0.0)
    cands["eda"] = dict(zip(parents, _rule_augment(ptexts, R, eda_cfg, cfg.seed, None)))
    cands["synonym"] = dict(zip(parents, _rule_augment(ptexts, R, sr_cfg, cfg.seed + 1, neighbours)))
    words = [w for t in ptexts for w in simple_word_tokenize(t)]
    coverage = float(np.mean([bool(neighbours(w)) for w in words])) if words else 0.0
    class_cov = [w for w in words if any(w in cw for cw in data.class_words)]
    class_coverage = float(np.mean([bool(neighbours(w)) for w in class_cov])) if class_cov else 0.0

    codec = _codec(cfg, pool_texts)
    tr = _train_translator(cfg, pool_texts, codec)
    gen = torch.Generator().manual_seed(cfg.seed)
    _, bt = back_translate(tr["model"], tr["codec"], [t for t in ptexts for _ in range(R)],
                           cfg.translator.src_len, temperature=cfg.translator.temperature,
                           generator=gen)
    cands["backtranslation"] = {p: bt[k * R:(k + 1) * R] for k, p in enumerate(parents)}

    # --- item 2: LM paraphrases (filtered per seed below) ---------------------------------------
    lm = _train_lm(cfg, pool_texts, codec)
    lm_raw = dict(zip(parents, _lm_candidates(cfg, lm["model"], codec, ptexts)))

    # --- item 3: the sweep ----------------------------------------------------------------------
    tok = simple_word_tokenize
    val_docs, test_docs = [tok(r["text"]) for r in data.val], [tok(r["text"]) for r in data.test]
    val_y = np.array([r["label"] for r in data.val])
    test_y = np.array([r["label"] for r in data.test])
    ratios = sorted({float(r) for r in cfg.ratios})
    acc = {m: {r: {"val": [], "test": []} for r in ratios} for m in cfg.methods}
    lm_kept: dict[int, dict[int, list[str]]] = {}
    filter_stats = {"raw": [], "kept": [], "kept_by_seed": []}
    for s in cfg.seeds:
        idx = labelled[s]
        docs = [tok(data.pool[i]["text"]) for i in idx]
        ys = [data.pool[i]["label"] for i in idx]
        base = BowClassifier(cfg.classifier, data.n_classes).fit(docs, ys, seed=s)
        base_acc = {"val": base.accuracy(val_docs, val_y), "test": base.accuracy(test_docs, test_y)}
        kept: dict[int, list[str]] = {}
        for i in idx:  # the label-preservation filter: the seed's own baseline classifier
            c = lm_raw[i]
            pred = base.predict([tok(t) for t in c]) if c else np.array([])
            kept[i] = [t for t, p in zip(c, pred.tolist()) if p == data.pool[i]["label"]]
            filter_stats["raw"] += [oracle_label(t, data.class_words) == data.pool[i]["label"] for t in c]
        kept_right = [oracle_label(t, data.class_words) == data.pool[i]["label"]
                      for i in idx for t in kept[i]]
        filter_stats["kept"] += kept_right
        # this seed's share (its own labelled set and filter): item 2's samples
        filter_stats["kept_by_seed"].append(float(np.mean(kept_right)) if kept_right else 0.0)
        lm_kept[s] = kept
        for m in cfg.methods:
            source = kept if m == "lm_paraphrase" else cands[m]
            for r in ratios:
                if r == 0:
                    for split in ("val", "test"):
                        acc[m][r][split].append(base_acc[split])
                    continue
                rng = np.random.default_rng([s, int(r * 100), METHODS.index(m)])
                aug_docs, aug_y = list(docs), list(ys)
                for i, y in zip(idx, ys):
                    for t in _take(source.get(i, []), r, rng):
                        aug_docs.append(tok(t))
                        aug_y.append(y)
                clf = BowClassifier(cfg.classifier, data.n_classes).fit(aug_docs, aug_y, seed=s)
                acc[m][r]["val"].append(clf.accuracy(val_docs, val_y))
                acc[m][r]["test"].append(clf.accuracy(test_docs, test_y))

    # --- per-method text statistics -------------------------------------------------------------
    stats: dict[str, dict[str, float]] = {}
    per_parent: dict[str, dict[str, list[float]]] = {}  # the findings' samples
    for m, source in (*((m, cands[m]) for m in ("eda", "synonym", "backtranslation")),
                      ("lm_paraphrase_raw", lm_raw)):
        flat = [(k, ptexts[k], a, plabels[k]) for k, p in enumerate(parents) for a in source[p]]
        if not flat:
            stats[m], per_parent[m] = {}, {}
            continue
        parent_of, *texts = zip(*flat)
        per = _example_stats(*texts, data.class_words)
        stats[m] = _mean_stats(per)
        per_parent[m] = {k: _per_parent(v, parent_of) for k, v in per.items()}
    s0 = cfg.seeds[0]
    flat = [(data.pool[i]["text"], a, data.pool[i]["label"]) for i in labelled[s0] for a in lm_kept[s0][i]]
    stats["lm_paraphrase_kept"] = (_text_stats(*zip(*flat), data.class_words) if flat
                                   else {"label_preserved": 0.0, "n": 0.0})

    items = [
        _ops_item(cfg, tr, stats, per_parent["backtranslation"], coverage, class_coverage, cands,
                  parents, ptexts),
        _paraphrase_item(cfg, lm, stats, per_parent["lm_paraphrase_raw"], filter_stats, lm_raw,
                         lm_kept[s0], data, labelled[s0]),
        _ratio_item(cfg, acc, ratios),
    ]
    rows = []
    for i in labelled[s0]:
        r = data.pool[i]
        rows.append({"text": r["text"], "label": r["label"], "op": "original", "parent_id": r["parent_id"]})
        for m in cfg.methods:
            source = lm_kept[s0] if m == "lm_paraphrase" else cands[m]
            for t in source.get(i, [])[:R]:
                if t.strip():
                    rows.append({"text": t, "label": r["label"], "op": m, "parent_id": r["parent_id"]})
    return items, rows


def _fmt_stats(stats: dict[str, dict[str, float]]) -> str:
    cols = ("n", "identical", "bleu", "word_similarity", "novel_words", "label_preserved")
    lines = [f"{'method':<22}" + "".join(f"{c:>17}" for c in cols)]
    for m, st in stats.items():
        lines.append(f"{m:<22}" + "".join(f"{st.get(c, float('nan')):>17.3f}" for c in cols))
    return "\n".join(lines) + "\n"


def _bar_figure(stats: dict[str, dict[str, float]], title: str) -> Figure:
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.subplots()
    keys = ("bleu", "word_similarity", "novel_words", "label_preserved")
    names = list(stats)
    x = np.arange(len(names))
    for k, key in enumerate(keys):
        ax.bar(x + (k - 1.5) * 0.2, [stats[n].get(key, 0.0) for n in names], 0.2, label=key)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _ops_item(cfg, tr, stats, bt_parents, coverage, class_coverage, cands, parents,
              ptexts) -> ItemResult:
    acc = (tr["acc_en2ps"] + tr["acc_ps2en"]) / 2
    bt = stats["backtranslation"]
    metrics = {
        "translator_acc_en2ps": tr["acc_en2ps"], "translator_acc_ps2en": tr["acc_ps2en"],
        # the round trip's means over parents (each parent has max_ratio round trips)
        "translator_acc": acc, "roundtrip_identical": float(np.mean(bt_parents["identical"])),
        "roundtrip_bleu": float(np.mean(bt_parents["bleu"])),
        "roundtrip_word_similarity": bt["word_similarity"],
        "synonym_coverage": coverage, "synonym_class_word_coverage": class_coverage,
        "translator_vocab": tr["vocab"],
    }
    for m in ("eda", "synonym", "backtranslation"):
        for k in ("bleu", "label_preserved", "novel_words"):
            metrics[f"{m}_{k}"] = stats[m][k]
    examples = []
    for k, p in enumerate(parents[:3]):
        examples.append(f"original: {ptexts[k]}\n" + "".join(
            f"{m:>16}: {cands[m][p][0] if cands[m][p] else ''}\n"
            for m in ("eda", "synonym", "backtranslation")))
    texts = {
        "examples.txt": "\n".join(examples),
        "translator_samples.txt": "\n\n".join(tr["samples"]) + "\n",
        "stats.txt": _fmt_stats({m: stats[m] for m in ("eda", "synonym", "backtranslation")}),
    }
    # one trained translator: the samples are its held-out chunks, and the parents of its round
    # trips (a parent's round trips are averaged: they are not independent)
    findings = [
        Finding.compare("the translator trained on the synthetic parallel corpus translates "
                        "held-out chunks exactly (mean of both directions; n = held-out chunks)",
                        "translator_acc", tr["per_pair"], margin=cfg.min_translator_accuracy),
        Finding.compare("the sampled round trip English -> pseudo -> English stays close to its "
                        "source (word BLEU; n = parents)", "roundtrip_bleu", bt_parents["bleu"],
                        margin=cfg.min_roundtrip_bleu),
        Finding.compare("the sampled round trip is a paraphrase, not a copy (share identical to "
                        "the source; n = parents)", "roundtrip_identical", bt_parents["identical"],
                        margin=-cfg.checks.max_roundtrip_identical, higher_is_better=False),
    ]
    figures = {
        "translator_loss.png": plot_curves({"held-out pairs": curve(tr["history"]),
                                            "train": curve(tr["history"], "loss")},
                                           "back-translation: pair translator (target words only)",
                                           ylabel="loss (nats / word)"),
        "methods.png": _bar_figure({m: stats[m] for m in ("eda", "synonym", "backtranslation")},
                                   "augmented text vs its parent"),
    }
    return ItemResult(ITEM["ops"], metrics=metrics, figures=figures, texts=texts, findings=findings,
                      series={"translator_val_loss": curve(tr["history"])})


def _paraphrase_item(cfg, lm, stats, lm_parents, filter_stats, lm_raw, kept0, data, idx0) -> ItemResult:
    raw = float(np.mean(filter_stats["raw"])) if filter_stats["raw"] else 0.0
    kept = float(np.mean(filter_stats["kept"])) if filter_stats["kept"] else 0.0
    n_raw, n_kept = len(filter_stats["raw"]), len(filter_stats["kept"])
    metrics = {
        "lm_val_loss": float(curve(lm["history"])[-1][1]) if curve(lm["history"]) else float("nan"),
        "label_preserved_raw": raw, "label_preserved_kept": kept,
        "label_preserved_kept_by_seed": float(np.mean(filter_stats["kept_by_seed"])),
        "filter_pass_rate": n_kept / n_raw if n_raw else 0.0, "filter_gain": kept - raw,
        "novel_words": float(np.mean(lm_parents["novel_words"])),  # mean over parents
        "bleu_to_parent": stats["lm_paraphrase_raw"]["bleu"],
    }
    examples = []
    for i in idx0[:3]:
        r = data.pool[i]
        examples.append(f"original [{r['label']}]: {r['text']}\n" + "".join(
            f"  {'KEPT' if t in kept0[i] else 'drop'}: {t}\n" for t in lm_raw[i]))
    findings = [
        Finding.compare("LM paraphrases that pass the classifier filter keep their parent's "
                        "label by the generator's ground truth (per seed: its labelled set and "
                        "filter)", "label_preserved_kept_by_seed", filter_stats["kept_by_seed"],
                        margin=cfg.min_label_preservation),
        Finding.compare("LM paraphrases are new text, not copies: share of their words that "
                        "are not in the parent (n = parents)", "novel_words",
                        lm_parents["novel_words"], margin=cfg.min_novel_words),
    ]
    figures = {
        "lm_loss.png": plot_curves({"val": curve(lm["history"]), "train": curve(lm["history"], "loss")},
                                   "paraphrase LM (words of the pool's texts)",
                                   ylabel="loss (nats / word)"),
        "paraphrases.png": _bar_figure({"raw": stats["lm_paraphrase_raw"],
                                        "kept (seed 0)": stats["lm_paraphrase_kept"]},
                                       "LM paraphrases vs their parent"),
    }
    return ItemResult(ITEM["paraphrase"], metrics=metrics, figures=figures, findings=findings,
                      texts={"paraphrases.txt": "\n".join(examples),
                             "stats.txt": _fmt_stats({"raw": stats["lm_paraphrase_raw"],
                                                      "kept (seed 0)": stats["lm_paraphrase_kept"]})},
                      series={"lm_val_loss": curve(lm["history"])})


def _ratio_item(cfg, acc, ratios) -> ItemResult:
    n = len(cfg.seeds)
    metrics: dict[str, float] = {}
    lines = [f"{'method':<16}{'ratio':>7}{'val':>9}{'test':>9}{'test sd':>9}{'gain':>9}{'gain se':>9}"]
    base_test = np.array(acc[cfg.methods[0]][0.0]["test"])
    best = (-1.0, cfg.methods[0], 0.0)
    for m in cfg.methods:
        for r in ratios:
            v, t = np.array(acc[m][r]["val"]), np.array(acc[m][r]["test"])
            d = t - base_test
            se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            lines.append(f"{m:<16}{r:>7.1f}{v.mean():>9.3f}{t.mean():>9.3f}{t.std():>9.3f}"
                         f"{d.mean():>9.3f}{se:>9.3f}")
            metrics[f"{m}_r{r:g}_test"] = float(t.mean())
            if r > 0 and v.mean() > best[0]:
                best = (float(v.mean()), m, r)
    base_val = float(np.mean(acc[cfg.methods[0]][0.0]["val"]))
    _, bm, br = best
    if best[0] <= base_val:  # no augmentation beats ratio 0 on validation: the choice is r = 0
        bm, br = cfg.methods[0], 0.0
    d = np.array(acc[bm][br]["test"]) - base_test
    gain = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    gain_se = gain / se if se and se > 0 else 0.0
    best_test = max((float(np.mean(acc[m][r]["test"])) - float(base_test.mean()), m, r)
                    for m in cfg.methods for r in ratios)
    metrics.update({"baseline_test": float(base_test.mean()), "chosen_gain": gain,
                    "chosen_gain_se": se if not math.isnan(se) else 0.0, "chosen_gain_in_se": gain_se,
                    "chosen_ratio": br, "chosen_method_index": float(METHODS.index(bm)),
                    "best_test_gain": best_test[0]})
    lines.append(f"\nchosen on val: {bm} at ratio {br:g}: test gain {gain:+.4f} (se {se:.4f}, "
                 f"{n} seeds); best on test (for reference, selection-biased): {best_test[1]} at "
                 f"{best_test[2]:g}: {best_test[0]:+.4f}")
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(ratios))
    for k, m in enumerate(cfg.methods):
        means = [np.mean(acc[m][r]["test"]) for r in ratios]
        sds = [np.std(acc[m][r]["test"]) for r in ratios]
        ax.errorbar(pos + (k - 1.5) * 0.04, means, yerr=sds, marker="o", capsize=3, label=m)
    ax.set_xticks(pos, [f"{r:g}" for r in ratios])
    ax.set_xlabel("augmented copies per labelled example")
    ax.set_ylabel(f"test accuracy (mean ± sd over {n} seeds)")
    ax.set_title(f"augmentation ratio sweep, {cfg.per_class} labels per class")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    findings = [
        Finding.compare("augmentation at the (method, ratio) chosen on validation raises test "
                        "accuracy over no augmentation (paired by seed: same labelled set and "
                        "classifier init; a method that adds noise, or a choice no better than "
                        "ratio 0, would not clear the margin)", "chosen_gain",
                        acc[bm][br]["test"], acc[cfg.methods[0]][0.0]["test"], margin=cfg.min_gain),
    ]
    series = {f"{m}_test_acc": [(int(r * 10), float(np.mean(acc[m][r]["test"]))) for r in ratios]
              for m in cfg.methods}
    return ItemResult(ITEM["ratio"], metrics=metrics, figures={"ratio_sweep.png": fig},
                      texts={"sweep.txt": "\n".join(lines) + "\n"}, findings=findings, series=series)
