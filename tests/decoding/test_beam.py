"""Beam search: transformers parity (random and briefly trained Llama), exhaustive optimum,
greedy equivalence, coverage bookkeeping, length penalties, trace, errors."""

import itertools
import math

import pytest
import torch

from nlpcurriculum.decoding.beam import beam_search, coverage_log_sum, length_penalty
from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.models.miniformer import build_model, llama_like

EOS = 7


def _model(vocab: int = 48, seed: int = 0, eos_boost: bool = True):
    torch.manual_seed(seed)
    model = build_model(llama_like("tiny", vocab_size=vocab, max_seq_len=64)).eval()
    if eos_boost:  # make EOS a plausible next token so that lengths (and alpha) matter: give it
        with torch.no_grad():  # the output row of the token that is on average the most likely
            x = torch.randint(8, vocab, (8, 16), generator=torch.Generator().manual_seed(seed))
            favourite = int(torch.log_softmax(model(x).logits, -1).mean((0, 1))[8:].argmax()) + 8
            w = model.lm_head.weight
            w[EOS], w[favourite] = w[favourite].clone(), w[EOS].clone()
    return model


def _trained(vocab: int = 48):
    """A tiny model trained for a few steps on a noisy periodic sequence with EOS every 9 ids."""
    model = _model(vocab, seed=1, eos_boost=False).train()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    base = torch.arange(8, 16).repeat(80)
    for _ in range(40):
        x = base.clone()
        x[torch.rand(len(x), generator=g) < 0.1] = torch.randint(8, vocab, (1,), generator=g)
        x = x.view(-1, 8)
        x = torch.cat([x, torch.full((x.size(0), 1), EOS)], dim=1).view(-1)[: 16 * 33].view(16, 33)
        loss = model(x[:, :-1], x[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _hf(hf, prompt, k, n, alpha, es):
    ids = torch.tensor([prompt])
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), num_beams=k, do_sample=False,
                      length_penalty=alpha, early_stopping=es, max_new_tokens=n, eos_token_id=EOS,
                      pad_token_id=EOS)
    gen = out[0, len(prompt):].tolist()
    return gen[: gen.index(EOS) + 1] if EOS in gen else gen


SETTINGS = [(3, 1.0, False), (4, 0.5, True), (2, 2.0, "never"), (4, 0.0, "never")]


@pytest.mark.parametrize("trained", [False, True])
def test_parity_with_transformers(trained):
    from nlpcurriculum.models.hf_interop import to_hf_llama

    model = _trained() if trained else _model()
    hf = to_hf_llama(model)
    lengths = set()
    for seed in range(2):
        prompt = torch.randint(8, 48, (5,), generator=torch.Generator().manual_seed(seed)).tolist()
        for k, alpha, es in SETTINGS:
            ours = beam_search(model, prompt, k, 10, EOS, alpha, early_stopping=es).best.tokens
            assert ours == _hf(hf, prompt, k, 10, alpha, es), (seed, k, alpha, es)
            lengths.add(len(ours))
    assert len(lengths) > 1  # EOS happened: the length penalty was exercised


def test_large_beam_finds_the_exact_optimum():
    model = _model(vocab=8, eos_boost=False)
    prompt = [1, 2, 3]
    best = beam_search(model, prompt, 64, 3, None, 0.0).best  # k = V^2 keeps every prefix
    seqs = torch.tensor(list(itertools.product(range(8), repeat=3)))  # (512, 3): every sequence
    with torch.no_grad():
        ids = torch.cat([torch.tensor(prompt).expand(len(seqs), -1), seqs], dim=1)  # (512, 6)
        logp = torch.log_softmax(model(ids).logits[:, len(prompt) - 1 : -1], -1)  # (512, 3, V)
        totals = logp.gather(2, seqs[:, :, None])[..., 0].sum(1)  # (512,)
    scores = {tuple(s.tolist()): float(t) for s, t in zip(seqs, totals)}
    top = max(scores, key=scores.get)
    assert tuple(best.tokens) == top
    assert math.isclose(best.logprob, scores[top], abs_tol=1e-4)


def test_one_beam_is_greedy():
    model = _model(eos_boost=False)
    prompt = [3, 9, 27, 5]
    assert beam_search(model, prompt, 1, 12, None, early_stopping=True).best.tokens == greedy_cached(model, prompt, 12)


def test_coverage_matches_full_forward_attention():
    model = _model()
    prompt = [11, 12, 13, 14, 15, 16]
    res = beam_search(model, prompt, 3, 8, EOS, 1.0, coverage_beta=0.5, early_stopping="never")
    for hyp in res.hypotheses:
        ids = torch.tensor([prompt + hyp.tokens])
        with torch.no_grad():
            att = model(ids, return_attn=True).attentions[-1][0].mean(0)  # (T, T), heads averaged
        # rows that predicted generated tokens: positions P-1 .. P-2+len
        rows = att[len(prompt) - 1 : len(prompt) - 1 + len(hyp.tokens), : len(prompt)]
        expected = coverage_log_sum(rows.sum(0))
        assert math.isclose(hyp.coverage, expected, rel_tol=1e-4, abs_tol=1e-4)
        lp = length_penalty(len(hyp.tokens), 1.0)
        assert math.isclose(hyp.score, hyp.logprob / lp + 0.5 * expected, rel_tol=1e-4, abs_tol=1e-4)


def test_length_penalties():
    assert length_penalty(10, 0.0) == 1.0 and length_penalty(4, 0.5) == 2.0
    assert math.isclose(length_penalty(7, 1.0, "gnmt"), 2.0)  # (5 + 7) / 6
    assert coverage_log_sum(torch.tensor([1.5, 1.0])) == 0.0
    assert coverage_log_sum(torch.tensor([0.5])) < 0
    model = _model()
    res = beam_search(model, [1, 2, 3], 3, 10, EOS, 0.8, length_norm="gnmt")
    h = res.best
    assert math.isclose(h.score, h.logprob / ((5 + len(h.tokens)) / 6) ** 0.8, rel_tol=1e-6)
    assert [x.score for x in res.hypotheses] == sorted((x.score for x in res.hypotheses), reverse=True)


def test_trace_records_every_decision():
    model = _model()
    res = beam_search(model, [4, 5, 6], 3, 6, EOS, 1.0, record=True, early_stopping="never")
    assert res.steps and all(len(s.candidates) == 6 for s in res.steps)
    for st in res.steps:
        kept = [c for c in st.candidates if c.status == "kept"]
        assert len(kept) in (0, 3) and sorted(c.slot for c in kept) == list(range(len(kept)))
        assert all(c.status in {"kept", "finished", "rejected", "pruned", "pruned_eos"} for c in st.candidates)
    statuses = {c.status for s in res.steps for c in s.candidates}
    assert {"kept", "pruned", "finished"} <= statuses


@pytest.mark.parametrize("kwargs, word", [
    (dict(num_beams=0), "num_beams"), (dict(early_stopping="sometimes"), "early_stopping"),
    (dict(coverage_beta=-1.0), "coverage_beta"), (dict(length_norm="log"), "length_norm"),
])
def test_bad_arguments(kwargs, word):
    args = dict(model=_model(), prompt=[1, 2], num_beams=2, max_new_tokens=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        beam_search(**args)
    with pytest.raises(ValueError, match="prompt"):
        beam_search(_model(), [], 2, 3)
