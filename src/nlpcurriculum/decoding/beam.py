"""Beam search over a KV cache, with length normalisation, a coverage penalty and a step trace.

The ``k`` beams of one prompt run as a batch of ``k`` rows through the model. The prompt is
prefilled once and its keys/values are copied to the ``k`` rows; after each step the cache is
*reordered* (``index_select`` on the batch dimension) by the parent of every surviving beam, so
row ``j`` always holds the history of beam ``j`` (Pope et al. 2022, arXiv:2211.05102, on cached
decoding; the reorder is what beam search adds).

One step (the schedule of Hugging Face ``transformers``' beam search, so the two can be compared
token for token):

1. Each beam's next-token log-probs are added to its running sum; over all ``k x V``
   continuations the best ``2k`` by running sum are the *candidates* (``2k`` so that ``k``
   non-finished ones remain even if ``k`` of them end with EOS). At the start all beams are the
   same prompt, so beams ``1..k-1`` start at ``-1e9`` and only beam 0 is expanded.
2. A candidate that ends with EOS (or reaches ``max_new_tokens``) and ranks among the first ``k``
   becomes a *finished hypothesis* with the normalised score below; the pool keeps the best ``k``.
   An EOS candidate ranked below ``k`` is pruned.
3. The best ``k`` non-finished candidates are the next beams (ranked by the raw running sum: the
   normalisation only ranks finished hypotheses, as in GNMT); the rest are pruned.
4. Stop at ``max_new_tokens``; or, with ``early_stopping=True``, once ``k`` hypotheses are finished;
   otherwise once the pool is full and the best running beam, normalised at its current length
   (``early_stopping=False``) or at ``max_new_tokens`` (``"never"``, for ``alpha > 0``), no longer
   beats the worst finished hypothesis.

Scores of finished hypotheses (Wu et al. 2016, "Google's Neural Machine Translation System",
arXiv:1609.08144, section 7)::

    s(Y) = log P(Y | X) / lp(Y) + cp(X; Y)
    lp(Y) = |Y|^alpha                  ("simple": what transformers' ``length_penalty`` does)
    lp(Y) = ((5 + |Y|) / 6)^alpha      ("gnmt")
    cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1))

``|Y|`` counts the generated tokens including EOS. In GNMT ``p_ij`` is the attention of target
word ``j`` on source word ``i``. A decoder-only model has no source/target split, so here the
source is the *prompt* and ``p_ij`` is the attention of the query that predicts generated token
``j`` on prompt position ``i``: the last layer's attention, averaged over heads (the last layer is
the one closest to the prediction; averaging heads keeps one number per position, as GNMT's
single attention). ``cp <= 0``; it penalises hypotheses that never attended to parts of the prompt.
Computing it needs the attention weights, so the model then runs its by-hand attention path.

Relation to ``transformers``: with ``coverage_beta=0`` and ``length_norm="simple"`` this is
``generate(num_beams=k, do_sample=False, length_penalty=alpha, early_stopping=...,
max_new_tokens=N, eos_token_id=eos, pad_token_id=eos)``, for every ``alpha`` and all three
``early_stopping`` modes, up to float rounding of near-ties (the vectorised beam search of recent
transformers; tested with the installed 5.x). Both count ``|Y|`` as the new tokens including EOS
(not the prompt), both rank running beams by the raw sum, and both finalise only EOS candidates
ranked among the first ``k``; ``early_stopping="never"`` with ``alpha=0`` is the textbook search.

Dimension legend: k beams, V vocabulary, P prompt tokens.

Left out: batches of several prompts, diverse / constrained beam search, ``num_return_sequences``
(all finished hypotheses are returned), n-gram blocking, sampling inside beams.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nlpcurriculum.nn.kv_cache import KVCache

__all__ = ["BeamResult", "BeamStep", "Candidate", "Hypothesis", "beam_search", "coverage_log_sum",
           "length_penalty"]

NEG = -1.0e9


def length_penalty(length: int, alpha: float, form: str = "simple") -> float:
    """``lp(Y)``: ``length**alpha`` ("simple") or GNMT's ``((5 + length) / 6)**alpha``."""
    if form == "simple":
        return float(length) ** alpha
    if form == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    raise ValueError(f"length_norm must be 'simple' or 'gnmt', got {form!r}")


def coverage_log_sum(coverage: Tensor) -> float:
    """``sum_i log(min(coverage_i, 1))`` of one hypothesis' ``(P,)`` coverage (GNMT's cp / beta;
    <= 0, and 0 when every prompt position got at least a whole unit of attention)."""
    return float(torch.log(coverage.clamp(min=1e-9, max=1.0)).sum())


@dataclass(frozen=True)
class Candidate:
    """One of the ``2k`` best continuations considered at a step.

    Attributes:
        rank: 0-based rank by running log-prob among the step's candidates.
        parent: the beam slot (at the previous step) it extends.
        token: the token it appends.
        logprob: running log-prob of the whole continuation.
        token_logprob: log-prob of ``token`` alone.
        status: ``"kept"`` (a beam of the next step, slot ``slot``), ``"finished"`` (entered the
            pool of finished hypotheses), ``"rejected"`` (finished but not good enough for the pool,
            or the search had already decided to stop), ``"pruned_eos"`` (ended with EOS, ranked
            below ``k``) or ``"pruned"`` (below the ``k`` best non-finished).
        slot: the beam slot it occupies next step (``"kept"`` only, else -1).
        score: the normalised score (finished candidates; else the running log-prob).
    """

    rank: int
    parent: int
    token: int
    logprob: float
    token_logprob: float
    status: str
    slot: int = -1
    score: float = 0.0


@dataclass
class BeamStep:
    """The candidates of one step (0-based: step ``s`` appends the ``s+1``-th new token)."""

    step: int
    candidates: list[Candidate]


@dataclass
class Hypothesis:
    """A finished hypothesis: new tokens (EOS included when it ended so), raw log-prob, length
    used in the penalty, the final score and ``coverage`` = ``sum_i log(min(sum_j p_ij, 1))``
    (beta-free; NaN when attention was not tracked); ``step``/``rank``/``parent`` say where it was
    born in the trace."""

    tokens: list[int]
    logprob: float
    score: float
    length: int
    coverage: float = float("nan")
    step: int = -1
    rank: int = -1
    parent: int = -1


@dataclass
class BeamResult:
    """Finished hypotheses (best first), the per-step trace and how many forward passes ran."""

    hypotheses: list[Hypothesis]
    steps: list[BeamStep] = field(default_factory=list)
    forward_passes: int = 0
    beam_tokens: list[list[list[int]]] = field(default_factory=list)  # per step, slot -> tokens

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]


def _forward(model: nn.Module, x: Tensor, cache: KVCache, want_attn: bool, n_prompt: int):
    out = model(x, kv_cache=cache, return_attn=want_attn)
    logits = out.logits[:, -1].float()  # (rows, V)
    attn = None
    if want_attn:
        attn = out.attentions[-1][:, :, -1, :n_prompt].mean(dim=1)  # (rows, P): last layer, heads avg
    return logits, attn


@torch.no_grad()
def beam_search(
    model: nn.Module,
    prompt: Sequence[int],
    num_beams: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    alpha: float = 1.0,
    length_norm: str = "simple",
    coverage_beta: float = 0.0,
    early_stopping: bool | str = False,
    record: bool = False,
    track_coverage: bool = False,
) -> BeamResult:
    """Beam search with a KV cache (see the module docstring for the algorithm).

    Args:
        model: a MiniFormer (forward takes ``kv_cache=`` and ``return_attn=``).
        prompt: prompt ids.
        num_beams: ``k`` (1 with ``early_stopping=True`` is greedy decoding until EOS).
        max_new_tokens: most tokens generated (EOS included).
        eos_id: the end-of-sequence id, or None (every hypothesis then has ``max_new_tokens``).
        alpha: length-normalisation exponent (0 = raw log-prob).
        length_norm: ``"simple"`` (``|Y|**alpha``) or ``"gnmt"`` (``((5+|Y|)/6)**alpha``).
        coverage_beta: GNMT's coverage weight ``beta`` (0 = off; > 0 needs attention weights).
        early_stopping: ``True``, ``False`` or ``"never"`` (as in ``transformers``).
        record: keep the per-step candidates (:class:`BeamStep`) for visualisation.
        track_coverage: measure each hypothesis' coverage even when ``coverage_beta`` is 0.

    Returns:
        A :class:`BeamResult`; ``.best.tokens`` is the answer.
    """
    if not prompt:
        raise ValueError("prompt must hold at least one token id")
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(f"num_beams and max_new_tokens must be >= 1, got {num_beams}, {max_new_tokens}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if coverage_beta < 0:
        raise ValueError(f"coverage_beta must be >= 0, got {coverage_beta}")
    length_penalty(1, alpha, length_norm)  # validates the form
    model.eval()
    k, P = num_beams, len(prompt)
    want_attn = coverage_beta > 0 or track_coverage
    cache = KVCache(len(model.blocks), capacity=P + max_new_tokens)
    logits, attn = _forward(model, torch.tensor([list(prompt)]), cache, want_attn, P)
    cache.reorder(torch.zeros(k, dtype=torch.long))  # k identical copies of the prompt
    logits = logits.expand(k, -1)  # (k, V)
    attn = attn.expand(k, -1) if attn is not None else None
    passes = 1

    running = torch.full((k,), NEG)  # running log-prob sums, (k,)
    running[0] = 0.0  # only beam 0 is expanded at the first step
    seqs: list[list[int]] = [[] for _ in range(k)]
    coverage = torch.zeros(k, P)  # (k, P): attention mass each beam has put on each prompt token
    pool: list[Hypothesis] = []
    open_ = True  # can a running beam still beat the worst finished hypothesis?
    steps: list[BeamStep] = []
    beam_tokens: list[list[list[int]]] = []

    for s in range(max_new_tokens):
        logp = torch.log_softmax(logits, dim=-1)  # (k, V)
        V = logp.size(1)
        total = (logp + running[:, None]).reshape(-1)  # (k*V,)
        top_vals, top_idx = torch.topk(total, 2 * k)  # (2k,)
        parents = (top_idx // V).tolist()
        tokens = (top_idx % V).tolist()
        vals = top_vals.tolist()
        last = s == max_new_tokens - 1
        pool_full_before = len(pool) >= k

        kept: list[int] = []  # candidate ranks that continue
        records: list[Candidate] = []
        for r, (par, tok, val) in enumerate(zip(parents, tokens, vals)):
            tok_lp = float(logp[par, tok])
            finishing = last or (eos_id is not None and tok == eos_id)
            if finishing:
                if r >= k:
                    records.append(Candidate(r, par, tok, val, tok_lp, "pruned_eos", score=val))
                    continue
                cov = coverage_log_sum(coverage[par] + attn[par]) if attn is not None else float("nan")
                cp = coverage_beta * cov if coverage_beta > 0 else 0.0
                score = val / length_penalty(s + 1, alpha, length_norm) + cp
                blocked = (pool_full_before and early_stopping is True) or not open_
                hyp = Hypothesis(seqs[par] + [tok], val, score, s + 1, cov, s, r, par)
                status = "rejected"
                if not blocked and (len(pool) < k or score > min(h.score for h in pool)):
                    pool.append(hyp)
                    pool.sort(key=lambda h: -h.score)
                    del pool[k:]
                    status = "finished"
                records.append(Candidate(r, par, tok, val, tok_lp, status, score=score))
            elif len(kept) < k:
                records.append(Candidate(r, par, tok, val, tok_lp, "kept", len(kept), val))
                kept.append(r)
            else:
                records.append(Candidate(r, par, tok, val, tok_lp, "pruned", score=val))
        if record:
            # a finished hypothesis may later be pushed out of the pool: mark those as rejected
            steps.append(BeamStep(s, records))
        if last or len(kept) < k:
            break
        beam_idx = torch.tensor([parents[r] for r in kept])  # (k,) parent slot of each new beam
        new_tokens = [tokens[r] for r in kept]
        running = torch.tensor([vals[r] for r in kept])
        if attn is not None:
            coverage = coverage.index_select(0, beam_idx) + attn.index_select(0, beam_idx)
        seqs = [seqs[p] + [t] for p, t in zip(beam_idx.tolist(), new_tokens)]
        if record:
            beam_tokens.append([list(x) for x in seqs])

        # stopping rules (after the step, as transformers does)
        if len(pool) >= k:
            bound = max_new_tokens if (early_stopping == "never" and alpha > 0) else s + 1
            best_possible = float(running[0]) / length_penalty(bound, alpha, length_norm)
            open_ = open_ and best_possible > min(h.score for h in pool)
            if not open_ or early_stopping is True:
                break
        cache.reorder(beam_idx)  # (k, nkv, T, hs) per layer
        logits, attn = _forward(model, torch.tensor(new_tokens)[:, None], cache, want_attn, P)
        passes += 1

    pool.sort(key=lambda h: -h.score)
    if record:  # finished hypotheses that did not survive in the final pool
        final = {(h.step, h.rank) for h in pool}
        for st in steps:
            st.candidates = [
                Candidate(c.rank, c.parent, c.token, c.logprob, c.token_logprob, "rejected", c.slot, c.score)
                if c.status == "finished" and (st.step, c.rank) not in final else c
                for c in st.candidates
            ]
    return BeamResult(pool, steps, passes, beam_tokens)
