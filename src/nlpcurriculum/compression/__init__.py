"""Model compression: making a smaller or cheaper model that behaves like a larger one.

:mod:`~nlpcurriculum.compression.distill` holds knowledge distillation (a student trained
towards a teacher's next-token distributions, and how far apart the two are). A task layer (see
docs/ARCHITECTURE.md): it builds on ``training`` and ``models``; nothing below imports it.
"""
