"""Key-value recall: the answer is retrievable and the distance is what was asked for."""

from __future__ import annotations

import pytest

from nlpcurriculum.data.synthetic.kv_recall import KVRecallConfig, generate, generate_sweep


def _pairs(context: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ")) for line in context.split("\n")]  # type: ignore[misc]


def test_answer_is_the_value_of_the_queried_key():
    for r in generate(KVRecallConfig(n=50, n_pairs=20), seed=0):
        pairs = _pairs(r["context"])
        assert len(pairs) == 20 and len({k for k, _ in pairs}) == 20  # distinct keys
        assert dict(pairs)[r["key"]] == r["answer"]
        assert r["key"] in r["query"] and r["prompt"].endswith(r["query"] + "\n")


@pytest.mark.parametrize("distance", [0, 5, 31])
def test_distance_counts_lines_between_target_and_query(distance):
    for r in generate(KVRecallConfig(n=10, n_pairs=32, distance=distance), seed=1):
        lines = r["context"].split("\n")
        assert lines.index(f"{r['key']}: {r['answer']}") == 31 - distance
        assert r["distance"] == distance
        assert r["distance_chars"] == sum(len(x) + 1 for x in lines[32 - distance :])


def test_sweep_and_validation():
    recs = generate_sweep([0, 10, 20], n_per_distance=4, n_pairs=24, seed=2)
    assert [r["distance"] for r in recs] == [0] * 4 + [10] * 4 + [20] * 4
    with pytest.raises(ValueError):
        generate_sweep([30], 1, n_pairs=24)
    with pytest.raises(ValueError):
        KVRecallConfig(n_pairs=8, distance=8)
