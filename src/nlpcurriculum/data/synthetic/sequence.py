"""Copy and reverse tasks over random token sequences.

The classic algorithmic probes for sequence models (e.g. Graves et al. 2014, "Neural Turing
Machines", arXiv:1410.5401; the copy task of the long-range and SSM literature): the target is the
input itself (copy) or the input reversed (reverse). Copying needs only content-independent
attention to a fixed offset; reversing needs position arithmetic, so length generalisation of the
two differs.

Records carry both text (letters separated by spaces, ``|`` between input and target) and integer
token ids over a ``vocab_size`` alphabet, so a model can train on either.

Left out: selective copying, associative recall (see ``kv_recall``) and sorting.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nlpcurriculum.data.synthetic.base import as_rng

SYMBOLS = list(string.ascii_lowercase + string.ascii_uppercase + string.digits)


@dataclass
class SequenceTaskConfig:
    """Attributes:
        n: number of examples.
        task: ``"copy"``, ``"reverse"`` or ``"mixed"`` (each example picks one).
        vocab_size: distinct symbols (<= 62).
        min_len, max_len: input length range (uniform).
    """

    n: int = 1000
    task: Literal["copy", "reverse", "mixed"] = "copy"
    vocab_size: int = 26
    min_len: int = 4
    max_len: int = 16

    def __post_init__(self) -> None:
        if self.task not in ("copy", "reverse", "mixed"):
            raise ValueError(f"task must be 'copy', 'reverse' or 'mixed', got {self.task!r}")
        if not 2 <= self.vocab_size <= len(SYMBOLS):
            raise ValueError(f"vocab_size must be in [2, {len(SYMBOLS)}], got {self.vocab_size}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


def generate(
    cfg: SequenceTaskConfig | None = None, seed: int | np.random.Generator = 0
) -> list[dict]:
    """Copy / reverse examples.

    Returns:
        Records ``{"task", "input_ids", "target_ids", "input", "target", "text"}`` where
        ``text`` is ``"<input> | <target>"``.
    """
    cfg = cfg or SequenceTaskConfig()
    rng = as_rng(seed)
    out = []
    for _ in range(cfg.n):
        task = cfg.task if cfg.task != "mixed" else ("copy", "reverse")[int(rng.integers(2))]
        length = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        ids = rng.integers(cfg.vocab_size, size=length).tolist()
        target = ids if task == "copy" else ids[::-1]
        src = " ".join(SYMBOLS[i] for i in ids)
        tgt = " ".join(SYMBOLS[i] for i in target)
        out.append({"task": task, "input_ids": ids, "target_ids": list(target), "input": src,
                    "target": tgt, "text": f"{src} | {tgt}"})
    return out
