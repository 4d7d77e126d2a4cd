"""LoRA from scratch against peft's LoRA on the same factors (the oracle), merge / unmerge,
merge-and-unload, the adapter file, and the worked example of the module docstring."""

import copy

import peft
import pytest
import torch
from torch import nn

from nlpcurriculum.adaptation.lora import (
    AdapterFileError,
    LoRAConfig,
    LoRALinear,
    count_parameters,
    inject_lora,
    load_adapter,
    lora_state_dict,
    mark_only_trainable,
    merge_lora,
    save_adapter,
    unload_lora,
    unmerge_lora,
)
from nlpcurriculum.models.miniformer import build_model, gpt2_like, llama_like

PEFT_ATOL = 1e-6  # the bound: the same factors, the same fp32 products
MERGE_ATOL = 1e-5  # W0 x + s B A x vs (W0 + s B A) x: fp32 rounding of a different sum order


def _model(kind=llama_like, seed=0):
    torch.manual_seed(seed)
    return build_model(kind("tiny", vocab_size=97, n_layers=2, max_seq_len=64)).eval()


def _randomize(model):
    """Non-zero B: with the default B = 0 every parity below would hold vacuously."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                nn.init.normal_(m.lora_B, std=0.05)


def _peft_twin(plain, ours, cfg, names):
    pcfg = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=list(cfg.targets),
                           init_lora_weights=False)
    theirs = peft.LoraModel(copy.deepcopy(plain), pcfg, "default")
    modules = dict(theirs.model.named_modules())
    with torch.no_grad():
        for n in names:
            modules[n].lora_A["default"].weight.copy_(ours.get_submodule(n).lora_A)
            modules[n].lora_B["default"].weight.copy_(ours.get_submodule(n).lora_B)
    return theirs.eval()


def test_worked_example():
    base = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.eye(2))
    layer = LoRALinear(base, r=1, alpha=2.0)
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, 2.0]]))
        layer.lora_B.copy_(torch.tensor([[1.0], [0.0]]))
    x = torch.tensor([1.0, 1.0])
    assert torch.equal(layer(x), torch.tensor([7.0, 1.0]))
    layer.merge()
    assert torch.equal(base.weight, torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    assert torch.equal(layer(x), torch.tensor([7.0, 1.0]))


@pytest.mark.parametrize("kind", [llama_like, gpt2_like])
@pytest.mark.parametrize("targets,r,alpha", [(("qkv",), 4, 8.0), (("qkv", "proj", "down"), 2, 5.0)])
def test_matches_peft_lora(kind, targets, r, alpha):
    plain = _model(kind)
    ours = copy.deepcopy(plain)
    cfg = LoRAConfig(targets, r, alpha)
    names = inject_lora(ours, cfg)
    _randomize(ours)
    theirs = _peft_twin(plain, ours, cfg, names)
    idx = torch.randint(0, 97, (2, 13))
    with torch.no_grad():
        a, b = ours(idx).logits, theirs.model(idx).logits
        assert (a - b).abs().max() <= PEFT_ATOL
        assert (a - plain(idx).logits).abs().max() > 1e-3  # the adapter changes the outputs
        # merge_and_unload: the same plain model, weight for weight
        mine = unload_lora(copy.deepcopy(ours))
        ref = theirs.merge_and_unload()
        sa, sb = mine.state_dict(), ref.state_dict()
        assert set(sa) == set(sb) == set(plain.state_dict())
        assert max((sa[k] - sb[k]).abs().max() for k in sa) <= PEFT_ATOL
        assert (mine(idx).logits - a).abs().max() <= MERGE_ATOL


def test_trainable_count_and_freezing():
    model = _model()
    cfg = LoRAConfig(("qkv", "proj"), 4, 8.0)
    names = inject_lora(model, cfg)
    assert len(names) == 4
    n = mark_only_trainable(model)
    C = model.config.d_model
    assert n == 2 * (4 * (C + 3 * C) + 4 * (C + C))  # r (in + out) per adapted layer
    peft_model = peft.LoraModel(_model(), peft.LoraConfig(r=4, target_modules=["qkv", "proj"]),
                                "default")
    assert n == count_parameters(peft_model, trainable_only=True)
    loss = model(torch.randint(0, 97, (2, 9))).logits.square().mean()
    loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None}
    assert grads == set(lora_state_dict(model))


def test_merge_unmerge_and_zero_init():
    plain = _model()
    model = copy.deepcopy(plain)
    inject_lora(model, LoRAConfig(("qkv", "proj", "up", "down"), 8, 16.0))
    idx = torch.randint(0, 97, (3, 17))
    with torch.no_grad():
        assert torch.equal(model(idx).logits, plain(idx).logits)  # B = 0: the base exactly
        _randomize(model)
        before = model(idx).logits
        merge_lora(model)
        assert (model(idx).logits - before).abs().max() <= MERGE_ATOL
        unmerge_lora(model)
        for name, p in plain.named_parameters():
            layer_name = name.rsplit(".", 1)[0]
            mine = model.get_submodule(layer_name)
            if isinstance(mine, LoRALinear):
                assert (mine.base.get_parameter(name.rsplit(".", 1)[1]) - p).abs().max() <= 1e-6


def test_dropout_is_training_only():
    model = _model()
    inject_lora(model, LoRAConfig(("qkv",), 4, 8.0, dropout=0.5))
    _randomize(model)
    idx = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(idx).logits, model(idx).logits)
        model.train()
        torch.manual_seed(1)
        a = model(idx).logits
        torch.manual_seed(2)
        assert not torch.equal(a, model(idx).logits)


def test_adapter_file_round_trip(tmp_path):
    plain = _model()
    model = copy.deepcopy(plain)
    cfg = LoRAConfig(("qkv", "proj"), 4, 8.0)
    inject_lora(model, cfg)
    _randomize(model)
    merge_lora(model)  # a merged model still saves its factors
    path = tmp_path / "adapter.pt"
    size = save_adapter(model, cfg, path)
    assert path.stat().st_size == size
    weights = sum(t.numel() * 4 for t in plain.state_dict().values())
    assert size < weights / 5  # the adapter alone is small
    assert (tmp_path / "adapter.pt.json").exists()
    fresh = copy.deepcopy(plain)
    assert load_adapter(fresh, path) == cfg
    idx = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        assert (fresh(idx).logits - model(idx).logits).abs().max() <= MERGE_ATOL


def test_adapter_file_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(AdapterFileError, match="not an"):
        load_adapter(_model(), bad)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(b"\x00\x01")
    with pytest.raises(AdapterFileError, match="not a readable"):
        load_adapter(_model(), trunc)


def test_no_matching_target_is_an_error():
    with pytest.raises(ValueError, match="no nn.Linear"):
        inject_lora(_model(), LoRAConfig(("q_proj",), 4, 8.0))
