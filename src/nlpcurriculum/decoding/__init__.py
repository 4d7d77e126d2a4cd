"""Decoding: turning a language model's next-token distributions into text."""

from nlpcurriculum.decoding.generate import generate

__all__ = ["generate"]
