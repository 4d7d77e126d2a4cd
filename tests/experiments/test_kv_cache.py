"""The kv-cache items: speed rows, the hit/miss visualizer and the memory profile."""

import re

import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from nlpcurriculum.decoding.kv_decode import CacheStep, greedy_cached
from nlpcurriculum.experiments.kv_cache import (
    Inputs,
    KVCacheConfig,
    cached_step,
    formula_bytes,
    measure_memory,
    measure_speed,
    render_cache_html,
    run,
)
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.models.hf_interop import to_hf_llama


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(llama_like("tiny", vocab_size=60, max_seq_len=32)).eval()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="new_tokens"):
        KVCacheConfig(new_tokens=[64, 32])
    with pytest.raises(ValueError, match="repeats"):
        KVCacheConfig(repeats=1)  # a median ratio needs rounds to spread over


def test_measure_speed_reports_identical_output(model):
    rows = measure_speed(model, [1, 2, 3], [4, 8], repeats=3)
    assert [r.new_tokens for r in rows] == [4, 8]
    assert all(r.identical and len(r.seconds_cached) == len(r.seconds_no_cache) == 3 for r in rows)


def test_formula_matches_measured_bytes_for_mha_and_gqa():
    for kv in (4, 2, 1):
        torch.manual_seed(0)
        m = build_model(llama_like("tiny", vocab_size=60, n_kv_heads=kv))
        lengths = [3, 17]
        assert measure_memory(m, lengths) == [formula_bytes(m.config, n, 4) for n in lengths]


def test_formula_hand_example():
    # 2 (K and V) * 2 layers * 1 kv head * 8 dims * 4 bytes * 10 tokens = 1280 bytes.
    cfg = type("C", (), {"n_layers": 2, "n_kv_heads": 1, "head_dim": 8})()
    assert formula_bytes(cfg, 10, 4) == 1280


def test_html_marks_hits_and_misses_from_the_trace(model):
    trace: list[CacheStep] = []
    new = greedy_cached(model, [5, 6], 3, trace=trace)
    page = render_cache_html(trace, [f"t{i}" for i in [5, 6, *new]], n_prompt=2)
    rows = re.findall(r"<tr><th>(prefill|step \d)</th>(.*?)</tr>", page)
    assert [name for name, _ in rows] == ["prefill", "step 1", "step 2"]
    counts = [(r.count('class="hit"'), r.count('class="miss"')) for _, r in rows]
    assert counts == [(0, 2), (2, 1), (3, 1)]
    assert "<style>" in page and "<script" not in page  # self-contained


def test_items_findings_hold_on_a_tiny_model(model):
    cfg = KVCacheConfig(new_tokens=[4, 8], min_speedup=0.01, viz_steps=4, memory_lengths=[4, 2048],
                        gqa_kv_heads=1, repeats=2, hf_repeats=2)
    results = run(cfg, Inputs(model, [1, 2, 3], decode=str, hf_model=to_hf_llama(model)))
    assert [r.item for r in results] == ["kv-cache/1", "kv-cache/2", "kv-cache/3"]
    for r in results:
        assert r.findings and all(f.passed for f in r.findings if f.kind == "invariant"), (r.item, r.findings)
        # clock and allocator readings are timings, their findings timed; the rest deterministic
        assert all(f.metric in (r.timings if f.timed else r.metrics) or f.timed for f in r.findings)
        assert not any(k.startswith(("speedup", "tokens_per_s", "heap", "hit_pass", "long_cache"))
                       for k in r.metrics), sorted(r.metrics)
    # items 2 and 3: a timing finding each, over the configured interleaved rounds
    for r, metric in ((results[1], "hit_pass_speedup"), (results[2], "long_cache_step_ratio")):
        assert r.findings[-1].metric == metric and r.findings[-1].n == cfg.timing_rounds
        assert r.findings[-1].timed
    speed = {f.metric: f for f in results[0].findings}
    assert speed["speedup.8"].timed and speed["speedup.8"].n == 2
    assert speed["cached_vs_hf_generate"].timed and speed["cached_vs_hf_generate"].n == 2
    assert results[0].metrics["hf_same_tokens"] == 1.0
    assert results[2].metrics["gqa_over_mha"] == pytest.approx(1 / 4, abs=0)
    # the measured memory findings hold on this model (2048 positions: 1 MiB of cache)
    memory = {f.metric: f for f in results[2].findings}
    for name in ("heap_per_token_error", "heap_gqa_ratio_error", "grown_heap_error"):
        assert memory[name].timed and memory[name].passed, memory[name]


@torch.inference_mode()
def test_a_cached_step_repeats_the_same_work_and_matches_recomputing(model):
    step = cached_step(model, [5, 6, 7], 8)
    first, second = step(), step()  # the cache is cropped back after each call
    full = model(torch.tensor([[5, 6, 7, 8]])).logits[0, -1]
    assert torch.equal(first, second) and torch.allclose(first, full, atol=1e-5)


def test_speed_finding_fails_when_threshold_is_out_of_reach(model):
    cfg = KVCacheConfig(new_tokens=[4], min_speedup=1e6, viz_steps=2, memory_lengths=[4, 8], repeats=2)
    speed = run(cfg, Inputs(model, [1, 2], decode=str))[0]
    assert not speed.findings[1].passed
    assert speed.findings[0].passed


def test_measured_heap_follows_the_formula_and_catches_a_leaky_cache(model, monkeypatch):
    from nlpcurriculum.experiments.kv_cache import grown_cache_heap, prefill_heap_bytes
    from nlpcurriculum.nn.kv_cache import KVCache

    lengths = [16, 1024]
    heap = prefill_heap_bytes(model, lengths)
    per_token = (heap[1] - heap[0]) / (lengths[1] - lengths[0])
    assert per_token == pytest.approx(formula_bytes(model.config, 1, 4), rel=0.02)
    grown = grown_cache_heap(model, 16, 300)
    assert [p for p, _, _ in grown] == [16, 17, 33, 65, 129, 257, 300]  # a doubling per row
    assert grown[-1][1] == pytest.approx(grown[-1][2], rel=0.05)
    # the mutation the finding must catch: growth that keeps the old buffer alive
    leaked = []
    grow = KVCache._grow

    def leaky(buf, like, filled, size):
        leaked.append(buf)
        return grow(buf, like, filled, size)

    monkeypatch.setattr(KVCache, "_grow", staticmethod(leaky))
    bad = grown_cache_heap(model, 16, 300)
    assert bad[-1][1] / bad[-1][2] - 1 > 0.4
