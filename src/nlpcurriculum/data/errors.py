"""The data errors a user can cause, in a module light enough for any layer to import.

A stage's ``main_guard`` turns :class:`ContractError` (and so every subclass here) into one line
on stderr instead of a traceback: these errors are about the user's data or settings, and their
message says what is wrong and which params key to change.
"""

from __future__ import annotations


class ContractError(ValueError):
    """A table does not satisfy its schema."""


class CorpusTooSmallError(ContractError):
    """The corpus (or one of its splits) is too small for what a stage does with it.

    The message names what was needed, what there is, and the keys that change either.
    """
