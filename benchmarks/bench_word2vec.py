"""Benchmark: word2vec training throughput (words/s) for Skip-gram and CBOW, and the optimiser choice.

Corpus: rule-generated stories (``nlpcurriculum.data.synthetic.stories``), about ``--mb`` MB of
text. No reference implementation is installed here (gensim is not available), so the numbers
printed are absolute words/s plus ratios between variants measured in the same run:

* CBOW vs Skip-gram (CBOW makes one example per centre word instead of about ``W + 1``);
* ``sgd`` vs ``sparse_adam`` (the optimiser question of ``Word2VecConfig``), with the analogy
  accuracy each reaches after the same epochs, since speed alone does not decide it;
* 1 vs 2 torch threads (``Word2VecConfig.num_threads``).

"words" are in-vocabulary words of the text before subsampling, per epoch, as word2vec.c counts.
Timing rounds alternate between variants so background load hits them alike; the best of
``--repeat`` runs is reported.

Run: ``python benchmarks/bench_word2vec.py [--mb 1.5] [--epochs 1] [--repeat 2] [--quick]``.
Numbers depend on the machine and its load; rerun on a quiet machine before trusting them.
"""

from __future__ import annotations

import argparse
import json
import time

from nlpcurriculum.data.synthetic.stories import RELATIONS, generate_stories, similarity_pairs
from nlpcurriculum.embeddings import TrainLog, Word2VecConfig, evaluate_relations, simple_word_tokenize, train_word2vec


def corpus(mb: float, seed: int = 0) -> tuple[list[list[str]], int]:
    """About ``mb`` megabytes of stories, tokenised per story; also returns the byte count."""
    n = max(1, int(mb * 1e6 / 317))  # a story is about 317 bytes
    texts = generate_stories(n, seed)
    return [simple_word_tokenize(t) for t in texts], sum(len(t.encode()) for t in texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=1.5)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="0.3 MB, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.mb, args.repeat = 0.3, 1

    t0 = time.perf_counter()
    sentences, n_bytes = corpus(args.mb)
    n_words = sum(map(len, sentences))
    print(f"corpus: {n_bytes / 1e6:.2f} MB, {len(sentences)} stories, {n_words} words "
          f"(generated + tokenised in {time.perf_counter() - t0:.1f} s)")

    variants = {
        "skipgram/sparse_adam/1t": dict(arch="skipgram", optimizer="sparse_adam", lr=0.02, num_threads=1),
        "skipgram/sgd/1t": dict(arch="skipgram", optimizer="sgd", lr=0.025, num_threads=1),
        "skipgram/sparse_adam/2t": dict(arch="skipgram", optimizer="sparse_adam", lr=0.02, num_threads=2),
        "cbow/sparse_adam/1t": dict(arch="cbow", optimizer="sparse_adam", lr=0.02, num_threads=1),
        "cbow/sgd/1t": dict(arch="cbow", optimizer="sgd", lr=0.05, num_threads=1),
        "cbow/sparse_adam/2t": dict(arch="cbow", optimizer="sparse_adam", lr=0.02, num_threads=2),
    }
    best: dict[str, float] = {}
    acc: dict[str, float] = {}
    pairs = similarity_pairs()
    for r in range(args.repeat):
        for name, kw in variants.items():  # alternate variants within each round
            cfg = Word2VecConfig(dim=args.dim, epochs=args.epochs, seed=r, **kw)
            log = TrainLog()
            vectors = train_word2vec(sentences, cfg, log)
            best[name] = max(best.get(name, 0.0), log.words_per_second)
            if r == 0:
                acc[name] = evaluate_relations(vectors, RELATIONS, pairs).overall.accuracy  # type: ignore[union-attr]

    print(f"\n{'variant':<26}{'words/s':>12}{'analogy acc':>14}   (epochs={args.epochs}, dim={args.dim})")
    for name in variants:
        print(f"{name:<26}{best[name]:>12,.0f}{acc[name]:>14.3f}")
    ratios = {
        "cbow_over_skipgram (sparse_adam, 1 thread)": best["cbow/sparse_adam/1t"] / best["skipgram/sparse_adam/1t"],
        "sgd_over_sparse_adam (skipgram)": best["skipgram/sgd/1t"] / best["skipgram/sparse_adam/1t"],
        "sgd_over_sparse_adam (cbow)": best["cbow/sgd/1t"] / best["cbow/sparse_adam/1t"],
        "2_threads_over_1 (skipgram)": best["skipgram/sparse_adam/2t"] / best["skipgram/sparse_adam/1t"],
        "2_threads_over_1 (cbow)": best["cbow/sparse_adam/2t"] / best["cbow/sparse_adam/1t"],
    }
    print()
    for k, v in ratios.items():
        print(f"{k:<46}{v:>6.2f}x")
    print("\n" + json.dumps({"words_per_second": best, "analogy_acc": acc, "ratios": ratios,
                             "mb": round(n_bytes / 1e6, 3), "epochs": args.epochs}, sort_keys=True))


if __name__ == "__main__":
    main()
