"""Decode-time weight copies: ``Linear`` gives the same results as ``nn.Linear`` (the plain path)
through them, and they exist only inside ``decode_layout``."""

import torch
import torch.nn.functional as F

from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.models import build_model, llama_like
from nlpcurriculum.nn.fast.decode_layout import PACK_MIN_ELEMENTS, decode_layout
from nlpcurriculum.nn.linear import Linear


def test_decode_layout_matches_f_linear_and_is_removed_on_exit():
    torch.manual_seed(0)
    for bias in (True, False):
        layer = Linear(64, 96, bias=bias)
        with decode_layout(layer), torch.no_grad():
            weight = layer.decode.transposed
            assert weight.shape == (64, 96) and weight.is_contiguous()
            for rows in (1, 2, 17, 300):
                x = torch.randn(1, rows, 64)
                torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias),
                                           rtol=1e-5, atol=1e-6)
        assert layer.decode is None


def test_nested_blocks_keep_the_outer_copy():
    layer = Linear(4, 4)
    with decode_layout(layer):
        outer = layer.decode
        with decode_layout(layer):
            assert layer.decode is outer
        assert layer.decode is outer  # the inner block did not remove the outer copy
    assert layer.decode is None


def test_recording_autograd_inside_the_block_uses_the_weight_itself():
    layer = Linear(8, 4)
    x = torch.randn(1, 8, requires_grad=True)
    with decode_layout(layer):
        layer(x).sum().backward()
    torch.testing.assert_close(x.grad, layer.weight.detach().sum(0, keepdim=True))
    assert layer.weight.grad is not None


def test_decoding_between_fused_adamw_steps_sees_the_current_weights():
    # fused AdamW updates parameters in place without bumping their version counters: a cache
    # keyed on versions would go stale here; decode_layout copies afresh on every entry
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=64, max_seq_len=16))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    idx, prompt = torch.randint(0, 64, (2, 16)), torch.tensor([[1, 2, 3]])
    for _ in range(3):
        greedy_cached(model, [1, 2, 3], 4)  # enters and leaves decode_layout
        model.train()
        model(idx, targets=idx).loss.backward()
        opt.step()
        opt.zero_grad()
        model.eval()
        with decode_layout(model), torch.no_grad():
            got = model(prompt).logits  # through the copies
        expected = model(prompt).logits.detach()  # autograd on: F.linear on the weights
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_model_trains_after_decoding_past_its_tables_in_inference_mode():
    # decoding runs under inference_mode and regrows RoPE's tables past max_seq_len; neither the
    # grown tables nor the decode copies of the weights may break a later training step
    torch.manual_seed(0)
    model = build_model(llama_like("tiny", vocab_size=64, max_seq_len=16))
    greedy_cached(model, [1, 2, 3], 30)  # positions up to 33 > 16
    model.train()
    idx = torch.randint(0, 64, (2, 32))
    loss = model(idx, targets=idx).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_large_weights_get_a_packed_copy_that_matches_f_linear():
    # the head-sized weight is packed for oneDNN inside the block (where torch has oneDNN); every
    # product of two or more rows goes through it, one row through the transposed copy
    torch.manual_seed(0)
    for bias in (False, True):
        small, large = Linear(64, 96), Linear(128, PACK_MIN_ELEMENTS // 128, bias=bias)
        with decode_layout(small, large), torch.inference_mode():
            assert small.decode.packed is None
            assert (large.decode.packed is not None) == torch.backends.mkldnn.is_available()
            for rows in (1, 2, 5, 17):
                x = torch.randn(1, rows, 128)
                torch.testing.assert_close(large(x), F.linear(x, large.weight, large.bias),
                                           rtol=1e-5, atol=1e-5)
        assert large.decode is None
