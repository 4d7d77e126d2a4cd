"""Stage ``rag``: item 3 of "Retrieval-Augmented Generation (RAG)": retrieved context fed to our LM.

``retrieval-augmented-generation/3`` ("ablate retrieval k, reranking, context truncation
strategies"). The reader is a :class:`~nlpcurriculum.models.miniformer.MiniFormer` trained here
to read ``context: P1 | P2 | ... question: Q answer:`` and write the answer token; the
retriever is our BM25 (:mod:`nlpcurriculum.retrieval.bm25`), optionally reordered by a
reranker learned here (:class:`~nlpcurriculum.retrieval.rag.LexicalReranker`); the prompt is
assembled and truncated by :func:`~nlpcurriculum.retrieval.rag.assemble`.

**The corpus** (:func:`make_world`, from a seed): entities with two-part names drawn from
shared syllables (``bo ka``, ``bo mi``, ``li ka``: a name part alone does not identify an
entity), each with four attributes (color, city, food, pet; 12 values each, drawn uniformly),
one passage per fact in one of three templates (the value first, last, or before the final
full stop), and one distractor passage per entity naming two entities and no attribute. A
question names its attribute by its word in the passages (``color``) or, half the time, by a
synonym the passages never use (``hue``): BM25 then finds the entity's passages but cannot tell
which attribute the question asks for.

**No leakage**: entities are split into train / dev / test; the reader is trained only on
questions about train entities, with contexts that hold no passage of a dev or test entity, so
the facts of the test questions were never seen: without retrieval the reader can only guess
(1 in 12 by the values' prior). Dev questions are for choosing sizes; findings are on test.

Arms, on the same test questions for every seed (one corpus and one reader per seed):

* closed-book (empty context; the control) and oracle (the gold passage only; the upper bound);
* BM25 top-k for k in ``ks``, reranking off and on (the reranker reorders the top ``candidates``);
* at ``trunc_k`` passages, more than the window holds, each truncation strategy.

Findings, paired over seeds (``Finding.compare``): retrieval beats closed-book; closed-book is
near chance (the control that no fact leaked); the oracle reader is competent; more passages
beat one; reranking helps at k = 1; head truncation beats tail and per-passage truncation.
Invariant: every prompt fits the window.

Left out: multi-token answers, a dense retriever in the loop (stage ``retrieval`` builds one),
the pipeline corpus (its documents carry no question-answer pairs to score).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.retrieval.rag import STRATEGIES, LexicalReranker, assemble

__all__ = ["ATTRIBUTES", "ITEMS", "FactsWorld", "Inputs", "RagChecks", "RagConfig", "make_world",
           "run"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("retrieval-augmented-generation/3",)

#: (word in the passages, synonym in half the questions, values).
ATTRIBUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("color", "hue", ("red", "blue", "green", "yellow", "purple", "orange", "black", "white",
                      "pink", "brown", "grey", "teal")),
    ("city", "town", ("paris", "lima", "oslo", "cairo", "delhi", "quito", "dakar", "hanoi", "riga",
                      "sofia", "tunis", "perth")),
    ("food", "dish", ("rice", "bread", "soup", "pasta", "curry", "salad", "beans", "tacos", "sushi",
                      "stew", "pie", "noodles")),
    ("pet", "animal", ("cat", "dog", "parrot", "rabbit", "hamster", "turtle", "goldfish", "lizard",
                       "ferret", "pony", "snake", "mouse")),
)
FIRST = tuple("ba be bo bu da de di do ka ke ki ko la le li lo ma me mi mo na ne ni no".split())
LAST = tuple("ral rek rim ron sal sek sim son tal tek tim ton val vek vim von zal zek zim zon fal fek fim fon".split())
PAD = "<pad>"


@dataclass
class FactsWorld:
    """A generated facts corpus.

    Attributes:
        names: each entity's ``(first, last)`` name parts.
        values: ``(E, A)`` value index of each entity's attributes.
        split: ``(E,)`` 0 train, 1 dev, 2 test.
        passages: every passage's tokens, shuffled.
        entity: ``(N,)`` the passage's entity (a distractor: the first one it names).
        attribute: ``(N,)`` the fact's attribute, -1 for a distractor.
        fact_passage: ``(E, A)`` index of each fact's passage.
        touches: per passage, every entity it names.
    """

    names: list[tuple[str, str]]
    values: np.ndarray
    split: np.ndarray
    passages: list[list[str]]
    entity: np.ndarray
    attribute: np.ndarray
    fact_passage: np.ndarray
    touches: list[tuple[int, ...]]

    def question(self, e: int, a: int, synonym: bool) -> list[str]:
        word = ATTRIBUTES[a][1] if synonym else ATTRIBUTES[a][0]
        return ["what", word, "of", *self.names[e], "?"]

    def answer(self, e: int, a: int) -> str:
        return ATTRIBUTES[a][2][self.values[e, a]]


def make_world(n_entities: int, n_dev: int, n_test: int, seed: int) -> FactsWorld:
    """Entities, their facts as passages in three templates, one distractor per entity."""
    rng = np.random.default_rng(seed)
    combos = [(f, s) for f in FIRST for s in LAST]
    if n_entities > len(combos) or n_dev + n_test >= n_entities:
        raise ValueError(f"need n_dev + n_test < n_entities <= {len(combos)}")
    names = [combos[i] for i in rng.choice(len(combos), size=n_entities, replace=False)]
    values = rng.integers(0, 12, size=(n_entities, len(ATTRIBUTES)))
    split = np.zeros(n_entities, dtype=np.int64)
    order = rng.permutation(n_entities)
    split[order[:n_dev]], split[order[n_dev:n_dev + n_test]] = 1, 2
    raw: list[tuple[list[str], int, int, tuple[int, ...]]] = []
    for e, (f, s) in enumerate(names):
        for a, (word, _, vals) in enumerate(ATTRIBUTES):
            v = vals[values[e, a]]
            template = int(rng.integers(3))
            text = ([word, "of", f, s, "is", v, "."] if template == 0 else
                    [f, s, "has", word, v, "."] if template == 1 else
                    [v, "is", word, "of", f, s, "."])
            raw.append((text, e, a, (e,)))
        other = int(rng.integers(n_entities - 1))
        other += other >= e
        raw.append(([f, s, "met", *names[other], "."], e, -1, (e, other)))
    perm = rng.permutation(len(raw))
    passages = [raw[i][0] for i in perm]
    entity = np.array([raw[i][1] for i in perm])
    attribute = np.array([raw[i][2] for i in perm])
    fact_passage = np.zeros((n_entities, len(ATTRIBUTES)), dtype=np.int64)
    for n, (e, a) in enumerate(zip(entity, attribute)):
        if a >= 0:
            fact_passage[e, a] = n
    return FactsWorld(names, values, split, passages, entity, attribute, fact_passage,
                      [raw[i][3] for i in perm])


@dataclass
class RagChecks:
    """Bounds of the findings (params ``rag.checks``).

    Attributes:
        min_rag_over_closed: accuracy of BM25 top-``main_k`` minus closed-book, per seed.
        max_closed_book: closed-book accuracy, mean over seeds (chance is 1/12).
        min_oracle: oracle-context accuracy, mean over seeds.
        min_k_gain: top-``main_k`` minus top-1 (reranking off), per seed.
        min_rerank_gain_k1: top-1 reranked minus top-1 BM25, per seed.
        min_head_over_tail: head minus tail truncation at ``trunc_k``, per seed.
        min_head_over_per_passage: head minus per-passage truncation at ``trunc_k``, per seed.
    """

    min_rag_over_closed: float = 0.3
    max_closed_book: float = 0.2
    min_oracle: float = 0.8
    min_k_gain: float = 0.1
    min_rerank_gain_k1: float = 0.1
    min_head_over_tail: float = 0.1
    min_head_over_per_passage: float = 0.1


@dataclass
class RagConfig:
    """The stage ``rag`` (params/retrieval_augmented_generation.yaml, section ``rag``).

    Attributes:
        n_entities: entities of a corpus (at most 576 name pairs).
        n_dev: entities held out for choosing sizes.
        n_test: entities whose questions the findings are measured on.
        window: the reader's context length (tokens).
        d_model: the reader's width.
        d_ff: its MLP's hidden size.
        n_layers: its blocks.
        n_heads: its attention heads.
        steps: training updates.
        batch_size: questions per update.
        lr: AdamW peak learning rate (linear warm-up, cosine decay).
        warmup: warm-up updates.
        train_k: training contexts hold 0 to ``train_k`` passages (the gold one among them).
        candidates: BM25 candidates the reranker reorders.
        ks: the retrieval depths of the k ablation.
        main_k: the depth of the headline arm (fits the window).
        trunc_k: the depth of the truncation ablation (more than the window holds).
        seeds: one corpus and one reader per seed.
        workers: processes running the seeds side by side (one torch thread each).
        num_threads: torch threads of each seed.
        checks: the finding bounds.
    """

    n_entities: int = 400
    n_dev: int = 50
    n_test: int = 100
    window: int = 48
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    steps: int = 1500
    batch_size: int = 32
    lr: float = 0.003
    warmup: int = 100
    train_k: int = 5
    candidates: int = 20
    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])
    main_k: int = 5
    trunc_k: int = 10
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 2
    num_threads: int = 1
    checks: RagChecks = field(default_factory=RagChecks)


@dataclass(frozen=True)
class Inputs:
    """Nothing to read: the corpus and questions are generated from the seeds."""


class _Vocab:
    """Word -> id over every token the corpus, the questions and the markers use; id 0 pads."""

    def __init__(self, world: FactsWorld) -> None:
        from nlpcurriculum.retrieval.rag import ANSWER, CONTEXT, QUESTION, SEP

        words = {t for p in world.passages for t in p}
        words |= {"what", "of", "?", CONTEXT, QUESTION, ANSWER, SEP}
        words |= {a[1] for a in ATTRIBUTES}
        self.ids = {PAD: 0} | {w: i + 1 for i, w in enumerate(sorted(words))}

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, prompts: list[list[str]]):
        """``(B, T)`` ids right-padded, and each prompt's last position ``(B,)``."""
        import torch

        T = max(len(p) for p in prompts)
        x = torch.zeros(len(prompts), T, dtype=torch.long)
        for i, p in enumerate(prompts):
            x[i, :len(p)] = torch.tensor([self.ids[t] for t in p])
        return x, torch.tensor([len(p) - 1 for p in prompts])


def _seed_run(seed: int, cfg: RagConfig) -> dict:
    """One seed: corpus, retriever, reranker, reader; accuracy of every arm on dev and test."""
    import torch

    from nlpcurriculum.metrics.timing import torch_threads
    from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
    from nlpcurriculum.retrieval.bm25 import BM25Index

    start = time.perf_counter()
    world = make_world(cfg.n_entities, cfg.n_dev, cfg.n_test, seed)
    vocab = _Vocab(world)
    rng = np.random.default_rng(seed + 1000)
    bm25 = BM25Index.build(world.passages)
    A = len(ATTRIBUTES)
    # questions: train entities in both phrasings; dev / test ones in one phrasing drawn at random
    qs: dict[int, list[tuple[int, int, list[str]]]] = {0: [], 1: [], 2: []}
    for e in range(len(world.names)):
        s = int(world.split[e])
        for a in range(A):
            if s == 0:
                qs[0] += [(e, a, world.question(e, a, False)), (e, a, world.question(e, a, True))]
            else:
                qs[s].append((e, a, world.question(e, a, bool(rng.integers(2)))))
    held_out = {n for n, t in enumerate(world.touches) if any(world.split[e] for e in t)}
    reranker = LexicalReranker([q for _, _, q in qs[0]], [world.passages[world.fact_passage[e, a]]
                                                           for e, a, _ in qs[0]], world.passages)
    top = {s: bm25.search([q for _, _, q in qs[s]], cfg.candidates)[0] for s in qs}   # (n_s, candidates)

    # training contexts: the gold passage among BM25 candidates of train entities only
    train_ctx = [[int(c) for c in row if int(c) not in held_out and int(c) != world.fact_passage[e, a]]
                 for row, (e, a, _) in zip(top[0], qs[0])]

    def example(i: int) -> tuple[list[str], str]:
        e, a, q = qs[0][i]
        m = int(rng.integers(cfg.train_k + 1))
        if m == 0:
            return assemble([], q, cfg.window), world.answer(e, a)
        ctx = train_ctx[i][:m - 1]
        ctx.insert(int(rng.integers(len(ctx) + 1)), int(world.fact_passage[e, a]))
        return assemble([world.passages[c] for c in ctx], q, cfg.window), world.answer(e, a)

    with torch_threads(cfg.num_threads):
        torch.manual_seed(seed)
        model = build_model(MiniFormerConfig(vocab_size=len(vocab), d_model=cfg.d_model, n_layers=cfg.n_layers,
                                             n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                                             max_seq_len=cfg.window))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
            1 + np.cos(np.pi * min(s, cfg.steps) / max(cfg.steps, 1))))
        losses = []
        model.train()
        for step in range(cfg.steps):
            batch = [example(int(i)) for i in rng.integers(len(qs[0]), size=cfg.batch_size)]
            x, last = vocab.batch([p for p, _ in batch])
            y = torch.full_like(x, -100)
            y[torch.arange(len(batch)), last] = torch.tensor([vocab.ids[a] for _, a in batch])
            loss = model(x, y).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        train_s = time.perf_counter() - start
        model.eval()

        def accuracy(prompts: list[list[str]], answers: list[str]) -> np.ndarray:
            out = []
            with torch.no_grad():
                for b in range(0, len(prompts), 256):
                    x, last = vocab.batch(prompts[b:b + 256])
                    logits = model(x).logits[torch.arange(len(x)), last]                 # (b, V)
                    out.append(logits.argmax(-1).numpy())
            want = np.array([vocab.ids[a] for a in answers])
            return (np.concatenate(out) == want).astype(float)                          # (n,)

        result: dict = {"losses": losses, "train_s": train_s}
        for s, split in ((1, "dev"), (2, "test")):
            items = qs[s]
            answers = [world.answer(e, a) for e, a, _ in items]
            gold = [int(world.fact_passage[e, a]) for e, a, _ in items]
            ranked = {"bm25": [list(map(int, row)) for row in top[s]]}
            ranked["rerank"] = [reranker.rerank(q, r, world.passages).tolist()
                                for (_, _, q), r in zip(items, ranked["bm25"])]
            prompts: dict[str, list[list[str]]] = {
                "closed_book": [assemble([], q, cfg.window) for _, _, q in items],
                "oracle": [assemble([world.passages[g]], q, cfg.window) for g, (_, _, q) in zip(gold, items)]}
            recall: dict[str, float] = {}
            for k in cfg.ks:
                for name, lists in ranked.items():
                    prompts[f"{name}.k{k}"] = [assemble([world.passages[c] for c in r[:k]], q, cfg.window)
                                               for r, (_, _, q) in zip(lists, items)]
                    recall[f"{name}.k{k}"] = float(np.mean([g in r[:k] for g, r in zip(gold, lists)]))
            survives: dict[str, float] = {}
            for strategy in STRATEGIES:
                arm = f"trunc.{strategy}"
                prompts[arm] = [assemble([world.passages[c] for c in r[:cfg.trunc_k]], q, cfg.window, strategy)
                                for r, (_, _, q) in zip(ranked["bm25"], items)]
                # the answer is readable when the gold passage's value and name are both in the prompt
                survives[arm] = float(np.mean([_readable(p, world.passages[g], a) for p, g, a in
                                               zip(prompts[arm], gold, answers)]))
            result[split] = {"accuracy": {n: accuracy(p, answers) for n, p in prompts.items()},
                             "recall": recall, "survives": survives,
                             "max_len": max(len(p) for ps in prompts.values() for p in ps),
                             "synonym": np.array([q[1] in {x[1] for x in ATTRIBUTES} for _, _, q in items])}
    return result


def _readable(prompt: list[str], passage: list[str], answer: str) -> bool:
    """Whether the whole gold passage appears in the prompt (so the answer can be copied from it)."""
    n = len(passage)
    return any(prompt[i:i + n] == passage for i in range(len(prompt) - n + 1)) and answer in prompt


def run(cfg: RagConfig, inputs: Inputs) -> list[ItemResult]:
    """The item: every seed (side by side in ``cfg.workers`` processes), then the findings."""
    from nlpcurriculum.experiments.harness import map_seeds

    seeds = map_seeds(_seed_run, cfg.seeds, cfg.workers, cfg)
    return [_item(seeds, cfg)]


def _item(seeds: list[dict], cfg: RagConfig) -> ItemResult:
    import matplotlib.pyplot as plt

    c = cfg.checks
    acc = {arm: [float(s["test"]["accuracy"][arm].mean()) for s in seeds] for arm in seeds[0]["test"]["accuracy"]}
    dev = {arm: float(np.mean([s["dev"]["accuracy"][arm].mean() for s in seeds])) for arm in acc}
    mean = {arm: float(np.mean(v)) for arm, v in acc.items()}
    metrics: dict[str, float] = {f"accuracy.{arm}": v for arm, v in mean.items()}
    metrics |= {f"dev.accuracy.{arm}": v for arm, v in dev.items()}
    for arm, v in acc.items():
        metrics |= {f"accuracy.{arm}.seed{s}": x for s, x in zip(cfg.seeds, v)}
    for key in ("recall", "survives"):
        for arm in seeds[0]["test"][key]:
            metrics[f"{key}.{arm}"] = float(np.mean([s["test"][key][arm] for s in seeds]))
    syn = [s["test"]["synonym"] for s in seeds]
    for arm in ("bm25.k1", "rerank.k1", f"bm25.k{cfg.main_k}"):
        metrics[f"accuracy.{arm}.synonym_questions"] = float(np.mean(
            [s["test"]["accuracy"][arm][m].mean() for s, m in zip(seeds, syn)]))
    max_len = max(s[split]["max_len"] for s in seeds for split in ("dev", "test"))
    metrics["max_prompt_len"] = float(max_len)
    if all(s["losses"] for s in seeds):
        metrics["final_train_loss"] = float(np.mean([np.mean(s["losses"][-50:]) for s in seeds]))
    timings = {f"train_s.seed{s}": r["train_s"] for s, r in zip(cfg.seeds, seeds)}
    main = f"bm25.k{cfg.main_k}"

    lines = [f"RAG with our LM on a generated facts corpus ({cfg.n_entities} entities, {cfg.n_test} "
             f"test entities x {len(ATTRIBUTES)} questions; seeds {cfg.seeds}; window {cfg.window})",
             f"{'arm':22s} {'test acc':>8s} {'per seed':>22s} {'dev acc':>8s} {'recall':>7s} {'gold whole':>10s}"]
    for arm in acc:
        rec = metrics.get(f"recall.{arm}", float("nan"))
        kept = metrics.get(f"survives.{arm}", float("nan"))
        lines.append(f"{arm:22s} {mean[arm]:8.3f} {' '.join(f'{x:.3f}' for x in acc[arm]):>22s} "
                     f"{dev[arm]:8.3f} {rec:7.3f} {kept:10.3f}")
    lines.append(f"synonym questions only: bm25.k1 {metrics['accuracy.bm25.k1.synonym_questions']:.3f}, "
                 f"rerank.k1 {metrics['accuracy.rerank.k1.synonym_questions']:.3f}, {main} "
                 f"{metrics[f'accuracy.{main}.synonym_questions']:.3f}")
    lines.append(f"truncation arms: BM25 top {cfg.trunc_k} into a window of {cfg.window}; chance is 1/12 = 0.083; "
                 "recall: gold passage among the k retrieved; gold whole: the whole gold passage survives truncation")

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, style in (("bm25", "o-"), ("rerank", "s-")):
        ax[0].plot(cfg.ks, [mean[f"{name}.k{k}"] for k in cfg.ks], style, label=f"{name} (accuracy)")
        ax[0].plot(cfg.ks, [metrics[f"recall.{name}.k{k}"] for k in cfg.ks], style, alpha=0.35,
                   label=f"{name} (recall@k)")
    ax[0].axhline(mean["oracle"], color="g", ls="--", label="oracle context")
    ax[0].axhline(mean["closed_book"], color="r", ls="--", label="closed-book")
    ax[0].set(xlabel="passages retrieved (k)", ylabel="answer accuracy", ylim=(0, 1.02), title="k and reranking")
    ax[0].legend(fontsize=7)
    names = [f"trunc.{s}" for s in STRATEGIES]
    ax[1].bar([n.split(".")[1] for n in names], [mean[n] for n in names],
              yerr=[np.std(acc[n], ddof=1) if len(acc[n]) > 1 else 0 for n in names], capsize=4)
    ax[1].set(ylabel="answer accuracy", ylim=(0, 1.02), title=f"truncating top {cfg.trunc_k} to {cfg.window} tokens")
    fig.tight_layout()
    return ItemResult(
        item=ITEMS[0], metrics=metrics, timings=timings, figures={"rag_ablations.png": fig},
        series={f"loss_seed{s}": [(i, x) for i, x in enumerate(r["losses"]) if i % 10 == 0]
                for s, r in zip(cfg.seeds, seeds)},
        texts={"rag.txt": "\n".join(lines) + "\n"},
        findings=[
            Finding.compare(f"BM25 top-{cfg.main_k} context lifts the reader's answer accuracy on unseen facts "
                            "far above closed-book (paired by seed); a reader that ignores its context ties",
                            "rag_minus_closed_book", acc[main], acc["closed_book"], margin=c.min_rag_over_closed),
            Finding.at_most("control: closed-book accuracy on the test facts stays near chance (1/12): the "
                            "facts never leaked into training (mean over seeds)", "closed_book_accuracy",
                            mean["closed_book"], c.max_closed_book),
            Finding.compare("with the gold passage alone (oracle context) the reader answers correctly "
                            "(the upper bound; an untrained reader fails it)", "oracle_accuracy",
                            acc["oracle"], None, margin=c.min_oracle),
            Finding.compare(f"top-{cfg.main_k} beats top-1 (BM25 order): synonym questions need the entity's "
                            "other passages (paired by seed)", "k_gain", acc[main], acc["bm25.k1"], margin=c.min_k_gain),
            Finding.compare("reranking the BM25 candidates with the learned term-translation reranker lifts "
                            "top-1 accuracy (paired by seed)", "rerank_gain_k1", acc["rerank.k1"], acc["bm25.k1"],
                            margin=c.min_rerank_gain_k1),
            Finding.compare(f"truncating top-{cfg.trunc_k} to the window: keeping the head (best-ranked passages) "
                            "beats keeping the tail (paired by seed)", "head_minus_tail",
                            acc["trunc.head"], acc["trunc.tail"], margin=c.min_head_over_tail),
            Finding.compare("keeping the head beats an equal per-passage budget, which cuts every passage's "
                            "end (paired by seed)", "head_minus_per_passage", acc["trunc.head"],
                            acc["trunc.per_passage"], margin=c.min_head_over_per_passage),
            Finding.at_most(f"every assembled prompt fits the reader's window of {cfg.window} tokens",
                            "max_prompt_len", max_len, cfg.window, kind=INVARIANT),
        ])
