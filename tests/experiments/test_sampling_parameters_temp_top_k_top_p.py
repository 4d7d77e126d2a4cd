"""The sampling items: config validation, helpers, and one tiny run of the three items."""

import matplotlib

matplotlib.use("Agg")
import pytest
import scipy.stats
import torch

from nlpcurriculum.experiments.sampling_parameters_temp_top_k_top_p import (
    Inputs,
    SamplingConfig,
    make_prompts,
    repeat_profile,
    run,
    top_p_kept,
)
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.tokenizers import TokenizerSpec, eos_id, train_tokenizer

TEXT = ["The quick brown fox jumps over the lazy dog. " * 4, "A function returns a value to its caller. " * 4]


def test_config_errors_name_the_key():
    for kwargs, key in [({"prompt_tokens": 0}, "prompt_tokens"), ({"samples_per_prompt": 1}, "samples_per_prompt"),
                        ({"sweep_temperatures": [0.0, 1.0]}, "sweep_temperatures"),
                        ({"sweep_top_ps": [1.5]}, "top_p"), ({"view_min_p": 2.0}, "min_p"),
                        ({"repetition_temperatures": [0.5, 1.0]}, "repetition_temperatures"),
                        ({"repetition_penalty": 0.0}, "repetition_penalty"),
                        ({"min_rank_correlation": 0.0}, "min_rank_correlation")]:
        with pytest.raises(ValueError, match=key):
            SamplingConfig(**kwargs)
    with pytest.raises(ValueError, match="max_seq_len"):
        SamplingConfig(repetition_tokens=200).check_fits(128)


def test_helpers():
    prompts = make_prompts(list(range(100)), 3, 5)
    assert prompts[0] == [0, 1, 2, 3, 4] and prompts[-1] == [95, 96, 97, 98, 99]
    with pytest.raises(ValueError, match="prompt_tokens"):
        make_prompts([1, 2], 1, 5)
    # "a b a b a b" with n=2: (a,b) repeats at positions 3 and 5, (b,a) at 4
    assert repeat_profile([["a", "b", "a", "b", "a", "b"]], 2) == [0, 0, 0, 1, 1, 1]


@pytest.mark.timeout(120)
def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert [top_p_kept(probs, p) for p in (0.4, 0.5, 0.8, 0.81, 0.99)] == [1, 1, 2, 3, 4]
    assert top_p_kept(torch.full((8,), 1 / 8), 0.9) == 8  # uniform: nearly everything


def test_run_tiny():
    tok = train_tokenizer(TokenizerSpec(kind="bpe", vocab_size=280), TEXT)
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=tok.vocab_size, max_seq_len=40, n_layers=2,
                                   init_std=0.3)).eval()
    stream = [t for d in TEXT for t in tok.encode(d)]
    cfg = SamplingConfig(prompt_tokens=4, n_prompts=2, view_tokens=5, sweep_temperatures=[0.5, 1.0, 2.0],
                         sweep_top_ks=[3], sweep_top_ps=[0.8], samples_per_prompt=3, sweep_tokens=8,
                         repetition_tokens=20, repetition_temperatures=[0.0, 1.0], repetition_prompts=3)
    r1, r2, r3 = run(cfg, Inputs(model, tok, stream, eos_id(tok)))
    assert [r.item for r in (r1, r2, r3)] == [f"sampling-parameters-temp-top-k-top-p/{i}" for i in (1, 2, 3)]
    # item 1's filter checks are exact properties: they hold on any model
    assert r1.metrics["violating_steps"] == 0 and r1.findings[0].passed and r1.findings[1].passed
    assert all(f.passed for f in r1.findings if f.kind == "invariant")
    top_p = r1.findings[-1]  # the finding: over 6 settings x 5 steps of the model's distributions
    assert top_p.kind == "finding" and r1.metrics["top_p_adaptivity.distributions"] == 30
    assert "sampler-table" in r1.texts["dashboard.html"]
    assert r2.metrics["settings"] == 5 and "entropy_vs_diversity.png" in r2.figures
    # the rank correlation is scipy's over the settings' (entropy, distinct-2) pairs
    keys = sorted(k.removeprefix("entropy.") for k in r2.metrics if k.startswith("entropy."))
    expected = scipy.stats.spearmanr([r2.metrics[f"entropy.{k}"] for k in keys],
                                     [r2.metrics[f"distinct2.{k}"] for k in keys]).statistic
    assert len(keys) == 5 and r2.metrics["spearman.entropy_distinct2"] == pytest.approx(expected)
    assert r3.metrics["longest_repeat.argmax"] >= 0 and "repetition.png" in r3.figures
    # item 3's findings pair argmax and T=1 on each of the 3 prompts
    rep, span = r3.findings
    assert rep.n == span.n == 3 and rep.value == pytest.approx(r3.metrics["rep3_gap.argmax_minus_T1"])
    assert rep.threshold == cfg.min_rep_gap
    # mutation: a model so sure of itself that T=1 sampling is argmax ties on every prompt: fails
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)
    rep, span = run(cfg, Inputs(model, tok, stream, eos_id(tok)))[2].findings
    assert rep.value == 0.0 and span.value == 0.0 and not rep.passed and not span.passed
    assert all(r.findings for r in (r1, r2, r3))
    assert all("=" not in k for r in (r1, r2, r3) for k in r.metrics)  # MLflow rejects "=" in keys
