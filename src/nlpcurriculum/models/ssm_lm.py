"""A language model of stacked selective state-space layers (a minimal Mamba LM).

Token embedding -> ``n_layers`` pre-norm residual blocks ``h + SelectiveSSM(RMSNorm(h))`` -> final
RMSNorm -> linear head (tied to the embedding), as in the Mamba paper's language models (Gu & Dao
2023, arXiv:2312.00752), without the MLP between mixers. No positional encoding: the recurrence
orders the tokens, so nothing in the model is tied to a maximum length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nlpcurriculum.nn.norms import RMSNorm
from nlpcurriculum.nn.ssm import SelectiveSSM, SSMConfig

__all__ = ["SSMLM", "SSMLMConfig"]


@dataclass
class SSMLMConfig:
    """Sizes of an :class:`SSMLM`: vocabulary, depth and the mixer's :class:`SSMConfig`."""

    vocab_size: int = 256
    n_layers: int = 2
    ssm: SSMConfig = field(default_factory=SSMConfig)


class SSMLM(nn.Module):
    """``(B, L)`` token ids -> ``(B, L, V)`` next-token logits; :meth:`step` for one token."""

    def __init__(self, cfg: SSMLMConfig) -> None:
        super().__init__()
        d = cfg.ssm.d_model
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.norms = nn.ModuleList(RMSNorm(d) for _ in range(cfg.n_layers))
        self.mixers = nn.ModuleList(SelectiveSSM(cfg.ssm) for _ in range(cfg.n_layers))
        self.out_norm = RMSNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)  # tied: unit-variance rows would make logits of ~sqrt(D)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)                                               # (B, L, D)
        for norm, mixer in zip(self.norms, self.mixers):
            h = h + mixer(norm(h))
        return self.head(self.out_norm(h))                                # (B, L, V)

    def initial_state(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [m.initial_state(batch) for m in self.mixers]

    def step(self, idx: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """One token per sequence, ``(B,)`` ids -> ``(B, V)`` logits and the new per-layer states."""
        h = self.embed(idx)                                               # (B, D)
        new_state = []
        for norm, mixer, s in zip(self.norms, self.mixers, state):
            y, s = mixer.step(norm(h), s)
            h = h + y
            new_state.append(s)
        return self.head(self.out_norm(h)), new_state
