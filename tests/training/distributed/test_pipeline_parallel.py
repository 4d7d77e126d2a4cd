"""GPipe's bubble formula and the split of the blocks over stages."""

import math

import pytest
import torch

from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model
from nlpcurriculum.training.distributed.pipeline_parallel import (
    bubble_fraction,
    stage_forward,
    stage_layers,
)


def test_bubble_formula_and_stage_split():
    assert bubble_fraction(2, 1) == 0.5 and math.isclose(bubble_fraction(2, 4), 0.2)
    assert math.isclose(bubble_fraction(4, 8), 3 / 11)
    assert [list(stage_layers(4, 2, s)) for s in range(2)] == [[0, 1], [2, 3]]
    assert [len(stage_layers(5, 2, s)) for s in range(2)] == [2, 3] or \
        [len(stage_layers(5, 2, s)) for s in range(2)] == [3, 2]
    with pytest.raises(ValueError, match="cannot put 2 blocks on 3 stages"):
        stage_layers(2, 3, 0)


def test_stages_compose_to_the_whole_model():
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(d_model=16, n_layers=4, n_heads=2, max_seq_len=8)).eval()
    x = torch.randint(0, 256, (3, 8))
    y = torch.randint(0, 256, (3, 8))
    acts = stage_forward(model, 0, 2, x)
    assert acts.shape == (3, 8, 16)
    loss = stage_forward(model, 1, 2, acts, y)
    assert torch.allclose(loss, model(x, targets=y).loss, atol=1e-6)
