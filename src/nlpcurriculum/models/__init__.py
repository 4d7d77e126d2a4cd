"""Model builders and presets: the mini-former (:mod:`~nlpcurriculum.models.miniformer`) and its
Hugging Face weight maps (:mod:`~nlpcurriculum.models.hf_interop`, needs ``transformers``)."""

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
