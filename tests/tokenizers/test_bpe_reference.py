"""The textbook BPE trainer: its worked example, token reuse, and bad input. (The fast trainer is
held to it in ``test_bpe.py``.)"""

import pytest

from nlpcurriculum.tokenizers.bpe import learn_merges
from nlpcurriculum.tokenizers.bpe_reference import learn_merges_reference


def test_reference_trainer_follows_the_worked_example_and_reuses_existing_tokens():
    base = [bytes([i]) for i in range(256)]
    learned = learn_merges_reference([list(b"aaabdaaabac")], [1], base, 3, min_frequency=1)
    assert learned.merges == [(97, 97), (97, 98), (256, 257)] and learned.applied == 3
    assert learned.tokens[256:] == [b"aa", b"ab", b"aaab"]
    # "aaa" is reached as aa+a, then again as a+aa: applied, but no second id for the same bytes
    words = {tuple(b"aaa"): 3, tuple(b"aa"): 2, tuple(b"a aa"): 1}
    fast = learn_merges(list(words), list(words.values()), base, 4, 1)
    slow = learn_merges_reference(list(words), list(words.values()), base, 4, 1)
    assert (fast.merges, fast.tokens, fast.applied) == (slow.merges, slow.tokens, slow.applied)


def test_reference_trainer_stops_at_min_frequency_and_rejects_mismatched_counts():
    base = [bytes([i]) for i in range(256)]
    learned = learn_merges_reference([list(b"abab"), list(b"cd")], [1, 1], base, 10, min_frequency=2)
    assert learned.merges == [(97, 98)]  # (a,b) twice; then every pair once
    with pytest.raises(ValueError, match="2 words but 1 counts"):
        learn_merges_reference([list(b"ab"), list(b"cd")], [1], base, 1)
