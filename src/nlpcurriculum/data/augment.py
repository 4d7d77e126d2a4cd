"""Token-level text augmentation: EDA's four operations plus random masking.

Implements Wei & Zou 2019, *EDA: Easy Data Augmentation Techniques for Boosting Performance on
Text Classification Tasks* (arXiv:1901.11196). For a sentence of l words and a rate alpha:

* synonym replacement (SR): replace n = max(1, round(alpha * l)) distinct non-stop-words that have
  neighbours with a random neighbour;
* random insertion (RI): n times, insert a random neighbour of a random word at a random position;
* random swap (RS): n times, swap two random positions;
* random deletion (RD): delete each word independently with probability p (never all of them:
  EDA keeps one random word);
* random masking: replace each word with a mask token with probability p (the BERT-style
  corruption, useful as augmentation and as a noising baseline).

Synonyms come from a *neighbour function* ``word -> list[str]`` so the source can change without
touching this module: nearest neighbours in a word-embedding space once those exist, WordNet if a
user has it. Until then :data:`FALLBACK_SYNONYMS` is a small hand-written table (documented below),
which covers common English words and the lexicon of :mod:`nlpcurriculum.data.synthetic.base`.

Words are whitespace tokens; punctuation attached to a word (``"river."``) stays attached, the
lookup uses the lowercased core (``"river"``) and a replacement inherits the core's
capitalisation and the surrounding punctuation. Every function takes a seeded
``numpy.random.Generator`` and is deterministic given it.

Left out: back-translation and model-generated paraphrases (they need a trained seq2seq model; the
``neighbours`` hook is where an embedding model plugs in), contextual augmentation with a masked
LM, and mixup in embedding space.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic.base import as_rng

NeighbourFn = Callable[[str], Sequence[str]]

#: Hand-written synonym table (symmetric groups). A stand-in until embedding neighbours exist.
_SYNONYM_GROUPS = [
    "big large huge great", "small little tiny minor", "old aged ancient elderly",
    "young youthful new fresh", "quiet silent calm still", "busy active occupied hectic",
    "bright shining brilliant vivid", "dark dim gloomy shadowy", "happy glad cheerful joyful",
    "sad unhappy gloomy sorrowful", "tired weary exhausted sleepy", "warm hot heated mild",
    "cold chilly cool freezing", "simple plain easy basic", "strange odd unusual curious",
    "gentle kind soft tender", "heavy weighty massive bulky", "careful cautious attentive wary",
    "fast quick rapid swift", "slowly gradually leisurely unhurriedly",
    "quickly rapidly swiftly fast",
    "often frequently regularly repeatedly", "rarely seldom infrequently occasionally",
    "carefully cautiously attentively", "happily gladly cheerfully joyfully",
    "sees notices spots observes", "finds discovers locates uncovers", "likes enjoys loves fancies",
    "carries holds bears transports", "watches observes views monitors",
    "helps aids assists supports",
    "follows trails tracks pursues", "opens unlocks unseals", "builds constructs makes assembles",
    "reads studies scans", "writes composes drafts pens", "visits calls tours",
    "cleans washes scrubs tidies", "moves shifts transfers", "lifts raises hoists elevates",
    "draws sketches paints depicts", "meets encounters greets joins",
    "cat kitten feline", "dog puppy hound", "river stream creek brook", "city town metropolis",
    "teacher instructor tutor educator", "student pupil learner", "road street path lane avenue",
    "book volume novel text", "letter note message", "song tune melody", "child kid youngster",
    "doctor physician medic", "forest woods woodland", "mountain peak summit hill",
    "ocean sea", "kitchen galley cookhouse", "friend companion pal", "engine motor machine",
    "picture image photo painting", "morning dawn daybreak", "evening dusk twilight",
    "answer reply response", "question query inquiry", "story tale narrative account",
    "good fine nice excellent", "bad poor awful terrible", "say state tell mention",
    "begin start commence", "end finish conclude complete", "show display reveal present",
    "important significant crucial vital", "problem issue difficulty trouble",
    "help aid assist support", "use employ utilize apply", "buy purchase acquire",
    "smart clever bright intelligent", "strong powerful sturdy", "weak feeble frail",
]
FALLBACK_SYNONYMS: dict[str, list[str]] = {}
for _group in _SYNONYM_GROUPS:
    _words = _group.split()
    for _w in _words:
        FALLBACK_SYNONYMS.setdefault(_w, [])
        FALLBACK_SYNONYMS[_w] += [v for v in _words if v != _w and v not in FALLBACK_SYNONYMS[_w]]

#: Words EDA never replaces (a short English stop list).
STOP_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "this that these those it its he she they we you i me him her them us my your his their our "
    "not no so than then there here what which who whom when where why how all any each one".split()
)

_CORE_RE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


def table_neighbours(table: dict[str, Sequence[str]] | None = None) -> NeighbourFn:
    """A neighbour function backed by a dict (default :data:`FALLBACK_SYNONYMS`)."""
    table = FALLBACK_SYNONYMS if table is None else table
    return lambda word: table.get(word, ())


def _split_core(token: str) -> tuple[str, str, str]:
    """``'"River,'`` -> ``('"', 'River', ',')``."""
    m = _CORE_RE.match(token)
    assert m is not None  # the pattern matches every string
    return m.group(1), m.group(2), m.group(3)


def _restyle(new: str, like: str) -> str:
    """Give ``new`` the capitalisation of ``like`` (first letter / all caps)."""
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _n_changes(n_words: int, rate: float) -> int:
    return max(1, int(round(rate * n_words))) if n_words and rate > 0 else 0


def synonym_replacement(
    words: Sequence[str],
    rate: float,
    rng: np.random.Generator,
    neighbours: NeighbourFn | None = None,
) -> list[str]:
    """EDA-SR: replace up to round(rate * l) distinct replaceable words by a random neighbour."""
    neighbours = neighbours or table_neighbours()
    out = list(words)
    n = _n_changes(len(out), rate)
    candidates = []
    for i, tok in enumerate(out):
        core = _split_core(tok)[1]
        if core and core.lower() not in STOP_WORDS and neighbours(core.lower()):
            candidates.append(i)
    for i in rng.permutation(candidates)[:n].tolist() if candidates else []:
        pre, core, post = _split_core(out[i])
        options = list(neighbours(core.lower()))
        out[i] = pre + _restyle(options[int(rng.integers(len(options)))], core) + post
    return out


def random_insertion(
    words: Sequence[str],
    rate: float,
    rng: np.random.Generator,
    neighbours: NeighbourFn | None = None,
) -> list[str]:
    """EDA-RI: n times, insert a neighbour of a random word (that has one) at a random position."""
    neighbours = neighbours or table_neighbours()
    out = list(words)
    for _ in range(_n_changes(len(words), rate)):
        with_neighbours = [w for w in out if neighbours(_split_core(w)[1].lower())]
        if not with_neighbours:
            break
        src = _split_core(with_neighbours[int(rng.integers(len(with_neighbours)))])[1].lower()
        options = list(neighbours(src))
        out.insert(int(rng.integers(len(out) + 1)), options[int(rng.integers(len(options)))])
    return out


def random_swap(words: Sequence[str], rate: float, rng: np.random.Generator) -> list[str]:
    """EDA-RS: n times, swap the words at two random positions."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(_n_changes(len(out), rate)):
        i, j = rng.choice(len(out), size=2, replace=False).tolist()
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """EDA-RD: delete each word with probability p; if every word would go, keep one at random."""
    if not words:
        return []
    keep = rng.random(len(words)) >= p
    if not keep.any():
        return [words[int(rng.integers(len(words)))]]
    return [w for w, k in zip(words, keep.tolist()) if k]


def random_masking(
    words: Sequence[str], p: float, rng: np.random.Generator, mask_token: str = "[MASK]"
) -> list[str]:
    """Replace each word with ``mask_token`` with probability p."""
    mask = rng.random(len(words)) < p
    return [mask_token if m else w for w, m in zip(words, mask.tolist())]


@dataclass
class AugmentConfig:
    """EDA rates and how many augmented copies to make.

    Attributes:
        alpha_sr, alpha_ri, alpha_rs: fraction of words changed by SR / RI / RS (0 disables).
        p_rd: per-word deletion probability for RD (0 disables).
        p_mask: per-word masking probability (0 disables).
        n_aug: augmented copies per input; EDA spreads them evenly over the enabled operations.
        mask_token: token used by masking.
    """

    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1
    p_mask: float = 0.0
    n_aug: int = 4
    mask_token: str = "[MASK]"

    def __post_init__(self) -> None:
        for name in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd", "p_mask"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.n_aug < 0:
            raise ValueError(f"n_aug must be >= 0, got {self.n_aug}")

    def operations(self) -> list[str]:
        """The enabled operations, in a fixed order."""
        rates = {"sr": self.alpha_sr, "ri": self.alpha_ri, "rs": self.alpha_rs,
                 "rd": self.p_rd, "mask": self.p_mask}
        return [op for op, r in rates.items() if r > 0]


def augment_text(
    text: str,
    op: str,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    neighbours: NeighbourFn | None = None,
) -> str:
    """Apply one named operation (``sr``, ``ri``, ``rs``, ``rd``, ``mask``) to a text."""
    words = text.split()
    if op == "sr":
        out = synonym_replacement(words, cfg.alpha_sr, rng, neighbours)
    elif op == "ri":
        out = random_insertion(words, cfg.alpha_ri, rng, neighbours)
    elif op == "rs":
        out = random_swap(words, cfg.alpha_rs, rng)
    elif op == "rd":
        out = random_deletion(words, cfg.p_rd, rng)
    elif op == "mask":
        out = random_masking(words, cfg.p_mask, rng, cfg.mask_token)
    else:
        raise ValueError(f"unknown augmentation {op!r} (known: sr, ri, rs, rd, mask)")
    return " ".join(out)


def eda(
    text: str,
    cfg: AugmentConfig | None = None,
    seed: int | np.random.Generator = 0,
    neighbours: NeighbourFn | None = None,
) -> list[dict]:
    """``cfg.n_aug`` augmented versions of ``text``, cycling over the enabled operations.

    Returns:
        Records ``{"text": augmented, "op": operation}``; an empty text gives empty outputs.
    """
    cfg = cfg or AugmentConfig()
    rng = as_rng(seed)
    ops = cfg.operations()
    if not ops:
        return []
    out = []
    for i in range(cfg.n_aug):
        op = ops[i % len(ops)]
        out.append({"text": augment_text(text, op, cfg, rng, neighbours), "op": op})
    return out


def augment_corpus(
    records: Sequence[dict],
    cfg: AugmentConfig | None = None,
    seed: int | np.random.Generator = 0,
    neighbours: NeighbourFn | None = None,
    text_key: str = "text",
) -> list[dict]:
    """Originals plus their augmentations, with provenance.

    Each output record copies the input's other fields (e.g. the label) and adds ``source`` (index
    of the original) and ``op`` (``"original"`` or the operation), so an ablation can vary the
    augmentation ratio by subsampling rows with ``op != "original"``.
    """
    cfg = cfg or AugmentConfig()
    rng = as_rng(seed)
    out: list[dict] = []
    for i, rec in enumerate(records):
        if text_key not in rec:
            raise KeyError(f"record {i} has no {text_key!r} field")
        out.append({**rec, "source": i, "op": "original"})
        for aug in eda(rec[text_key], cfg, rng, neighbours):
            out.append({**rec, text_key: aug["text"], "source": i, "op": aug["op"]})
    return out
