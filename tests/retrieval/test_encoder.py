"""The rerankers' shared parts: term ids, padding, the bidirectional body, the training loop."""

import pytest
import torch

from nlpcurriculum.retrieval.encoder import (PAD, SPECIALS, UNK, EncoderConfig, Group, TermTokenizer,
                                             build_body, hidden_states, pad_batch, train_listwise)


def test_tokenizer_hand_worked_example():
    tok = TermTokenizer([["cell", "grow"], ["cell"]], min_count=2)
    assert len(tok) == len(SPECIALS) + 1
    assert tok.ids(["cell", "grow"], 5) == [6, UNK]
    assert tok.ids(["cell", "cell", "cell"], 2) == [6, 6]


def test_pad_batch():
    ids, mask = pad_batch([[7, 8, 9], [10]])
    assert ids.tolist() == [[7, 8, 9], [10, PAD, PAD]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_body_is_bidirectional_and_padding_is_invisible():
    torch.manual_seed(0)
    body = build_body(EncoderConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32), 30, 12).eval()
    ids, mask = pad_batch([[6, 7, 8, 9]])
    with torch.no_grad():
        h = hidden_states(body, ids, mask)
        later = ids.clone()
        later[0, 3] = 20
        h2 = hidden_states(body, later, mask)
        padded_ids, padded_mask = pad_batch([[6, 7, 8, 9], [6, 7, 8, 9, 10, 11]])
        h3 = hidden_states(body, padded_ids, padded_mask)
    assert not torch.allclose(h[0, 0], h2[0, 0])          # the first token sees the last one
    assert torch.allclose(h[0], h3[0, :4], atol=1e-5)      # padding changes nothing


def test_config_rejects_a_group_without_negatives():
    with pytest.raises(ValueError, match="group_size"):
        EncoderConfig(group_size=1)


def test_train_listwise_is_deterministic_for_a_seed():
    def run():
        torch.manual_seed(0)
        model = torch.nn.Embedding(10, 1)
        groups = [Group(q, q, (q + 1, q + 2, q + 3)) for q in range(6)]
        losses = train_listwise(model, lambda m, qs, ds: m(ds).squeeze(-1), groups,
                                EncoderConfig(epochs=3, batch_size=2, group_size=3, lr=0.05), seed=1)
        return losses, model.weight.detach().clone()

    (l1, w1), (l2, w2) = run(), run()
    assert l1 == l2 and torch.equal(w1, w2) and l1[-1] < l1[0]
