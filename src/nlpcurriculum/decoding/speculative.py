"""Speculative decoding: a small draft model proposes, the large target model verifies in one pass.

Autoregressive decoding runs the target once per token. Speculative sampling (Leviathan et al.
2023, "Fast Inference from Transformers via Speculative Decoding", arXiv:2211.17192; Chen et al.
2023, "Accelerating Large Language Model Decoding with Speculative Sampling", arXiv:2302.01318)
lets a cheap draft model ``q`` propose ``gamma`` tokens one by one, then runs the target ``p``
*once* over all ``gamma + 1`` positions (the pending token and the ``gamma`` drafted ones) and
keeps a prefix of the proposal:

1. drafted token ``x_i`` (sampled from ``q_i``) is accepted with probability
   ``min(1, p_i(x_i) / q_i(x_i))``, in order, stopping at the first rejection;
2. at a rejection at ``j``, the replacement is sampled from the residual
   ``norm(max(0, p_j - q_j))``;
3. if all ``gamma`` are accepted, a bonus token is sampled from ``p_gamma`` (the target scored
   that position anyway).

Every emitted token is then distributed *exactly* as the target's own sample (Leviathan et al.,
Theorem 3.5): ``P(x) = min(q(x), p(x)) + (1 - sum_y min(q(y), p(y))) * norm(max(0, p - q))(x)
= p(x)``. At temperature 0 both distributions are one-hot, the rule reduces to "accept while
the drafted token is the target's arg-max; emit the target's arg-max at the first mismatch", and
the output is identical, token for token, to the target's greedy decoding.

The draft is a :class:`~nlpcurriculum.decoding.drafters.Drafter` (``start``, ``propose``,
``rollback``; see that module): a small model, a context (prompt-lookup) copy, a distilled n-gram
table, or a chain of them. A deterministic drafter proposes without a distribution; its ``q`` is
one-hot on each proposed id, for which the rule below stays exact. The target keeps a
:class:`~nlpcurriculum.nn.kv_cache.KVCache` with this invariant between calls: it holds every
token of the sequence but the last (the *pending* token, whose next-token distribution is not
computed yet). After verification it is cropped back to the last accepted token
(:meth:`~nlpcurriculum.nn.kv_cache.KVCache.crop`) and the drafter is told how many tokens were
kept (a model draft crops its own cache the same way).

Cost model (Leviathan et al., eq. 1 and Theorem 3.8): with acceptance rate ``a`` (the
probability that a drafted token is accepted, taken as i.i.d. per position) and cost ratio ``c``
(one draft forward / one target forward), one call emits ``(1 - a^(gamma+1)) / (1 - a)`` tokens
on average and costs ``gamma * c + 1`` target forwards, so the expected wall-clock speedup over
autoregressive decoding is ``(1 - a^(gamma+1)) / ((1 - a) * (gamma * c + 1))``
(:func:`expected_speedup`). It assumes scoring ``gamma + 1`` tokens costs the same as one; on a
CPU it does not quite, so :func:`expected_speedup` also takes the measured verification cost.

Dimension legend: B batch, G drafted tokens per call (gamma), V vocabulary.

Left out: batched speculative decoding of different sequences (ragged acceptance), tree / multi-
candidate drafts (SpecInfer, Medusa), self-drafting (early exit). A drafter may propose fewer
than ``gamma`` tokens (the table draft stops when unsure): ``gamma`` is an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlpcurriculum.decoding.drafters import Drafter, as_drafter
from nlpcurriculum.decoding.generate import generate
from nlpcurriculum.decoding.samplers import SamplerConfig
from nlpcurriculum.nn.kv_cache import KVCache
from nlpcurriculum.nn.fast.decode_layout import decode_layout

__all__ = [
    "SpecStats",
    "acceptance_rate_from_tokens_per_call",
    "accept_block",
    "autoregressive",
    "expected_speedup",
    "expected_tokens_per_call",
    "speculative_generate",
]


@dataclass
class SpecStats:
    """What the verification calls of :func:`speculative_generate` did.

    Attributes:
        gamma: the requested draft length (a call near the end may draft fewer).
        proposed: tokens drafted in each target call.
        accepted: drafted tokens accepted in each target call (``<= proposed``).
        draft_calls: draft forward passes in total.
        target_calls: target forward passes in total (one per call, the prefill excluded).
        beta: when sampling, ``sum_x min(p_i(x), q_i(x))`` at every judged position ``i``: the
            probability that position's drafted token is accepted (Leviathan et al.'s
            ``beta``), so its mean predicts :attr:`acceptance_rate`.
    """

    gamma: int
    proposed: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    draft_calls: int = 0
    target_calls: int = 0
    beta: list[float] = field(default_factory=list)

    def merge(self, other: "SpecStats") -> None:
        """Add another run's calls (e.g. another prompt) to these."""
        self.proposed += other.proposed
        self.accepted += other.accepted
        self.draft_calls += other.draft_calls
        self.target_calls += other.target_calls
        self.beta += other.beta

    def reached(self) -> list[int]:
        """Per draft position ``i``: calls that got to judge position ``i`` (all before accepted)."""
        out = [0] * self.gamma
        for g, n in zip(self.proposed, self.accepted):
            for i in range(min(g, n + 1)):
                out[i] += 1
        return out

    def accepted_at(self) -> list[int]:
        """Per draft position ``i``: calls whose drafted token ``i`` was accepted."""
        out = [0] * self.gamma
        for n in self.accepted:
            for i in range(n):
                out[i] += 1
        return out

    def acceptance_by_position(self) -> list[float]:
        """``P(accept token i | tokens 0..i-1 accepted)``, per position (nan where never reached)."""
        return [a / r if r else float("nan") for a, r in zip(self.accepted_at(), self.reached())]

    def cumulative_acceptance(self) -> list[float]:
        """``P(tokens 0..i all accepted)`` over full-length calls, per position."""
        full = [n for g, n in zip(self.proposed, self.accepted) if g == self.gamma]
        if not full:
            return [float("nan")] * self.gamma
        return [sum(n > i for n in full) / len(full) for i in range(self.gamma)]

    @property
    def acceptance_rate(self) -> float:
        """The per-token acceptance rate ``a``: accepted / judged (judged = accepted + rejected).

        This is the maximum-likelihood ``a`` of the i.i.d. model behind :func:`expected_speedup`:
        each call is a run of accepts ended by one reject (or by the end of the draft).
        """
        judged = sum(self.reached())
        return sum(self.accepted) / judged if judged else float("nan")

    @property
    def tokens(self) -> int:
        """Tokens emitted: every accepted draft token plus one target token per call."""
        return sum(self.accepted) + len(self.accepted)

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens emitted per target call."""
        return self.tokens / len(self.accepted) if self.accepted else float("nan")


def expected_tokens_per_call(a: float, gamma: int) -> float:
    """``(1 - a^(gamma+1)) / (1 - a)``: mean tokens per target call at i.i.d. acceptance ``a``."""
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"acceptance rate must be in [0, 1], got {a}")
    if a == 1.0:
        return float(gamma + 1)
    return (1.0 - a ** (gamma + 1)) / (1.0 - a)


def expected_speedup(a: float, gamma: int, c: float, verify_ratio: float = 1.0) -> float:
    """Leviathan et al.'s expected wall-clock speedup over autoregressive decoding.

    Args:
        a: per-token acceptance rate.
        gamma: drafted tokens per call.
        c: cost of one draft forward / cost of one (one-token) target forward.
        verify_ratio: cost of the target's ``gamma + 1``-token verification pass / its one-token
            pass; the paper's formula assumes 1 (parallel hardware), a CPU pays somewhat more.

    Returns:
        ``(1 - a^(gamma+1)) / ((1 - a) * (gamma * c + verify_ratio))``.
    """
    if gamma < 0 or c < 0 or verify_ratio <= 0:
        raise ValueError(f"need gamma >= 0, c >= 0, verify_ratio > 0; got {gamma}, {c}, {verify_ratio}")
    return expected_tokens_per_call(a, gamma) / (gamma * c + verify_ratio)


def acceptance_rate_from_tokens_per_call(tokens_per_call: float, gamma: int) -> float:
    """Invert :func:`expected_tokens_per_call` for ``a`` (bisection; it is increasing in ``a``)."""
    if not 1.0 <= tokens_per_call <= gamma + 1:
        raise ValueError(f"tokens_per_call must be in [1, {gamma + 1}], got {tokens_per_call}")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_tokens_per_call(mid, gamma) < tokens_per_call:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def accept_block(p: Tensor, q: Tensor, drafted: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The rejection-sampling rule of speculative sampling, batched over independent rows.

    Args:
        p: target probabilities at the ``G + 1`` scored positions, ``(B, G+1, V)``.
        q: draft probabilities the ``G`` drafted tokens were sampled from, ``(B, G, V)``.
        drafted: the drafted ids, ``(B, G)``.
        generator: the random source (uniforms for the accept tests, the replacement sample).

    Returns:
        ``(n_accepted, next_token)``, each ``(B,)``: how many drafted tokens (a prefix) are kept,
        and the token emitted after them (from the residual at the first rejection, or the bonus
        token from ``p[:, G]`` when all were accepted).
    """
    B, G1, V = p.shape
    G = G1 - 1
    if q.shape != (B, G, V) or drafted.shape != (B, G):
        raise ValueError(f"shapes disagree: p {tuple(p.shape)}, q {tuple(q.shape)}, "
                         f"drafted {tuple(drafted.shape)}")
    idx = drafted.unsqueeze(-1)  # (B, G, 1)
    p_x = p[:, :G].gather(-1, idx).squeeze(-1)  # (B, G): p_i(x_i)
    q_x = q.gather(-1, idx).squeeze(-1)  # (B, G): q_i(x_i) > 0, x_i was sampled from q_i
    u = torch.rand(B, G, generator=generator, dtype=p.dtype)  # (B, G) in [0, 1)
    ok = u * q_x < p_x  # accept with probability min(1, p/q)
    n_acc = ok.long().cumprod(dim=1).sum(dim=1)  # (B,): length of the accepted prefix
    rows = torch.arange(B)
    p_n = p[rows, n_acc]  # (B, V): the target at the first rejected (or the bonus) position
    q_pad = torch.cat([q, torch.zeros(B, 1, V, dtype=q.dtype)], dim=1)  # (B, G+1, V); bonus: q = 0
    residual = (p_n - q_pad[rows, n_acc]).clamp_min(0.0)  # (B, V) = max(0, p - q)
    mass = residual.sum(dim=-1, keepdim=True)  # (B, 1); 0 only when p == q (then nothing rejects)
    residual = torch.where(mass > 0, residual / mass.clamp_min(1e-30), p_n)
    nxt = torch.multinomial(residual, 1, generator=generator).squeeze(1)  # (B,)
    return n_acc, nxt


def _check(target: nn.Module, drafter: Drafter, prompt: Sequence[int], max_new_tokens: int,
           gamma: int, temperature: float) -> None:
    if not prompt:
        raise ValueError("prompt must hold at least one token id")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not hasattr(target, "blocks"):
        raise TypeError("target must be a MiniFormer (it needs .blocks and the kv_cache argument)")
    v_t = target.lm_head.out_features
    if drafter.vocab_size is not None and drafter.vocab_size != v_t:
        raise ValueError(f"draft vocabulary ({drafter.vocab_size}) differs from the target's ({v_t})")


@torch.inference_mode()
def speculative_generate(
    target: nn.Module,
    draft: nn.Module | Drafter,
    prompt: Sequence[int],
    max_new_tokens: int,
    gamma: int = 4,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    stats: SpecStats | None = None,
) -> list[int]:
    """Generate ``max_new_tokens`` ids from ``target``, drafting up to ``gamma`` at a time.

    Args:
        target: the model whose distribution the output follows (a MiniFormer).
        draft: the proposer: a :class:`~nlpcurriculum.decoding.drafters.Drafter` (context lookup,
            distilled n-gram table, a chain of them), or a model, wrapped in a
            :class:`~nlpcurriculum.decoding.drafters.ModelDrafter` (a MiniFormer with its own KV
            cache, or the cache-less ``BigramLM``). Same vocabulary.
        prompt: token ids to continue.
        max_new_tokens: ids to produce (exactly; the last call drafts fewer if needed).
        gamma: the most drafted tokens per target call (a drafter may propose fewer).
        temperature: 0 = greedy (output identical to the target's greedy decoding); > 0 samples
            from ``softmax(logits / temperature)`` of the target, exactly.
        generator: random source for sampling (ignored at temperature 0).
        stats: if given, filled with the per-call proposals and acceptances.

    Returns:
        The new ids.
    """
    drafter = as_drafter(draft)
    _check(target, drafter, prompt, max_new_tokens, gamma, temperature)
    target.eval()
    greedy = temperature == 0.0
    V = target.lm_head.out_features
    tokens = list(prompt)
    draft_model = getattr(drafter, "model", None)  # a ModelDrafter's model decodes the same way
    drafts = [draft_model] if isinstance(draft_model, nn.Module) else []
    with decode_layout(target, *drafts):  # transposed weight copies: faster small-row products
        t_cache = KVCache(len(target.blocks), capacity=len(prompt) + max_new_tokens + gamma)
        if len(tokens) > 1:  # prefill everything but the pending (last) token
            target(torch.tensor([tokens[:-1]]), kv_cache=t_cache)
        drafter.start(tokens)
        stats = stats if stats is not None else SpecStats(gamma)
        new: list[int] = []
        while len(new) < max_new_tokens:
            g = min(gamma, max_new_tokens - len(new) - 1)  # never draft past the end
            drafted, q = drafter.propose(tokens, g, temperature, generator) if g > 0 else ([], None)
            g = len(drafted)  # a drafter may propose fewer than asked (a lookup that finds nothing)
            stats.draft_calls += g
            # one target pass scores the pending token and all drafted ones: g + 1 distributions
            logits = target(torch.tensor([[tokens[-1]] + drafted]), kv_cache=t_cache).logits[0]  # (g+1, V)
            stats.target_calls += 1
            if greedy:
                best = logits.argmax(dim=-1).tolist()  # the target's greedy choice at each position
                n_acc = 0
                while n_acc < g and drafted[n_acc] == best[n_acc]:
                    n_acc += 1
                nxt = best[n_acc]
            else:
                p = F.softmax(logits.float() / temperature, dim=-1)  # (g+1, V)
                d_ids = torch.tensor(drafted, dtype=torch.long)  # (g,)
                if q is None:  # a deterministic draft: q is one-hot on each drafted id
                    q = F.one_hot(d_ids, V).to(p.dtype) if g else p.new_zeros(0, V)  # (g, V)
                n_t, nxt_t = accept_block(p[None], q[None], d_ids.view(1, g), generator)
                n_acc, nxt = int(n_t[0]), int(nxt_t[0])
                judged = min(g, n_acc + 1)
                if judged:
                    stats.beta += torch.minimum(p[:judged], q[:judged]).sum(-1).tolist()
            stats.proposed.append(g)
            stats.accepted.append(n_acc)
            kept = len(tokens) + n_acc  # everything up to the last accepted token is now cached
            tokens += drafted[:n_acc] + [nxt]
            new += drafted[:n_acc] + [nxt]
            t_cache.crop(kept)  # roll back the rejected tail (nxt becomes the pending token)
            drafter.rollback(kept)
    return new[:max_new_tokens]


@torch.inference_mode()
def autoregressive(model: nn.Module, prompt: Sequence[int], max_new_tokens: int,
                   temperature: float = 0.0, generator: torch.Generator | None = None) -> list[int]:
    """Plain decoding with the KV cache, one target forward per token: the baseline to beat.

    :func:`~nlpcurriculum.decoding.generate.generate` with ``cache=True``: at temperature 0 the
    ids of :func:`~nlpcurriculum.decoding.kv_decode.greedy_cached`; above 0 a draw from
    ``softmax(logits / temperature)`` per token.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not prompt or max_new_tokens < 1:
        raise ValueError("need a non-empty prompt and max_new_tokens >= 1")
    return generate(model, prompt, max_new_tokens, sampler=SamplerConfig(temperature=temperature),
                    cache=True, generator=generator)
