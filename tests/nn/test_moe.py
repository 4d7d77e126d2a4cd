"""The MoE layer: dense equivalence, capacity dropping, balancing losses, gradients, a naive
per-token reference, and its wiring into the mini-former and the trainer's loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model, load_model
from nlpcurriculum.nn.activations import build_mlp
from nlpcurriculum.nn.moe import MoE, MoEConfig, expert_capacity, load_balance_loss, router_z_loss
from nlpcurriculum.training.trainer import Trainer, TrainerConfig, lm_loss


@pytest.mark.parametrize("kind", ["gelu", "swiglu"])
def test_one_expert_top1_without_capacity_equals_the_dense_mlp_exactly(kind):
    torch.manual_seed(0)
    dense = build_mlp(kind, 16, 32, bias=True)
    moe = MoE(16, 32, n_experts=1, top_k=1, kind=kind, bias=True)
    moe.experts[0].load_state_dict(dense.state_dict())
    x = torch.randn(3, 7, 16)
    assert torch.equal(moe(x), dense(x))  # gate = softmax of one logit = 1 exactly
    assert moe.last_routing.dropped_fraction == 0.0


def _two_expert_moe(p_expert0, capacity_factor, priority="position", top_k=1):
    """An E=2 MoE whose router gives token n probability p_expert0[n] for expert 0."""
    moe = MoE(2, 4, n_experts=2, top_k=top_k, capacity_factor=capacity_factor, priority=priority)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(2))  # logits = x
    p = torch.tensor(p_expert0)
    x = torch.stack([torch.log(p / (1 - p)), torch.zeros_like(p)], dim=-1)  # (N, 2)
    return moe, x.unsqueeze(0)  # (1, N, 2)


def test_capacity_drops_exactly_the_expected_tokens_in_priority_order():
    # the module docstring's worked example: experts 0, 0, 1, 1; capacity ceil(0.5*4*1/2) = 1
    moe, x = _two_expert_moe([0.9, 0.8, 0.4, 0.3], capacity_factor=0.5)
    y = moe(x)[0]
    r = moe.last_routing
    assert r.capacity == 1
    assert r.kept[:, 0].tolist() == [True, False, True, False]
    assert r.dropped_fraction == 0.5 and r.tokens_fully_dropped == 0.5
    assert torch.equal(y[1], torch.zeros(2)) and torch.equal(y[3], torch.zeros(2))  # zero: residual only
    assert y[0].abs().sum() > 0 and y[2].abs().sum() > 0
    moe.priority = "score"
    moe(x)
    assert moe.last_routing.kept[:, 0].tolist() == [True, False, False, True]  # 0.9 > 0.8, 0.7 > 0.6


def test_first_choices_come_before_second_choices():
    # top-2 with E=2: every token uses both experts; capacity ceil(0.5 * 3 * 2 / 2) = 2 per expert
    moe, x = _two_expert_moe([0.9, 0.8, 0.3], capacity_factor=0.5, top_k=2)
    moe(x)
    r = moe.last_routing
    assert r.capacity == 2
    assert r.expert_idx.tolist() == [[0, 1], [0, 1], [1, 0]]
    # expert 0: first choices of tokens 0, 1 fill it; token 2's second choice is dropped.
    # expert 1: first choice of token 2, then second choices in position order: token 0 fits.
    assert r.kept.tolist() == [[True, True], [True, False], [True, False]]


def test_expert_capacity_formula():
    assert expert_capacity(100, 4, 1, 1.25) == 32  # ceil(31.25)
    assert expert_capacity(100, 4, 2, 1.0) == 50
    assert expert_capacity(100, 4, 2, None) == 100


def test_balance_loss_equals_its_formula_on_a_hand_case():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]])
    idx = probs.argmax(-1, keepdim=True)
    # f = (0.5, 0.5), P = (0.6, 0.4): 2 * (0.5*0.6 + 0.5*0.4) = 1.0
    assert math.isclose(float(load_balance_loss(probs, idx, 2)), 1.0, rel_tol=1e-6)
    skew = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.3, 0.7]])
    # f = (0.75, 0.25), P = (0.675, 0.325): 2 * (0.50625 + 0.08125) = 1.175
    assert math.isclose(float(load_balance_loss(skew, skew.argmax(-1, keepdim=True), 2)), 1.175,
                        rel_tol=1e-6)
    collapsed = torch.tensor([[1.0, 0.0, 0.0]] * 5)
    assert math.isclose(float(load_balance_loss(collapsed, torch.zeros(5, 1, dtype=torch.long), 3)), 3.0)


def test_z_loss_is_the_mean_squared_logsumexp():
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    expected = (math.log(2) ** 2 + math.log(math.e + math.e ** 2) ** 2) / 2
    assert math.isclose(float(router_z_loss(logits)), expected, rel_tol=1e-6)


@pytest.mark.parametrize("top_k", [1, 2])
def test_gradients_reach_the_router_and_the_experts(top_k):
    torch.manual_seed(0)
    moe = MoE(8, 16, n_experts=4, top_k=top_k, capacity_factor=1.0)
    y = moe(torch.randn(2, 10, 8))
    (y.square().sum() + moe.last_routing.balance_loss).backward()
    assert moe.router.weight.grad.abs().sum() > 0
    used = moe.last_routing.processed
    for e, expert in enumerate(moe.experts):
        assert (expert.up.weight.grad is not None and expert.up.weight.grad.abs().sum() > 0) == bool(used[e])


def _naive(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Token by token: route, then fill each expert's slots in priority order."""
    tokens = x.reshape(-1, x.shape[-1])
    N, k, E = tokens.shape[0], moe.top_k, moe.n_experts
    probs = F.softmax(tokens @ moe.router.weight.t(), dim=-1)
    choices = []  # (rank, token, expert, gate)
    for n in range(N):
        p, idx = probs[n].topk(k)
        g = p / p.sum() if moe.normalize_gates else p
        choices += [(j, n, int(idx[j]), g[j]) for j in range(k)]
    if moe.priority == "position":
        choices.sort(key=lambda c: (c[0], c[1]))
    else:
        choices.sort(key=lambda c: (c[0], -float(c[3])))
    cap = expert_capacity(N, E, k, moe.capacity_factor)
    fill, out = [0] * E, torch.zeros_like(tokens)
    for _, n, e, g in choices:
        if fill[e] < cap:
            fill[e] += 1
            out[n] += g * moe.experts[e](tokens[n:n + 1])[0]
    return out.view(x.shape)


@pytest.mark.parametrize("top_k, cf, priority, kind", [
    (1, None, "position", "gelu"), (1, 1.0, "position", "gelu"), (2, 0.75, "position", "swiglu"),
    (2, 1.0, "score", "gelu"), (1, 0.5, "score", "relu"),
])
def test_vectorized_dispatch_matches_a_naive_per_token_loop(top_k, cf, priority, kind):
    torch.manual_seed(1)
    moe = MoE(8, 12, n_experts=4, top_k=top_k, kind=kind, capacity_factor=cf, priority=priority)
    with torch.no_grad():
        moe.router.weight.mul_(8)  # a confident router: unbalanced, so capacity bites
    x = torch.randn(3, 11, 8)
    with torch.no_grad():
        ours, ref = moe(x), _naive(moe, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    if cf is not None and cf < 1:
        assert moe.last_routing.dropped_fraction > 0


def test_jitter_only_in_training():
    torch.manual_seed(0)
    moe = MoE(8, 16, n_experts=4, jitter=0.5).eval()
    x = torch.randn(2, 6, 8)
    assert torch.equal(moe(x), moe(x))
    moe.train()
    torch.manual_seed(1)
    a = moe.route(x.view(-1, 8))[0]
    assert not torch.equal(a, moe.router(x.view(-1, 8)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_experts=0), "n_experts"), (dict(top_k=3, n_experts=2), "top_k"),
    (dict(capacity_factor=0.0), "capacity_factor"), (dict(priority="random"), "priority"),
    (dict(jitter=1.0), "jitter"),
])
def test_bad_moe_arguments_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoE(8, 16, **{"n_experts": 2, **kwargs})


# --- the mini-former ------------------------------------------------------------------------

TINY = dict(d_model=16, n_layers=2, n_heads=2, max_seq_len=16, d_ff=32)


def test_default_config_is_dense_and_has_no_aux_loss():
    model = build_model(MiniFormerConfig(**TINY))
    assert not any(isinstance(b.mlp, MoE) for b in model.blocks)
    x = torch.randint(0, 256, (2, 8))
    assert model(x, targets=x).aux_loss is None


def test_one_expert_miniformer_equals_the_dense_one():
    torch.manual_seed(0)
    dense = build_model(MiniFormerConfig(**TINY))
    moe = build_model(MiniFormerConfig(**TINY, moe=MoEConfig(experts=1)))
    state = {}
    for k, v in dense.state_dict().items():
        state[k.replace(".mlp.", ".mlp.experts.0.") if ".mlp." in k else k] = v
    for i in range(2):
        state[f"blocks.{i}.mlp.router.weight"] = moe.state_dict()[f"blocks.{i}.mlp.router.weight"]
    moe.load_state_dict(state)
    x = torch.randint(0, 256, (2, 8))
    assert torch.equal(moe(x).logits, dense(x).logits)


def test_moe_layers_selects_blocks_and_aux_loss_is_weighted():
    cfg = MiniFormerConfig(**TINY, moe=MoEConfig(experts=4, top_k=2, layers=[1], aux_weight=0.5,
                                                 z_weight=0.1))
    model = build_model(cfg)
    assert [isinstance(b.mlp, MoE) for b in model.blocks] == [False, True]
    x = torch.randint(0, 256, (2, 8))
    out = model(x, targets=x)
    r = model.blocks[1].mlp.last_routing
    assert torch.allclose(out.aux_loss, 0.5 * r.balance_loss + 0.1 * r.z_loss)


def test_lm_loss_adds_the_aux_loss_in_training_only():
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(**TINY, moe=MoEConfig(experts=2, aux_weight=1.0)))
    x = torch.randint(0, 256, (2, 8))
    model.train()
    out = model(x, targets=x)
    assert torch.allclose(lm_loss(model, (x, x)), out.loss + out.aux_loss)
    model.eval()
    assert torch.allclose(lm_loss(model, (x, x)), model(x, targets=x).loss)


@pytest.mark.parametrize("kwargs, match", [
    (dict(experts=2, top_k=3), "moe.top_k"), (dict(experts=0), "moe.experts"),
    (dict(experts=2.0), "moe.experts"), (dict(experts=2, capacity_factor=0.0), "moe.capacity_factor"),
    (dict(experts=2, aux_weight=-1.0), "moe.aux_weight"), (dict(experts=2, jitter=1.0), "moe.jitter"),
    (dict(experts=2, layers=[-1]), "moe.layers"), (dict(experts=2, priority="x"), "moe.priority"),
])
def test_bad_moe_config_fails_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoEConfig(**kwargs)


def test_the_model_config_checks_the_moe_layers_and_wants_a_moe_config():
    with pytest.raises(ValueError, match=r"moe.layers must index blocks 0..1, got \[5\]"):
        MiniFormerConfig(**TINY, moe=MoEConfig(experts=2, layers=[5]))
    with pytest.raises(TypeError, match="moe must be a MoEConfig or None, got dict"):
        MiniFormerConfig(**TINY, moe={"experts": 2})


def test_moe_layer_from_config_routes_as_configured():
    cfg = MoEConfig(experts=3, top_k=2, capacity_factor=1.5, jitter=0.1, priority="score")
    layer = MoE.from_config(cfg, 8, 16, kind="swiglu", bias=False)
    assert (layer.n_experts, layer.top_k, layer.capacity_factor, layer.jitter, layer.priority) == \
        (3, 2, 1.5, 0.1, "score")
    assert len(layer.experts) == 3 and layer.experts[0].down.bias is None
    assert cfg.applies_to(5) and not MoEConfig(experts=2, layers=[0]).applies_to(1)


def test_moe_model_trains_and_round_trips_through_a_checkpoint(tmp_path):
    from nlpcurriculum.training.data import TokenBatcher

    torch.manual_seed(0)
    cfg = MiniFormerConfig(**TINY, moe=MoEConfig(experts=2, top_k=1, capacity_factor=1.5))
    model = build_model(cfg)
    data = TokenBatcher(torch.arange(200) % 7, 8, seed=0)
    trainer = Trainer(model, TrainerConfig(lr=1e-2, max_steps=20, batch_size=4, warmup_steps=1,
                                           progress=False), data)
    result = trainer.train()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    path = trainer.save(tmp_path / "moe.pt")
    loaded = load_model(path)
    x = torch.randint(0, 7, (2, 8))
    model.eval()
    assert torch.equal(loaded(x).logits, model(x).logits)
