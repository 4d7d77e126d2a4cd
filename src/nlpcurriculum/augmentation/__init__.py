"""Data augmentation that needs a trained model: embedding synonyms, back-translation, LM
paraphrases (:mod:`~nlpcurriculum.augmentation.model_based`).

The rule operations of EDA, which need no model, stay in :mod:`nlpcurriculum.data.augment`. A
task layer (see docs/ARCHITECTURE.md): it builds on ``embeddings``, ``decoding`` and the models;
nothing below imports it.
"""
