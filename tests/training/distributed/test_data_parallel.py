"""The hand-written all-reduce's buckets (the launches themselves run in the experiment's test)."""

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.distributed.data_parallel import grad_buckets


def test_grad_buckets_reverse_order_and_size_cap():
    model = build_model(MiniFormerConfig(d_model=16, n_layers=2, n_heads=2, max_seq_len=8))
    params = list(model.parameters())
    per_param = grad_buckets(params, 0)
    assert [b[0] for b in per_param] == list(reversed(params))
    one = grad_buckets(params, 25.0)
    assert len(one) == 1 and len(one[0]) == len(params)
    small = grad_buckets(params, 0.001)  # ~1 KB buckets
    assert 1 < len(small) < len(params) + 1
    assert [p for b in small for p in b] == list(reversed(params))
