"""Converting a multi-head mini-former to grouped-query layout (mean-pooled K/V heads)."""

import pytest
import torch

from nlpcurriculum.experiments.grouped_query_attention import identical_heads_error
from nlpcurriculum.models.gqa import convert_to_gqa, pool_heads
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model, llama_like


def _cfg(**kw) -> MiniFormerConfig:
    return MiniFormerConfig(**{**dict(vocab_size=64, d_model=32, n_layers=2, n_heads=8, max_seq_len=16), **kw})


def test_pool_heads_worked_example():
    t = torch.arange(8.0).view(4, 2)  # 4 heads of size 1, two columns
    out = pool_heads(t, 4, 2)
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [5.0, 6.0]]))  # mean of heads (0,1), (2,3)
    with pytest.raises(ValueError, match="n_kv_heads=3"):
        pool_heads(t, 4, 3)


@pytest.mark.parametrize("kw", [dict(), dict(position="rope"), dict(bias=False, position="alibi")])
def test_converting_to_as_many_kv_heads_is_the_identity(kw):
    torch.manual_seed(0)
    model = build_model(_cfg(**kw)).eval()
    same = convert_to_gqa(model, 8).eval()
    x = torch.randint(0, 64, (2, 12))
    assert torch.equal(model(x).logits, same(x).logits)


@pytest.mark.parametrize("n_kv", [1, 2, 4])
def test_conversion_is_exact_when_heads_in_a_group_are_identical(n_kv):
    assert identical_heads_error(_cfg(position="rope"), n_kv) < 1e-5


def test_converted_layout_and_pooled_keys():
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=64, n_heads=4)).eval()
    gqa = convert_to_gqa(model, 2)
    assert gqa.config.n_kv_heads == 2 and model.config.n_kv_heads == 4  # the source is untouched
    C, hs, L = 64, 16, model.config.n_layers
    assert model.num_params() - gqa.num_params() == L * 2 * (4 - 2) * hs * C  # K and V rows
    # the pooled key projection equals the mean of the two source heads' keys
    x = torch.randn(3, C)
    k_src = model.blocks[0].attn.qkv(x)[:, 4 * hs: 8 * hs].view(3, 4, hs)
    k_new = gqa.blocks[0].attn.qkv(x)[:, 4 * hs: 6 * hs].view(3, 2, hs)
    assert torch.allclose(k_new, k_src.view(3, 2, 2, hs).mean(2), atol=1e-6)


def test_conversion_rejects_a_non_divisor():
    model = build_model(_cfg())
    with pytest.raises(ValueError, match="n_kv_heads=3"):
        convert_to_gqa(model, 3)
    with pytest.raises(ValueError, match="n_kv_heads=4"):
        convert_to_gqa(convert_to_gqa(model, 2), 4)  # cannot un-pool
