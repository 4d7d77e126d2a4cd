"""Data augmentation experiment: classifier, oracle labels, config errors, a tiny run."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nlpcurriculum.data.schemas import AUGMENTED, ContractError, validate
from nlpcurriculum.data.synthetic.classification import ClassificationConfig, generate
from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.experiments.data_augmentation_for_nlp import (
    METHODS,
    AugmentationConfig,
    BowClassifier,
    ClassifierConfig,
    Inputs,
    Outputs,
    ParaphraseConfig,
    TranslatorConfig,
    draw_labelled,
    oracle_label,
    prepare_task,
    run,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.params import ParamsError, load_section, params_file, read_yaml
from nlpcurriculum.training.trainer import TrainerConfig
from tests.conftest import params_copy


def test_bow_classifier_matches_sklearn_logistic_regression():
    from sklearn import linear_model as sk
    from nlpcurriculum.embeddings.vocab import simple_word_tokenize as tok

    recs = generate(ClassificationConfig(n=40), seed=1)  # 5 classes: multinomial in both
    docs, y = [tok(r["text"]) for r in recs], [r["label"] for r in recs]
    wd = 0.01  # ours: mean CE + wd * |W|^2; sklearn: C * sum CE + |W|^2 / 2 -> C = 1 / (2 wd N)
    clf = BowClassifier(ClassifierConfig(steps=400, lr=0.1, weight_decay=wd), 5).fit(docs, y, seed=0)
    x = clf._features(docs)
    ref = sk.LogisticRegression(C=1 / (2 * wd * len(docs)), tol=1e-10, max_iter=10000).fit(x.numpy(), y)
    ours = torch.softmax(x @ clf.w + clf.b, dim=1).detach().numpy()
    assert np.abs(ours - ref.predict_proba(x.numpy())).max() < 5e-3
    assert (clf.predict(docs) == ref.predict(x.numpy())).all()


def test_oracle_label_and_draw_labelled():
    words = [{"goal", "team"}, {"vote", "law"}]
    assert oracle_label("The team scored a goal and a vote", words) == 0
    assert oracle_label("goal vote", words) == -1 and oracle_label("nothing", words) == -1
    pool = [{"label": i % 2} for i in range(10)]
    idx = draw_labelled(pool, 2, 3, seed=0)
    assert len(idx) == 6 and sorted(pool[i]["label"] for i in idx) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="per_class"):
        draw_labelled(pool, 2, 6, seed=0)


@pytest.mark.parametrize("bad, key", [
    ({"ratios": [1.0, 2.0]}, "ratios"),
    ({"methods": ["mixup"]}, "methods"),
    ({"per_class": 0}, "per_class"),
    ({"translator": {"src_len": 12}}, "max_seq_len"),
])
def test_bad_config_names_the_key(bad, key, tmp_path):
    """The project's section with one value broken fails naming the key."""
    path = params_file("augmentation", params_copy(tmp_path))
    section = read_yaml(path)["augmentation"]
    for name, value in bad.items():
        section[name] = {**section[name], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump({"augmentation": section}))
    with pytest.raises(ParamsError, match=key):
        load_section("augmentation", AugmentationConfig, path)


def test_augmented_contract_rejects_unknown_op():
    ok = pd.DataFrame({"text": ["a b"], "label": [0], "op": ["synonym"], "parent_id": ["train:1"]})
    validate(ok, AUGMENTED, "t")
    with pytest.raises(ContractError, match="op"):
        validate(ok.assign(op="mixup"), AUGMENTED, "t")


def _tiny_config() -> AugmentationConfig:
    small = MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=10)
    train = TrainerConfig(max_steps=4, batch_size=4, warmup_steps=1, eval_every=2, eval_batches=1,
                          progress=False)
    return AugmentationConfig(
        per_class=2, seeds=[0, 1], ratios=[0.0, 1.0, 2.0], classifier=ClassifierConfig(steps=30),
        translator=TranslatorConfig(model=small, train=train, src_len=4, n_pairs=50,
                                    heldout_pairs=4),
        paraphrase=ParaphraseConfig(model=replace(small, max_seq_len=8), train=train, seq_len=8,
                                    prefix_words=3, candidates=2),
    )


def test_run_tiny_end_to_end():
    recs = generate(ClassificationConfig(n=120), seed=0)
    data = prepare_task(recs[:80], recs[80:100], recs[100:], 0.5, seed=0)
    assert len(data.pool) == 40 and len(data.test) == 60 and data.n_classes == 5
    built = Outputs()
    items = run(_tiny_config(), Inputs(data, lambda w: ("match",) if w == "goal" else ()), built)
    rows = built.rows
    assert [r.item for r in items] == [f"data-augmentation-for-nlp/{i}" for i in (1, 2, 3)]
    for r in items:
        assert r.findings and all(np.isfinite(f.value) for f in r.findings)
    # items 1-2 rest on one trained translator / LM: their samples are held-out chunks, parents
    # and seeds, each finding's value the metric of the same name
    for r in items[:2]:
        for f in r.findings:
            assert f.n is not None and f.n > 1 and f.se is not None, f.metric
            assert f.value == pytest.approx(r.metrics[f.metric]), f.metric
    by_metric = {f.metric: f for r in items[:2] for f in r.findings}
    assert by_metric["translator_acc"].n <= _tiny_config().translator.heldout_pairs  # chunks held out
    assert by_metric["label_preserved_kept_by_seed"].n == len(_tiny_config().seeds)
    assert by_metric["roundtrip_identical"].threshold == _tiny_config().checks.max_roundtrip_identical
    df = validate(pd.DataFrame(rows), AUGMENTED, "rows")
    assert (df["op"] == "original").sum() == 10  # seed 0's labelled set: 2 per class
    assert set(df["op"]) >= {"original", "eda", "synonym", "backtranslation"}
    sweep = items[2].metrics
    # the baseline is the first method at ratio 0; the gain is the chosen (method, ratio)'s over it
    assert sweep["baseline_test"] == sweep[f"{_tiny_config().methods[0]}_r0_test"]
    chosen = f"{METHODS[int(sweep['chosen_method_index'])]}_r{sweep['chosen_ratio']:g}_test"
    assert sweep["chosen_gain"] == pytest.approx(sweep[chosen] - sweep["baseline_test"])
