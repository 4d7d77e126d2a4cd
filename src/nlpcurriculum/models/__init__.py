"""Model builders and presets: the mini-former (:mod:`~nlpcurriculum.models.miniformer`), its
Hugging Face weight maps (:mod:`~nlpcurriculum.models.hf_interop`, needs ``transformers``) and the
bigram baseline (:mod:`~nlpcurriculum.models.bigram`)."""

from nlpcurriculum.models.bigram import BigramLM

from nlpcurriculum.models.miniformer import (
    PRESETS,
    MiniFormer,
    MiniFormerConfig,
    ModelOutput,
    build_model,
    gpt2_like,
    llama_like,
    load_model,
    medium,
    preset,
    record_activations,
    small,
    tiny,
)

__all__ = [
    "PRESETS",
    "BigramLM",
    "MiniFormer",
    "MiniFormerConfig",
    "ModelOutput",
    "build_model",
    "gpt2_like",
    "llama_like",
    "load_model",
    "medium",
    "preset",
    "record_activations",
    "small",
    "tiny",
]
