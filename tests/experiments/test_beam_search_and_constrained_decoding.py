"""A fast run of the beam_search stage's experiments on a tiny random byte-level model."""

import pytest
import torch

from nlpcurriculum.decoding.beam import beam_search
from nlpcurriculum.experiments.beam_search_and_constrained_decoding import (
    BeamSearchConfig,
    Inputs,
    best_path,
    lineages,
    repetition_rate,
    run,
)
from nlpcurriculum.models.miniformer import build_model, llama_like

EOS = 256


def _encode(text):
    return list(text.encode("utf-8"))


def _decode(ids):
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def test_run_tiny():
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=257, max_seq_len=64, d_model=32, n_layers=1)).eval()
    val = torch.randint(0, 256, (400,)).tolist()
    cfg = BeamSearchConfig(prompt_tokens=4, n_prompts=2, max_new_tokens=5, num_beams=2,
                           alphas=[0.0, 2.0], coverage_betas=[0.0, 1.0], hf_compare=False,
                           n_samples=8, n_baseline=1, batch_size=2, viz_steps=4)
    r1, r2, r3 = run(cfg, Inputs(model, val, _encode, _decode, EOS))
    assert r1.item.endswith("/1") and r2.item.endswith("/2") and r3.item.endswith("/3")
    assert r2.metrics["valid_rate"] == 1.0 and r2.metrics["samples"] == 8
    assert r2.metrics["vocab_excluded_tokens"] == 129  # bytes >= 0x80 and EOS
    assert r3.metrics["trace_reconstructs_best"] == 1.0
    assert "step 1" in r3.texts["beam_trace.html"] and "tree.png" in r3.figures
    for r in (r1, r2, r3):
        assert r.findings
    # item 3's finding: first-step lineages surviving, over the 2 prompts item 1 cut (stride 200)
    shares = []
    for start in (0, 200):
        traced = beam_search(model, val[start:start + 4], 2, 4, _encode("\n")[0], cfg.coverage_alpha,
                             early_stopping=cfg.early_stopping, record=True)
        shares.append(lineages(traced)[0] / 2)
    collapse = r3.findings[-1]
    assert collapse.kind == "finding" and collapse.metric == "first_step_lineage_share"
    assert collapse.value == pytest.approx(sum(shares) / 2)


def test_lineages_and_path():
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=32, max_seq_len=64)).eval()
    res = beam_search(model, [1, 2, 3], 3, 6, 5, 1.0, record=True, early_stopping="never")
    path = best_path(res)
    assert len(path) == len(res.best.tokens)
    lin = lineages(res)
    # going back in time lineages can only merge: never more ancestors than descendants, nor than k
    assert lin == sorted(lin) and lin[-1] <= 3


def test_repetition_rate():
    assert repetition_rate([1, 2, 3, 1, 2, 3]) == pytest.approx(1 / 4)
    assert repetition_rate([1, 2]) == 0.0


@pytest.mark.parametrize("kwargs, word", [
    (dict(num_beams=0), "num_beams"), (dict(temperature=0.0), "temperature"),
    (dict(early_stopping="sometimes"), "early_stopping"), (dict(n_samples=2), "n_samples"),
    (dict(coverage_betas=[-1.0]), "coverage_betas"), (dict(alphas=[]), "alphas"),
])
def test_bad_config(kwargs, word):
    with pytest.raises(ValueError, match=word):
        BeamSearchConfig(**kwargs)
