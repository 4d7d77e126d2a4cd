"""The one generation API: greedy by hand, the sliding window, stop ids, batches, banned ids,
the KV-cached path, a caller's own forward, and parity with the cached sampler."""

import pytest
import torch

from nlpcurriculum.decoding.generate import generate, next_token
from nlpcurriculum.decoding.kv_decode import greedy_cached
from nlpcurriculum.decoding.samplers import SamplerConfig, sample
from nlpcurriculum.models import MiniFormerConfig, build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(MiniFormerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=8))


def test_greedy_is_argmax_over_the_window_and_stops_at_stop_id(model):
    new = generate(model, [1, 2, 3], 12)
    ids = [1, 2, 3]
    for _ in range(12):  # the same by hand, cropping to the last max_seq_len ids
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids[-8:]])).logits[0, -1].argmax()))
    assert new == ids[3:]
    stopped = generate(model, [1, 2, 3], 12, stop_id=new[2])
    assert stopped == new[: new.index(new[2]) + 1]
    assert generate(model, [1, 2, 3], 0) == []
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [], 3)


def test_sampling_is_reproducible_and_restores_the_mode(model):
    sampler = SamplerConfig(temperature=1.0, top_k=5)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = generate(model, [1], 10, sampler=sampler, generator=g1)
    assert a == generate(model, [1], 10, sampler=sampler, generator=g2)
    assert len(a) == 10 and all(0 <= t < 32 for t in a)
    model.train()
    generate(model, [1], 2, sampler=sampler)
    assert model.training  # put back as it was
    model.eval()


def test_a_batch_is_the_rows_decoded_alone_and_banned_ids_never_appear(model):
    prompts = [[1, 2], [3, 4], [5, 6]]
    rows = generate(model, prompts, 6)
    assert rows == [generate(model, p, 6) for p in prompts]
    banned = sorted({t for r in rows for t in r})
    for r in generate(model, prompts, 6, banned=banned):
        assert len(r) == 6 and not set(r) & set(banned)
    with pytest.raises(ValueError, match="same length"):
        generate(model, [[1], [1, 2]], 3)


def test_stop_id_ends_each_row_and_finished_rows_wait():
    class Counter(torch.nn.Module):
        """Next id = (last id + 1) mod 8: rows reach the stop id 7 at different steps."""

        config = MiniFormerConfig(vocab_size=8, max_seq_len=64)

        def forward(self, ids):
            return type("Out", (), {"logits": torch.nn.functional.one_hot((ids + 1) % 8, 8).float()})()

    assert generate(Counter(), [[5], [2], [6]], 10, stop_id=7) == [[6, 7], [3, 4, 5, 6, 7], [7]]
    assert generate(Counter(), [[5], [2]], 3) == [[6, 7, 0], [3, 4, 5]]  # no stop id: all steps


def test_cached_path_matches_the_window_path_and_the_cached_sampler(model):
    prompts = [[1, 2, 3], [4, 5, 6]]
    assert generate(model, prompts[0], 5, cache=True) == greedy_cached(model, prompts[0], 5)
    assert generate(model, prompts, 5, cache=True) == generate(model, prompts, 5)  # fits the window
    cfg = SamplerConfig(temperature=0.9, top_p=0.9, repetition_penalty=1.3)
    ours = generate(model, prompts, 5, sampler=cfg, cache=True, generator=torch.Generator().manual_seed(3))
    ref = sample(model, prompts, 5, cfg, generator=torch.Generator().manual_seed(3)).tokens
    assert ours == ref  # the same draws in the same order as samplers.sample
    with pytest.raises(ValueError, match="next_logits"):
        generate(model, [1], 2, cache=True, next_logits=lambda ids: ids)


def test_next_logits_replaces_the_forward():
    seen = []

    def next_logits(ids):  # (B, T) -> (B, V): always prefer id T
        seen.append(ids.shape)
        return torch.nn.functional.one_hot(torch.full((ids.size(0),), ids.size(1)), 16).float()

    model = torch.nn.Identity()  # never called
    assert generate(model, [9, 9], 3, next_logits=next_logits) == [2, 3, 4]
    assert seen == [(1, 2), (1, 3), (1, 4)]  # all ids so far, no window


def test_next_token_greedy_and_sampled():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    assert next_token(logits, SamplerConfig(temperature=0.0)).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([next_token(logits, SamplerConfig(temperature=1.0), generator=g) for _ in range(4000)])
    freq = (draws[:, 0] == 1).float().mean()
    assert abs(float(freq) - float(logits[0].softmax(-1)[1])) < 0.03  # p(1) = 0.84
