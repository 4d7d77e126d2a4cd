"""Long-context tricks: sliding-window attention, Infini-attention's compressive memory, and the
measurements that go with them.

- :mod:`~nlpcurriculum.longcontext.sliding_window`: the band mask, a ring-buffer KV cache whose
  memory is bounded by the window, and :class:`SlidingWindowAttention` (a module swap for the
  mini-former's attention);
- :mod:`~nlpcurriculum.longcontext.infini`: Infini-attention (Munkhdalai et al. 2024,
  arXiv:2404.07143): sliding-window attention plus a linear-attention memory of everything that
  has left the window, updated with the delta rule and mixed in by a learned gate;
- :mod:`~nlpcurriculum.longcontext.models`: a mini-former with its attention swapped for either,
  and the matching decode caches;
- :mod:`~nlpcurriculum.longcontext.recall`: the token-level key-value recall task, with each
  query's distance to its pair recorded;
- :mod:`~nlpcurriculum.longcontext.strided_eval`: perplexity with a strided sliding evaluation
  (stride sweep, overlap vs none) and the context-collapse point.

This package sits in the "methods" layer (docs/ARCHITECTURE.md): it builds on ``nn`` and
``models`` and is used by the section's experiment only.
"""
