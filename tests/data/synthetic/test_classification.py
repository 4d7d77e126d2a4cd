"""Word-list classification data: learnable signal and the requested label noise."""

from __future__ import annotations

import numpy as np
import pytest

from nlpcurriculum.data.synthetic.classification import (
    SENTIMENT_WORDS,
    TOPIC_WORDS,
    ClassificationConfig,
    generate,
    label_names,
)


def _keyword_classifier(text: str, table: dict[str, str]) -> int:
    words = text.lower().strip(".").split()
    scores = [sum(w in set(v.split()) for w in words) for v in table.values()]
    return int(np.argmax(scores))


@pytest.mark.parametrize("task,table", [("topic", TOPIC_WORDS), ("sentiment", SENTIMENT_WORDS)])
def test_signal_is_learnable_against_clean_labels(task, table):
    records = generate(ClassificationConfig(n=500, task=task, signal=0.3, label_noise=0.3), seed=0)
    predicted = np.array([_keyword_classifier(r["text"], table) for r in records])
    acc_clean = np.mean(predicted == np.array([r["clean_label"] for r in records]))
    acc_noisy = np.mean(predicted == np.array([r["label"] for r in records]))
    assert acc_clean > 0.9
    assert acc_noisy < acc_clean - 0.15  # the noise is in the labels, not the texts
    assert {r["label_name"] for r in records} == set(label_names(task))


def test_label_noise_rate_and_flips_go_to_other_classes():
    records = generate(ClassificationConfig(n=4000, label_noise=0.25), seed=1)
    noisy = np.array([r["is_noisy"] for r in records])
    assert abs(noisy.mean() - 0.25) < 0.025
    assert all((r["label"] != r["clean_label"]) == r["is_noisy"] for r in records)
    flipped_to = np.bincount([r["label"] for r in records if r["is_noisy"]], minlength=5)
    assert flipped_to.min() > 0.6 * flipped_to.mean()  # uniform over the other classes


def test_no_noise_and_validation():
    assert not any(r["is_noisy"] for r in generate(ClassificationConfig(n=200), seed=2))
    with pytest.raises(ValueError):
        ClassificationConfig(label_noise=1.5)
    with pytest.raises(ValueError):
        ClassificationConfig(task="emotion")  # type: ignore[arg-type]
