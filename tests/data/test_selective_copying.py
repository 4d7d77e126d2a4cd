"""The selective-copying task generator."""

import torch

from nlpcurriculum.data.selective_copying import BLANK, COPY, copy_batch


def test_copy_batch_places_the_data_in_order_among_blanks_then_asks_for_it():
    g = torch.Generator().manual_seed(0)
    x, data = copy_batch(5, 12, 3, 4, g)
    assert x.shape == (5, 15) and data.shape == (5, 3)
    for row, want in zip(x, data):
        ctx = row[:12]
        assert ctx[ctx != BLANK].tolist() == want.tolist()
        assert row[12:].tolist() == [COPY] * 3
    assert ((data >= 2) & (data < 6)).all()
