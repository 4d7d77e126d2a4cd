"""The mini-former: config checks, presets, the causal property, KV-cache decoding, attention maps,
activation recording, padding, and that it learns."""

import math

import pytest
import torch

from nlpcurriculum.models.miniformer import (
    MiniFormerConfig,
    build_model,
    gpt2_like,
    llama_like,
    medium,
    record_activations,
    small,
    tiny,
)
from nlpcurriculum.nn.kv_cache import KVCache

POSITIONS = ["none", "sinusoidal", "learned", "rope", "alibi"]


def _cfg(**kw):
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=32)
    return MiniFormerConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(d_model=30), "divisible by n_heads"),
        (dict(n_kv_heads=3), "n_kv_heads"),
        (dict(position="xpos"), "position"),
        (dict(norm="batchnorm"), "norm"),
        (dict(mlp="geglu"), "mlp"),
        (dict(dropout=1.5), "dropout"),
        (dict(n_layers=0), "n_layers"),
        (dict(d_model=36, n_heads=12, position="rope"), "even head_dim"),
        (dict(norm_eps=0.0), "norm_eps"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kwargs)


def test_config_resolves_defaults():
    cfg = _cfg()
    assert cfg.n_kv_heads == 4 and cfg.d_ff == 128 and cfg.head_dim == 8
    assert _cfg(mlp="swiglu").d_ff == 96  # 8 * 32 / 3 = 85.3 -> 96
    assert MiniFormerConfig(**_cfg().__dict__) == cfg  # round-trips through a dict (params.yaml)


@pytest.mark.parametrize("make,lo,hi", [(tiny, 0.15e6, 0.3e6), (small, 1e6, 3e6), (medium, 8e6, 12e6)])
def test_presets_have_their_advertised_sizes(make, lo, hi):
    n = build_model(make()).num_params()
    assert lo <= n <= hi


def test_architecture_presets_pick_their_parts():
    llama, gpt2 = llama_like(), gpt2_like("small")
    assert (llama.position, llama.norm, llama.mlp, llama.bias, llama.tie_weights) == ("rope", "rmsnorm", "swiglu", False, False)
    assert (gpt2.position, gpt2.norm, gpt2.mlp, gpt2.bias, gpt2.tie_weights) == ("learned", "layernorm", "gelu_tanh", True, True)
    assert gpt2.d_model == small().d_model
    assert llama_like(n_kv_heads=2).n_kv_heads == 2


def test_forward_shapes_and_initial_loss_is_about_log_vocab():
    torch.manual_seed(0)
    model = build_model(_cfg())
    idx, targets = torch.randint(0, 50, (3, 10)), torch.randint(0, 50, (3, 10))
    out = model(idx, targets=targets)
    assert out.logits.shape == (3, 10, 50) and out.attentions is None
    assert out.loss.item() == pytest.approx(math.log(50), abs=0.2)  # near-uniform predictions at init


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("fused", [True, False])
def test_causal_property_future_tokens_leave_past_logits_exactly_unchanged(position, fused):
    torch.manual_seed(0)
    model = build_model(_cfg(position=position, fused_attention=fused)).eval()
    idx = torch.randint(0, 50, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1 + torch.randint(0, 48, (2, 5))) % 50  # every future token differs
    a, b = model(idx).logits, model(changed).logits
    assert torch.equal(a[:, :7], b[:, :7])  # exactly, not approximately
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("n_kv_heads", [4, 1])
def test_kv_cache_decode_gives_the_full_forward_logits_and_greedy_text(position, n_kv_heads):
    torch.manual_seed(0)
    model = build_model(_cfg(position=position, n_kv_heads=n_kv_heads)).eval()
    prompt = torch.randint(0, 50, (2, 5))

    # greedy decoding without a cache: re-run the whole prefix every step
    seq, full_logits = prompt, []
    for _ in range(8):
        logits = model(seq).logits[:, -1]
        full_logits.append(logits)
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)

    # with a cache: the prompt once, then one token per step
    cache = KVCache(n_layers=2)
    logits = model(prompt, kv_cache=cache).logits[:, -1]
    cached_seq, cached_logits = prompt, []
    for _ in range(8):
        cached_logits.append(logits)
        nxt = logits.argmax(-1, keepdim=True)
        cached_seq = torch.cat([cached_seq, nxt], dim=1)
        logits = model(nxt, kv_cache=cache).logits[:, -1]

    assert torch.equal(cached_seq, seq)  # identical greedy text
    assert torch.allclose(torch.stack(cached_logits), torch.stack(full_logits), atol=1e-5, rtol=0)
    assert cache.seq_len() == 5 + 8


@pytest.mark.parametrize("position", POSITIONS)
def test_several_new_tokens_after_cached_ones_give_the_full_forward_logits(position):
    # speculative verification and chunked prefill: T > 1 new tokens after cached ones, where the
    # model builds the bottom-right causal mask once for all layers
    torch.manual_seed(0)
    model = build_model(_cfg(position=position)).eval()
    idx = torch.randint(0, 50, (2, 12))
    full = model(idx).logits  # (2, 12, V)
    cache = KVCache(n_layers=2)
    chunks = [model(idx[:, a:b], kv_cache=cache).logits for a, b in ((0, 5), (5, 9), (9, 12))]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=0)


def test_return_attn_gives_per_layer_maps_and_the_same_logits():
    torch.manual_seed(0)
    model = build_model(_cfg(position="rope")).eval()
    idx = torch.randint(0, 50, (2, 9))
    out = model(idx, return_attn=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 9, 9)
    assert torch.allclose(out.attentions[1].sum(-1), torch.ones(2, 4, 9), atol=1e-6)
    assert torch.allclose(out.logits, model(idx).logits, atol=1e-5, rtol=0)


def test_weight_tying_shares_one_matrix():
    tied = build_model(_cfg(tie_weights=True))
    untied = build_model(_cfg(tie_weights=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == 50 * 32
    # non-embedding count drops the token table and the learned position table
    assert tied.num_params() - tied.num_params(non_embedding=True) == 50 * 32 + 32 * 32


def test_record_activations_captures_every_layer_and_removes_its_hooks():
    torch.manual_seed(0)
    model = build_model(_cfg(mlp="swiglu"))
    idx = torch.randint(0, 50, (2, 6))
    with record_activations(model) as acts:
        logits = model(idx).logits
    expected = {"embed"} | {f"layer{i}.{k}" for i in range(2) for k in ("norm1", "attn_out", "mlp_hidden", "residual")}
    assert set(acts) == expected
    assert acts["layer0.mlp_hidden"].shape == (2, 6, 96)
    assert torch.allclose(model.lm_head(model.norm_f(acts["layer1.residual"])), logits, atol=1e-6)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_learned_positions_refuse_to_run_past_max_seq_len_but_rope_extrapolates():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="max_seq_len"):
        build_model(_cfg(position="learned", max_seq_len=8))(torch.zeros(1, 9, dtype=torch.long))
    logits = build_model(_cfg(position="rope", max_seq_len=8))(torch.zeros(1, 20, dtype=torch.long)).logits
    assert logits.shape == (1, 20, 50) and torch.isfinite(logits).all()


def test_right_padding_leaves_real_token_logits_unchanged():
    torch.manual_seed(0)
    model = build_model(_cfg(position="rope")).eval()
    short, long = torch.randint(0, 50, (1, 4)), torch.randint(0, 50, (1, 7))
    batch = torch.cat([torch.cat([short, torch.zeros(1, 3, dtype=torch.long)], 1), long])
    pad = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7], dtype=torch.bool)
    logits = model(batch, padding_mask=pad).logits
    assert torch.allclose(logits[0, :4], model(short).logits[0], atol=1e-5, rtol=0)
    assert torch.allclose(logits[1], model(long).logits[0], atol=1e-5, rtol=0)


def test_loss_ignores_masked_targets():
    torch.manual_seed(0)
    model = build_model(_cfg())
    idx = torch.randint(0, 50, (2, 6))
    targets = idx.clone()
    targets[:, :3] = -100
    logits = model(idx).logits
    expected = torch.nn.functional.cross_entropy(logits[:, 3:].reshape(-1, 50), idx[:, 3:].reshape(-1))
    assert model(idx, targets=targets).loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_forward_rejects_bad_inputs():
    model = build_model(_cfg())
    with pytest.raises(ValueError, match="token ids"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(2, 3, dtype=torch.long), targets=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="kv_cache"):
        model(torch.zeros(1, 3, dtype=torch.long), kv_cache=KVCache(3))


@pytest.mark.parametrize("make", [llama_like, gpt2_like])
def test_model_memorises_a_small_batch(make):
    torch.manual_seed(0)
    model = build_model(make(vocab_size=50, n_layers=2, max_seq_len=32))
    idx = torch.randint(0, 50, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = model(idx[:, :-1], targets=idx[:, 1:]).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_load_model_rebuilds_a_checkpointed_model(tmp_path):
    import dataclasses

    from nlpcurriculum.models.miniformer import load_model
    from nlpcurriculum.training.checkpoint import CheckpointError, save_checkpoint

    torch.manual_seed(0)
    model = build_model(_cfg(position="rope", mlp="swiglu")).eval()
    save_checkpoint(tmp_path / "m.pt", model=model, model_config=dataclasses.asdict(model.config))
    loaded = load_model(tmp_path / "m.pt")
    idx = torch.randint(0, 50, (1, 8))
    assert loaded.config == model.config and torch.equal(loaded(idx).logits, model(idx).logits)
    save_checkpoint(tmp_path / "bare.pt", model=model)
    with pytest.raises(CheckpointError, match="model_config"):
        load_model(tmp_path / "bare.pt")


def _moe_cfg():
    from nlpcurriculum.nn.moe import MoEConfig

    return _cfg(moe=MoEConfig(experts=4, top_k=2, capacity_factor=1.25, layers=[1]))


def _flat(cfg: MiniFormerConfig) -> dict:
    """The config as checkpoints before ``moe`` was nested wrote it: flat ``moe_*`` keys."""
    import dataclasses

    data = dataclasses.asdict(cfg)
    moe = data.pop("moe")
    return {**data, **{f"moe_{k}": v for k, v in (moe or {"experts": 0}).items()}}


def test_config_from_dict_reads_the_nested_moe_and_the_old_flat_keys():
    import dataclasses

    from nlpcurriculum.nn.moe import MoEConfig

    cfg = _moe_cfg()
    assert MiniFormerConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    assert MiniFormerConfig.from_dict(_flat(cfg)) == cfg
    assert MiniFormerConfig.from_dict(_flat(_cfg())) == _cfg()  # moe_experts 0: dense
    dense = {k: v for k, v in dataclasses.asdict(_cfg()).items() if k != "moe"}
    assert MiniFormerConfig.from_dict({**dense, "moe_experts": 0, "moe_top_k": 1}).moe is None
    assert MiniFormerConfig.from_dict({**dense, "moe_experts": 2}).moe == MoEConfig(experts=2)
    with pytest.raises(ValueError, match=r"unknown model config keys \['moe_colour'\]"):
        MiniFormerConfig.from_dict({**_flat(cfg), "moe_colour": 1})
    with pytest.raises(ValueError, match="both 'moe' and the old flat keys"):
        MiniFormerConfig.from_dict({**dataclasses.asdict(cfg), "moe_experts": 4})


def test_load_model_reads_a_checkpoint_with_the_old_flat_moe_keys(tmp_path):
    from nlpcurriculum.models.miniformer import load_model
    from nlpcurriculum.training.checkpoint import CheckpointError, save_checkpoint

    torch.manual_seed(0)
    model = build_model(_moe_cfg()).eval()
    save_checkpoint(tmp_path / "old.pt", model=model, model_config=_flat(model.config))
    loaded = load_model(tmp_path / "old.pt")
    idx = torch.randint(0, 50, (1, 8))
    assert loaded.config == model.config and torch.equal(loaded(idx).logits, model(idx).logits)
    save_checkpoint(tmp_path / "odd.pt", model=model, model_config={**_flat(model.config), "moe_x": 1})
    with pytest.raises(CheckpointError, match=r"odd.pt: its model_config does not build"):
        load_model(tmp_path / "odd.pt")
