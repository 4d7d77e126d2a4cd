"""BM25 retrieval speed on BEIR SciFact, one core: ours vs bm25s vs rank-bm25, in one run.

All three score the same pre-tokenised queries (our analyser, which equals bm25s.tokenize with
English stop words and the Snowball stemmer; tokenising is not timed) against the same corpus
(``title + " " + text``) and return each query's top ``--k`` documents:

* ours: :class:`nlpcurriculum.retrieval.bm25.BM25Index`, Lucene variant, k1 1.2, b 0.75, float32
  weights (bm25s' default dtype), all queries in one call (``search``: sparse product, then top k),
  and again one query per call (``batch_size=1``);
* bm25s 0.3.x: ``BM25(method="lucene").retrieve(queries, k, n_threads=0)`` (its numpy backend; no
  numba here), float32;
* rank-bm25: ``BM25Okapi(k1=1.5, b=0.75).get_scores(q)`` per query + ``argpartition`` for the top k
  (it has no batch call and no top-k call).

The arms are timed in interleaved rounds (each round runs every arm once; order reversed every
other round), and queries/s is the median over rounds; ratios are taken round by round. Numpy and
BLAS are held to one thread (set before numpy loads). The published anchors (bm25-benchmarks,
single core, another machine): bm25s 3,222 queries/s, rank-bm25 47.6 on SciFact.

Usage:
    python benchmarks/bm25_speed.py              # 5 rounds, ~1 minute
    python benchmarks/bm25_speed.py --rounds 9 --json out.json

Run it on a quiet machine: other processes on shared cores distort throughput ratios.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from nlpcurriculum.retrieval.beir import load_beir  # noqa: E402
from nlpcurriculum.retrieval.bm25 import BM25Index, BM25Params  # noqa: E402
from nlpcurriculum.retrieval.evaluate import evaluate, mean_metrics, run_from_topk  # noqa: E402
from nlpcurriculum.retrieval.text import Analyzer  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "beir_scifact"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA), help="a BEIR-format folder")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import bm25s
    import rank_bm25

    data = load_beir(args.data)
    an = Analyzer()
    docs, queries = an.batch(data.documents()), an.batch(data.queries["text"].tolist())
    n = len(queries)

    ours = BM25Index.build(docs, BM25Params(k1=1.2, b=0.75, variant="lucene", dtype="float32"),
                           data.corpus["doc_id"].tolist())
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index(docs, show_progress=False)
    okapi = rank_bm25.BM25Okapi(docs, k1=1.5, b=0.75, epsilon=0.0)

    def rank_bm25_all():
        for q in queries:
            s = okapi.get_scores(q)
            np.argpartition(-s, args.k)[: args.k]

    arms = {
        "ours (batch)": lambda: ours.search(queries, args.k),
        "ours (1 query per call)": lambda: ours.search(queries, args.k, batch_size=1),
        "bm25s": lambda: ref.retrieve(queries, k=args.k, show_progress=False, n_threads=0),
        "rank-bm25": rank_bm25_all,
    }
    times: dict[str, list[float]] = {a: [] for a in arms}
    order = list(arms)
    for r in range(1 + args.rounds):                       # round 0 warms up, untimed
        for name in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            arms[name]()
            if r:
                times[name].append(time.perf_counter() - start)

    qps = {a: n / statistics.median(t) for a, t in times.items()}
    ratio = {f"ours / {other}": statistics.median(o / x for o, x in zip(times[other], times["ours (batch)"]))
             for other in ("bm25s", "rank-bm25")}
    top, scores = ours.search(queries, 1000)
    ndcg = mean_metrics(evaluate(run_from_topk(data.queries["query_id"].tolist(), ours.doc_ids, top, scores),
                                 data.qrels, ["ndcg@10"]))["ndcg@10"]
    print(f"BEIR {data.name}: {len(docs)} docs, {n} queries, top {args.k}, 1 thread, "
          f"median of {args.rounds} interleaved rounds (bm25s {bm25s.__version__})")
    for a, v in qps.items():
        print(f"  {a:26s} {v:10.1f} queries/s")
    for a, v in ratio.items():
        print(f"  {a:26s} {v:10.2f}x  (per-round ratio, median)")
    print(f"  ours nDCG@10 (lucene, k1 1.2, b 0.75)  {ndcg:.4f}  (published Lucene: 0.680)")
    if args.json:
        Path(args.json).write_text(json.dumps({"queries_per_s": qps, "ratios": ratio, "ndcg@10": ndcg,
                                               "seconds": times}, indent=2))


if __name__ == "__main__":
    main()
