"""Curriculum experiments built on :mod:`nlpcurriculum.nn`, one module per curriculum section.

Each module takes a config dataclass and data (objects, never paths) and returns one
:class:`~nlpcurriculum.results.ItemResult` per curriculum item; its stage script does the I/O and
the MLflow logging. :mod:`~nlpcurriculum.experiments.positional_embeddings.positional_embeddings`: the "Positional Embeddings"
section (stage ``positional_embeddings``).
"""
