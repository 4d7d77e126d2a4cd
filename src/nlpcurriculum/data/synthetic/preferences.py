"""Preference pairs (chosen / rejected) scored by a known rule.

Preference-optimisation methods (RLHF reward models, DPO: Rafailov et al. 2023, arXiv:2305.18290)
learn from pairs where one response is preferred. Here the preference comes from an explicit
reward, so a learned reward model or a DPO-tuned policy can be checked against the truth:

    score(response) = token_f1(response, reference) - verbosity * max(0, L - L_ref) / max(L_ref, 1)

with L the response's word count and L_ref the reference's: correctness first (token F1 is 1.0
for the exact reference), with a penalty for padding. Candidates are built from instruction
records (:mod:`.instructions`) by controlled corruptions: the reference itself, the reference
wrapped in chatty filler, a reference with one token changed, one with tokens dropped, and the
reference of a different record. The pair is the best- and a worse-scoring candidate, with both
scores recorded (ties are never emitted).

Left out: human-preference noise models (Bradley-Terry sampling of labels) and multi-response
rankings; ``label_noise`` only flips whole pairs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from nlpcurriculum.data.synthetic import instructions
from nlpcurriculum.data.synthetic.base import as_rng

FILLERS = ("Sure! Here is the answer you asked for:", "Great question. After careful thought,",
           "Of course. I am happy to help with this task. The result is")


def token_f1(response: str, reference: str) -> float:
    """SQuAD-style bag-of-tokens F1 between two whitespace-tokenised strings."""
    r, g = response.split(), reference.split()
    if not r or not g:
        return float(r == g)
    common = sum((Counter(r) & Counter(g)).values())
    if common == 0:
        return 0.0
    p, q = common / len(r), common / len(g)
    return 2 * p * q / (p + q)


def rule_score(response: str, reference: str, verbosity: float = 0.1) -> float:
    """The known reward (see module docstring)."""
    lr, lg = len(response.split()), len(reference.split())
    return token_f1(response, reference) - verbosity * max(0, lr - lg) / max(lg, 1)


def _candidates(ref: str, other_ref: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    words = ref.split()
    changed = list(words)
    if changed:
        i = int(rng.integers(len(changed)))
        w = changed[i]
        changed[i] = str(int(w) + 1) if w.isdigit() else w[::-1] + "x"
    dropped = [w for w in words if rng.random() > 0.5] or words[:1]
    return [
        ("reference", ref),
        ("verbose", f"{FILLERS[int(rng.integers(len(FILLERS)))]} {ref}"),
        ("one_token_changed", " ".join(changed)),
        ("tokens_dropped", " ".join(dropped)),
        ("wrong_record", other_ref),
    ]


@dataclass
class PreferenceConfig:
    """Attributes:
        n: number of pairs.
        verbosity: length-penalty weight of the rule.
        label_noise: probability of swapping chosen and rejected (their scores move with them,
            so noisy pairs are detectable: ``score_chosen < score_rejected``).
    """

    n: int = 1000
    verbosity: float = 0.1
    label_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.verbosity < 0:
            raise ValueError(f"verbosity must be >= 0, got {self.verbosity}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {self.label_noise}")


def generate(
    cfg: PreferenceConfig | None = None, seed: int | np.random.Generator = 0
) -> list[dict]:
    """Preference pairs.

    Returns:
        Records ``{"prompt", "task_type", "chosen", "rejected", "score_chosen", "score_rejected",
        "kind_chosen", "kind_rejected", "flipped"}``; without label noise
        ``score_chosen > score_rejected`` always.
    """
    cfg = cfg or PreferenceConfig()
    rng = as_rng(seed)
    prompts = instructions.generate(instructions.InstructionConfig(n=cfg.n + 1), rng)
    out = []
    for i in range(cfg.n):
        rec, other = prompts[i], prompts[i + 1]
        ref = rec["response"]
        scored = [(rule_score(text, ref, cfg.verbosity), kind, text)
                  for kind, text in _candidates(ref, other["response"], rng)]
        best = max(scored, key=lambda s: s[0])
        worse = [s for s in scored if s[0] < best[0]]
        rejected = worse[int(rng.integers(len(worse)))]
        chosen, flipped = best, bool(rng.random() < cfg.label_noise)
        if flipped:
            chosen, rejected = rejected, chosen
        out.append({
            "prompt": rec["prompt"], "task_type": rec["task_type"],
            "chosen": chosen[2], "rejected": rejected[2],
            "score_chosen": chosen[0], "score_rejected": rejected[0],
            "kind_chosen": chosen[1], "kind_rejected": rejected[1], "flipped": flipped,
        })
    return out
