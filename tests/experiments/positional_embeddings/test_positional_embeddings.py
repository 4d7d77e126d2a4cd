"""Positional-embeddings experiments: the measurements on hand-made inputs, and a tiny end-to-end run."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from nlpcurriculum.data.errors import CorpusTooSmallError
from nlpcurriculum.experiments.positional_embeddings.positional_embeddings import (
    ITEM,
    AblationConfig,
    Inputs,
    LagCopyTask,
    PositionalConfig,
    ScaledSinusoidalPositions,
    SchemeRun,
    attention_entropy,
    context_losses,
    offset_distance_rank_correlation,
    offset_dot_spread,
    rope_shift_error,
    run,
    SCHEMES,
    _train_job,
    corpus_jobs,
    map_jobs,
    scheme_item,
)
from nlpcurriculum.tokenizers.bytes import byte_tokens
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.nn.positional import RotaryPositions, sinusoidal_table
from nlpcurriculum.training import TrainerConfig


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_lag_copy_targets_are_the_token_lag_back_and_resume_exactly():
    task = LagCopyTask(seq_len=6, lag=2, n_symbols=5, seed=3)
    x, y = task.next_batch(4)
    assert x.shape == y.shape == (4, 6) and int(x.max()) < 5
    assert (y[:, :2] == LagCopyTask.IGNORE).all()
    assert torch.equal(y[:, 2:], x[:, :-2])
    state = task.state_dict()
    a = task.next_batch(3)
    task.load_state_dict(state)
    assert torch.equal(task.next_batch(3)[0], a[0])
    first = [b[0] for b in task.eval_batches(2, 2)]
    assert all(torch.equal(p, q[0]) for p, q in zip(first, task.eval_batches(2, 2)))
    with pytest.raises(ValueError, match="lag"):
        LagCopyTask(seq_len=4, lag=4, n_symbols=5).load_state_dict(state)


def test_offset_dot_spread_is_zero_for_sinusoids_and_large_for_a_random_table():
    spread, mean_dot = offset_dot_spread(sinusoidal_table(256, 64), max_offset=16)
    assert spread < 1e-5
    # hand check: PE(p).PE(p+k) = sum_i cos(k w_i); at k = 0 it is |PE|^2 = dim / 2
    w = 10000.0 ** (-torch.arange(0, 64, 2, dtype=torch.float64) / 64)
    assert mean_dot[0] == pytest.approx(32.0, abs=1e-4)
    assert mean_dot[3] == pytest.approx(float(torch.cos(3 * w).sum()), abs=1e-4)
    torch.manual_seed(0)
    random_spread, _ = offset_dot_spread(torch.randn(256, 64), max_offset=16)
    assert random_spread > 0.5


def test_rope_shift_error_is_rounding_only_and_catches_absolute_positions():
    torch.manual_seed(0)
    rope = RotaryPositions(head_dim=16, max_seq_len=8)
    q, k = torch.randn(2, 4, 12, 16), torch.randn(2, 2, 12, 16)  # grouped: 2 kv heads for 4 q heads
    errors = rope_shift_error(rope, q, k, [1, 50, 1000])
    assert set(errors) == {1, 50, 1000}
    assert max(errors.values()) < 1e-4

    class AddedPositions(RotaryPositions):  # an absolute scheme disguised as a rotation
        def rotate(self, q, k, positions):
            table = sinusoidal_table(int(positions.max()) + 1, q.size(-1))[positions]  # (T, hs)
            return q + table, k + table

    assert max(rope_shift_error(AddedPositions(16, 8), q, k, [1, 50]).values()) > 0.05


def test_attention_entropy_is_one_for_uniform_and_zero_for_one_hot_rows():
    T = 6
    causal = torch.ones(T, T).tril()
    uniform = (causal / causal.sum(-1, keepdim=True))[None, None].expand(2, 3, T, T)  # (B, nh, T, T)
    one_hot = torch.eye(T)[None, None].expand(2, 3, T, T)
    ent = attention_entropy([uniform, one_hot])
    assert ent.shape == (2, 3, T - 1)
    assert torch.allclose(ent[0], torch.ones(3, T - 1), atol=1e-6)
    assert torch.allclose(ent[1], torch.zeros(3, T - 1), atol=1e-6)
    half = torch.zeros(1, 1, 3, 3)  # query 2 splits its weight over 2 of its 3 keys
    half[0, 0, 0, 0], half[0, 0, 1, :2], half[0, 0, 2, 1:] = 1.0, 0.5, 0.5
    assert attention_entropy([half])[0, 0, 1] == pytest.approx(math.log(2) / math.log(3), abs=1e-6)


def test_context_losses_match_the_model_loss_and_learned_is_not_applicable_beyond_its_table():
    torch.manual_seed(0)
    tokens = torch.randint(0, 256, (400,))
    model = build_model(MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8,
                                         position="learned")).eval()
    losses, per_position = context_losses(model, tokens, [8, 16], n_tokens=160, batch_size=3)
    assert losses[16] is None and per_position is None
    x, y = tokens[:160].view(-1, 8), tokens[1:161].view(-1, 8)
    with torch.no_grad():
        expected = float(model(x, targets=y).loss)
    assert losses[8] == pytest.approx(expected, abs=1e-5)
    rope = build_model(MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8,
                                        position="rope")).eval()
    losses, per_position = context_losses(rope, tokens, [8, 32], n_tokens=160)
    assert per_position.shape == (32,)
    assert losses[32] == pytest.approx(float(per_position.mean()), abs=1e-5)
    with pytest.raises(ValueError, match="fewer than one window"):
        context_losses(rope, tokens[:20], [8, 32], n_tokens=160)


@pytest.mark.parametrize("bad, message", [
    (dict(context_multiples=[2, 4]), "context_multiples"),
    (dict(context_multiples=[1]), "context_multiples"),
    (dict(toy_text="abc"), "repeated"),
    (dict(toy_text="x" * 100), "longer than"),
    (dict(ablation=AblationConfig(n_symbols=300)), "n_symbols"),
])
def test_config_rejects_bad_values(bad, message):
    model = MiniFormerConfig(d_model=64, n_layers=2, n_heads=4, max_seq_len=64)
    with pytest.raises(ValueError, match=message):
        PositionalConfig(model=model, train=TrainerConfig(), **bad)


def test_ablation_config_rejects_a_lag_that_leaves_no_targets():
    with pytest.raises(ValueError, match="lag"):
        AblationConfig(seq_len=4, lag=3)
    with pytest.raises(ValueError, match="position"):
        AblationConfig(position="none")


def test_offset_distance_rank_correlation_on_a_line_a_circle_and_repeated_tokens():
    line = np.arange(6, dtype=float)[:, None] * np.array([[1.0, 2.0]])  # (6, 2): distance = offset * sqrt 5
    assert offset_distance_rank_correlation(line) == pytest.approx(1.0)
    # a full circle of 6 points: offsets 1 and 5 are neighbours again, so the correlation is weaker
    angles = np.arange(6) * 2 * math.pi / 6
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert 0 < offset_distance_rank_correlation(circle) < 0.8
    # two tokens alternating, no positions: distance says "same token or not" (0 at even offsets);
    # adding a position term that grows along a line makes it follow the offset
    tokens = np.array([[0.0, 1.0], [1.0, 0.0]] * 3)
    assert offset_distance_rank_correlation(tokens) < 0
    assert offset_distance_rank_correlation(tokens + line) > 0.9


def test_scaled_sinusoid_multiplies_the_embeddings_by_sqrt_d_model_then_adds_the_table():
    pos = ScaledSinusoidalPositions(16, 8)
    x = torch.randn(2, 5, 16)
    out = pos.embed(x, torch.arange(5))
    assert torch.allclose(out, x * 4.0 + sinusoidal_table(8, 16)[:5])


def test_sinusoidal_item_checks_its_gain_and_the_sqrt_d_model_cause_over_seeds():
    cfg = PositionalConfig(model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8),
                           train=TrainerConfig(), toy_text="abab", max_offset=4)
    sin = _fake_run("sinusoidal", {8: 2.6, 16: 2.7, 32: 2.8})
    sin.model = build_model(MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8,
                                             position="sinusoidal"))
    runs = {"none": _fake_run("none", {8: 2.5, 16: 2.5, 32: 2.51}), "sinusoidal": sin}
    seeded = {"none": _at_8([2.5, 2.52, 2.49]), "sinusoidal": _at_8([2.6, 2.7, 2.65])}
    scaling = {"seeds": [0, 1, 2], "plain": [2.6, 2.7, 2.65], "scaled": [2.5, 2.55, 2.52],
               "scaled_pe_to_token_rms": 3.0}
    result = scheme_item("sinusoidal", runs, cfg, scaling=scaling, seeded=seeded)
    by_metric = {f.metric: f for f in result.findings}
    assert by_metric["offset_dot_spread"].kind == "invariant" and by_metric["offset_dot_spread"].passed
    gain = by_metric["gain_over_none"]  # sinusoidal trails no positions on every seed: fails
    assert gain.n == 3 and gain.value == pytest.approx(-0.1467, abs=1e-4) and not gain.passed
    assert result.metrics["seed1.val_loss"] == 2.7 and result.metrics["none.seed2.val_loss"] == 2.49
    cause = by_metric["sqrt_scaled_minus_plain_val_loss"]
    assert cause.n == 3 and cause.value == pytest.approx(-0.1267, abs=1e-4) and cause.passed
    assert cause.threshold == pytest.approx(-cfg.checks.min_sqrt_scale_gain)
    assert result.metrics["sqrt_scaled.gain_over_none"] == pytest.approx(2.5033 - 2.5233, abs=1e-4)
    tie = dict(scaling, scaled=scaling["plain"])  # scaling changes nothing: the cause is not shown
    by_metric = {f.metric: f for f in scheme_item("sinusoidal", runs, cfg, scaling=tie,
                                                  seeded=seeded).findings}
    assert not by_metric["sqrt_scaled_minus_plain_val_loss"].passed


def test_gain_over_none_needs_seeds_and_a_margin_beyond_two_standard_errors():
    cfg = PositionalConfig(model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8),
                           train=TrainerConfig(), toy_text="abab")
    runs = {"none": _fake_run("none", {8: 2.5, 16: None, 32: None}),
            "learned": _fake_run("learned", {8: 2.3, 16: None, 32: None})}
    runs["learned"].model = build_model(MiniFormerConfig(d_model=16, n_layers=1, n_heads=2,
                                                         max_seq_len=8, position="learned"))

    def gain(none: list[float], learned: list[float]):
        seeded = {"none": _at_8(none, longer=None), "learned": _at_8(learned, longer=None)}
        return next(f for f in scheme_item("learned", runs, cfg, seeded=seeded).findings
                    if f.metric == "gain_over_none")

    assert gain([2.5, 2.6, 2.55], [2.3, 2.38, 2.36]).passed  # gains 0.2, 0.22, 0.19
    assert not gain([2.5, 2.6, 2.55], [2.5, 2.6, 2.55]).passed  # positions ignored: a tie
    assert not gain([2.5, 2.6, 2.55], [2.3, 2.6, 2.36]).passed  # 0.2, 0, 0.19: too noisy for 0.1
    single = next(f for f in scheme_item("learned", runs, cfg).findings if f.metric == "gain_over_none")
    assert single.n == 1 and single.value == pytest.approx(0.2) and not single.passed  # one seed


def _at_8(losses: list[float], longer: float | None = 0.0) -> list[dict[int, float | None]]:
    """Per-seed losses at context 8; at 16 and 32 the same plus ``longer`` (None: not measurable)."""
    return [{8: v, 16: None if longer is None else v + longer,
             32: None if longer is None else v + 2 * longer} for v in losses]


def _fake_run(scheme: str, losses: dict[int, float | None]) -> SchemeRun:
    history = [{"step": s, "loss": 3.0 - s / 10, "val_loss": 3.1 - s / 10} for s in (1, 2)]
    per_position = torch.full((32,), 2.0) if losses[32] is not None else None
    return SchemeRun(scheme, None, history, losses, per_position, 0.0)


def test_alibi_findings_fail_honestly_when_another_scheme_extrapolates_better():
    cfg = PositionalConfig(model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8),
                           train=TrainerConfig(), toy_text="abab")
    runs = {
        "none": _fake_run("none", {8: 2.5, 16: 2.5, 32: 2.51}),
        "learned": _fake_run("learned", {8: 2.0, 16: None, 32: None}),
        "rope": _fake_run("rope", {8: 2.0, 16: 2.1, 32: 2.4}),
        "alibi": _fake_run("alibi", {8: 2.1, 16: 2.15, 32: 2.2}),
    }
    seeded = {"none": _at_8([2.5, 2.52, 2.48], 0.005), "learned": _at_8([2.0, 2.05, 1.98], None),
              "rope": _at_8([2.0, 2.02, 2.01], 0.2), "alibi": _at_8([2.1, 2.12, 2.09], 0.05)}
    result = scheme_item("alibi", runs, cfg, seeded=seeded)
    assert result.item == ITEM["alibi"]
    by_metric = {f.metric: f for f in result.findings}
    assert by_metric["extrapolation.degradation"].value == pytest.approx(0.1)
    assert not by_metric["extrapolation.degradation"].passed  # 0.1 > 0.05
    assert by_metric["degradation_minus_best_other"].value == pytest.approx(0.1 - 0.01)
    assert not by_metric["degradation_minus_best_other"].passed  # "none" degraded less
    assert "learned.degradation" not in result.metrics  # cannot run at 4x: left out, not zero
    assert by_metric["gain_over_none"].value == pytest.approx(0.3967, abs=1e-4)
    # ALiBi flat at 4x on every seed but 0.001: a clear pass; the same as "none": a tie, fails
    seeded["alibi"] = [{8: v, 16: v - 0.01, 32: v - 0.01 - 0.001 * i}
                       for i, v in enumerate([2.1, 2.12, 2.09])]
    assert all(f.passed for f in scheme_item("alibi", runs, cfg, seeded=seeded).findings)
    seeded["alibi"] = _at_8([2.1, 2.12, 2.09], 0.005)
    by_metric = {f.metric: f for f in scheme_item("alibi", runs, cfg, seeded=seeded).findings}
    assert by_metric["extrapolation.degradation"].passed
    assert not by_metric["degradation_minus_best_other"].passed


def test_a_val_split_shorter_than_the_longest_context_fails_in_one_line_naming_keys():
    cfg = PositionalConfig(model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=16),
                           train=TrainerConfig(max_steps=2, warmup_steps=1, progress=False),
                           toy_text="to be to")
    needed = max(cfg.context_multiples) * 16 + 1
    with pytest.raises(CorpusTooSmallError, match=rf"the val split has 40 bytes; .* needs {needed}: "
                       r"add documents or raise splits.val_fraction"):
        run(cfg, Inputs(["some training text " * 20], ["x" * 40]))


def test_tiny_end_to_end_run_returns_six_items_with_checked_findings():
    cfg = PositionalConfig(
        model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=16),
        train=TrainerConfig(lr=3e-3, max_steps=4, batch_size=4, warmup_steps=1, eval_every=2,
                            eval_batches=1, progress=False),
        ablation=AblationConfig(seq_len=8, lag=2, max_steps=4, batch_size=4, eval_sequences=4),
        eval_tokens=256, anim_frames=3, max_offset=8, rope_shifts=[1, 100], toy_text="to be to",
        seeds=[0, 1],
    )
    text = "def f(x):\n    return x + 1\n" * 40
    lines = []
    results = run(cfg, Inputs([text], [text[:400]], log=lines.append))
    assert [r.item for r in results] == [f"positional-embeddings/{i}" for i in range(1, 7)]
    # one line per corpus model: 5 schemes x 2 seeds, 2 scaled sinusoids; 2 ablation arms
    assert len(lines) == 5 * 2 + 2 + 2
    assert lines[0].startswith("none seed 0: val loss by context") and "sqrt(d_model)-scaled seed 1" in lines[11]
    assert all(r.findings for r in results)
    sinusoidal, learned, rope, alibi, animation, ablation = results
    assert sinusoidal.findings[0].passed  # a property of the table: holds at any training budget
    assert rope.findings[0].metric == "shift_error.max" and rope.findings[0].passed
    assert "val_loss.ctx32" not in learned.metrics and learned.metrics["extrapolation.max_context"] == 16
    assert {"val_loss.ctx16", "val_loss.ctx32", "val_loss.ctx64"} <= set(alibi.metrics)
    assert animation.findings[0].value == 0.0
    assert all(f.passed for f in animation.findings if f.kind == "invariant")
    rho = [f for f in animation.findings if f.kind == "finding"]
    assert [f.metric for f in rho] == ["sinusoidal.offset_distance_rho_gain", "rope.offset_distance_rho_gain"]
    cause = sinusoidal.findings[-1]
    assert cause.metric == "sqrt_scaled_minus_plain_val_loss" and cause.n == 2
    gains = [next(f for f in r.findings if f.metric == "gain_over_none") for r in results[:4]]
    assert all(g.n == 2 and g.kind == "finding" for g in gains)  # sinusoidal and ALiBi included
    assert animation.files["position_encoding_3d.gif"][:6] == b"GIF89a"
    page = animation.texts["position_encoding_3d.html"]
    assert 'createElement("canvas")' in page and "http" not in page
    # the mean normalised entropy is the mean of every head's (equal query counts per head)
    heads = [v for k, v in ablation.metrics.items() if k.startswith("none.attn_entropy.l")]
    assert heads and ablation.metrics["none.attn_entropy"] == pytest.approx(sum(heads) / len(heads))
    assert {"heatmaps.png", "entropy.png"} <= set(ablation.figures)
    for r in results:
        for name, points in r.series.items():
            assert points and all(isinstance(s, int) for s, _ in points), name


def test_corpus_jobs_give_the_same_models_in_worker_processes():
    """Two workers train the same models as one process: each job is seeded and single-threaded."""
    cfg = PositionalConfig(
        model=MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=16),
        train=TrainerConfig(lr=3e-3, max_steps=3, batch_size=4, warmup_steps=1, eval_every=3,
                            eval_batches=1, progress=False),
        eval_tokens=128, toy_text="to be to", seeds=[0, 1],
    )
    jobs = corpus_jobs(cfg)
    assert jobs[:5] == [(s, 0, False) for s in SCHEMES] and jobs[-2:] == [("sinusoidal", 0, True),
                                                                          ("sinusoidal", 1, True)]
    assert len(jobs) == 5 * 2 + 2  # seed 0 (train.seed) is not trained twice
    tokens = byte_tokens(["def f(x):\n    return x + 1\n" * 20])
    picked = [("rope", 1, False), ("sinusoidal", 0, True)]
    here = map_jobs(_train_job, picked, 1, cfg, tokens, tokens)
    there = map_jobs(_train_job, picked, 2, cfg, tokens, tokens)
    for a, b in zip(here, there):
        clockless = [[{k: v for k, v in h.items() if k != "tokens_per_s"} for h in r.history]
                     for r in (a, b)]
        assert a.losses == b.losses and clockless[0] == clockless[1]
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(),
                                                     b.model.state_dict().values()))
