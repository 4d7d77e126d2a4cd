"""Retrieval (a task layer): BEIR-format data, ranking metrics, and retrievers written here.

* :mod:`~nlpcurriculum.retrieval.beir`: load any BEIR-format folder (``corpus.jsonl``,
  ``queries.jsonl``, ``qrels/<split>.tsv``; gzip allowed) under pandera contracts.
* :mod:`~nlpcurriculum.retrieval.evaluate`: nDCG@k, recall@k, MRR@k per query (trec_eval's
  conventions, checked against ``pytrec_eval``), bootstrap confidence intervals over queries.
* :mod:`~nlpcurriculum.retrieval.text`: the bm25s-style analyser (lowercase, ``\\b\\w\\w+\\b``,
  English stop words, Snowball stemming).
* :mod:`~nlpcurriculum.retrieval.bm25`: BM25 over a scipy sparse term matrix (Robertson, Lucene
  and rank-bm25's Okapi variants), persisted and reloaded.
* :mod:`~nlpcurriculum.retrieval.chunking`: sentence, paragraph and sliding-window chunkers, and
  document scores from chunk scores, and the document -> section -> sentence hierarchical index.
* :mod:`~nlpcurriculum.retrieval.dense`: a DPR-style bi-encoder trained here, FAISS flat / IVF /
  HNSW over its vectors, and rank fusion (RRF, weighted scores) with BM25.
* :mod:`~nlpcurriculum.retrieval.semantic_cache`: a semantic cache for near-repeated queries
  (cosine threshold over cached query vectors) with invalidation by version stamps and a score bound.
* :mod:`~nlpcurriculum.retrieval.rag`: RAG prompt assembly under a window (head, tail,
  per-passage, whole-passage truncation) and a learned term-translation reranker.
* :mod:`~nlpcurriculum.retrieval.encoder`: what the rerankers share: a term tokenizer over the
  analyser's stems, a bidirectional mini-former body, listwise training against hard negatives.
* :mod:`~nlpcurriculum.retrieval.rerank`: a cross-encoder over ``[CLS] query [SEP] doc``.
* :mod:`~nlpcurriculum.retrieval.late_interaction`: ColBERT-style MaxSim over token vectors, with
  a precomputed token index of the corpus.
* :mod:`~nlpcurriculum.retrieval.pr_curves`: precision / recall over rank cutoffs, 11-point
  interpolated precision and AP@k in trec_eval's conventions.

Submodules are imported on demand; importing this package is free.
"""
