"""Position schemes: hand-worked values, the properties each paper claims, parity with transformers."""

import math

import pytest
import torch

from nlpcurriculum.nn.positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    build_position,
    sinusoidal_table,
)

ATOL = 1e-6  # fp32, a handful of elementwise ops


def test_sinusoidal_table_hand_worked_example():
    table = sinusoidal_table(2, 4)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    expected = torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)])
    assert torch.allclose(table[1], expected, atol=ATOL)


def test_sinusoidal_offset_is_a_fixed_rotation_of_each_pair():
    # PE[p + k] = R(k * w_i) PE[p] for every pair i and every p: relative offsets are linear maps
    dim, k = 16, 5
    table = sinusoidal_table(64, dim)
    w = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    c, s = torch.cos(k * w), torch.sin(k * w)
    sin_p, cos_p = table[:-k, 0::2], table[:-k, 1::2]  # (P-k, dim/2)
    rotated_sin = sin_p * c + cos_p * s  # sin(a + b)
    rotated_cos = cos_p * c - sin_p * s  # cos(a + b)
    assert torch.allclose(table[k:, 0::2], rotated_sin, atol=1e-5)
    assert torch.allclose(table[k:, 1::2], rotated_cos, atol=1e-5)


def test_sinusoidal_positions_extend_beyond_their_table():
    scheme = SinusoidalPositions(8, max_seq_len=4)
    x = torch.zeros(1, 3, 8)
    scheme.ensure_length(8)
    out = scheme.embed(x, torch.arange(5, 8))
    assert torch.allclose(out[0], sinusoidal_table(8, 8)[5:8], atol=ATOL)


def test_learned_positions_add_their_rows_and_reject_unknown_positions():
    torch.manual_seed(0)
    scheme = LearnedPositions(8, max_seq_len=4)
    x = torch.randn(2, 3, 8)
    assert torch.equal(scheme.embed(x, torch.arange(1, 4)), x + scheme.weight[1:4])
    scheme.ensure_length(4)  # fits
    with pytest.raises(ValueError, match="max_seq_len=4"):
        scheme.ensure_length(5)


def test_rope_matches_transformers_llama_rotary_embedding():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    torch.manual_seed(0)
    B, nh, T, hs = 2, 4, 11, 16
    config = LlamaConfig(
        hidden_size=nh * hs, num_attention_heads=nh, max_position_embeddings=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    q, k = torch.randn(B, nh, T, hs), torch.randn(B, nh, T, hs)
    positions = torch.arange(3, 3 + T)
    cos, sin = LlamaRotaryEmbedding(config)(q, positions[None].expand(B, T))
    ref_q, ref_k = apply_rotary_pos_emb(q, k, cos, sin)
    ours_q, ours_k = RotaryPositions(hs, max_seq_len=32).rotate(q, k, positions)
    assert torch.allclose(ours_q, ref_q, atol=ATOL, rtol=0)
    assert torch.allclose(ours_k, ref_k, atol=ATOL, rtol=0)


def test_rope_hand_worked_example_score_depends_only_on_offset():
    rope = RotaryPositions(2, max_seq_len=16)  # theta_0 = 1
    v = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    q1, _ = rope.rotate(v, v, torch.tensor([1]))
    _, k0 = rope.rotate(v, v, torch.tensor([0]))
    assert float((q1 * k0).sum()) == pytest.approx(math.cos(1), abs=ATOL)

    torch.manual_seed(0)
    rope = RotaryPositions(32, max_seq_len=64)
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)

    def score(m: int, n: int) -> float:
        qm, _ = rope.rotate(q, q, torch.tensor([m]))
        _, kn = rope.rotate(k, k, torch.tensor([n]))
        return float((qm * kn).sum())

    assert score(7, 3) == pytest.approx(score(40, 36), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)  # a different offset changes it


def test_rope_preserves_vector_norms_and_extrapolates_past_its_cache():
    torch.manual_seed(0)
    rope = RotaryPositions(16, max_seq_len=8)
    q = torch.randn(1, 2, 4, 16)
    rope.ensure_length(24)  # beyond the cached 8 positions
    rq, _ = rope.rotate(q, q, torch.arange(20, 24))
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    long = RotaryPositions(16, max_seq_len=32)
    assert torch.allclose(rq, long.rotate(q, q, torch.arange(20, 24))[0], atol=ATOL)


@pytest.mark.parametrize("n_heads", [1, 2, 3, 4, 6, 8, 12, 16, 20])
def test_alibi_slopes_match_transformers_bloom(n_heads):
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    ref = _get_alibi_slopes(n_heads, torch.device("cpu"))
    assert torch.allclose(alibi_slopes(n_heads), ref, rtol=1e-6, atol=0)


def test_alibi_slopes_hand_worked_examples():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    six = torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8])
    assert torch.allclose(alibi_slopes(6), six)


def test_alibi_bias_hand_worked_example():
    scheme = ALiBiPositions(8)  # head 0 has slope 1/2
    bias = scheme.score_bias(torch.tensor([2]), torch.arange(3))  # (nh, 1, 3)
    assert bias.shape == (8, 1, 3)
    assert torch.allclose(bias[0, 0], torch.tensor([-1.0, -0.5, 0.0]))
    weights = torch.softmax(bias[0, 0], dim=-1)
    assert torch.allclose(weights, torch.tensor([0.186, 0.307, 0.506]), atol=1e-3)


def test_no_positions_leave_everything_unchanged():
    scheme = NoPositions()
    x, q = torch.randn(1, 3, 4), torch.randn(1, 2, 3, 2)
    assert scheme.embed(x, torch.arange(3)) is x
    assert scheme.rotate(q, q, torch.arange(3))[0] is q
    assert scheme.score_bias(torch.arange(3), torch.arange(3)) is None


@pytest.mark.parametrize(
    "name,cls", [("none", NoPositions), ("sinusoidal", SinusoidalPositions), ("learned", LearnedPositions),
                 ("rope", RotaryPositions), ("alibi", ALiBiPositions)]
)
def test_build_position_by_name(name, cls):
    scheme = build_position(name, d_model=16, n_heads=4, max_seq_len=8)
    assert isinstance(scheme, cls) and scheme.name == name


def test_build_position_rejects_unknown_names_and_odd_dims():
    with pytest.raises(ValueError, match="unknown position scheme"):
        build_position("xpos", d_model=16, n_heads=4, max_seq_len=8)
    with pytest.raises(ValueError, match="even"):
        RotaryPositions(5, max_seq_len=8)


def test_rotate_heads_equals_the_rotate_half_formula_and_reuses_rows_per_positions_tensor():
    from nlpcurriculum.nn.positional import rotate_half

    rope = RotaryPositions(16, max_seq_len=8)
    x = torch.randn(2, 5, 6, 16)  # (B, heads, T, hs)
    positions = torch.arange(2, 8)
    cos, sin = rope.cos_sin(positions)
    expected = x * cos + rotate_half(x) * sin
    assert torch.allclose(rope.rotate_heads(x, positions), expected, atol=1e-6)
    assert rope.cos_sin(positions)[0] is cos  # same tensor: gathered once
    rope.ensure_length(40)  # the tables regrow: rows gathered before are dropped
    assert rope.cos_sin(positions)[0] is not cos
    assert torch.allclose(rope.rotate_heads(x, positions), expected, atol=1e-6)
