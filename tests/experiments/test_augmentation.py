"""Data augmentation: pseudo-language, translator data, neighbours, metrics, classifier, a tiny run."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nlpcurriculum.data.model_augment import (
    EN2PS,
    EOS,
    PAD,
    PS2EN,
    UNK,
    PairBatcher,
    PseudoLanguage,
    char_similarity,
    chunk_words,
    embedding_neighbours,
    encode_pair,
    lm_continue,
    lm_rewrite,
    translate,
    WordCodec,
)
from nlpcurriculum.data.schemas import AUGMENTED, ContractError, validate
from nlpcurriculum.data.synthetic.classification import ClassificationConfig, generate
from nlpcurriculum.embeddings.vectors import WordVectors
from nlpcurriculum.experiments.augmentation import (
    AugmentationConfig,
    BowClassifier,
    ClassifierConfig,
    ParaphraseConfig,
    TranslatorConfig,
    bleu,
    draw_labelled,
    oracle_label,
    prepare_task,
    run_augmentation,
)
from nlpcurriculum.models.miniformer import MiniFormerConfig
from nlpcurriculum.params import ParamsError, load_section, params_file, read_yaml
from nlpcurriculum.training.trainer import TrainerConfig
from tests.conftest import params_copy


def test_pseudo_language_is_invertible_and_reorders():
    lang = PseudoLanguage(seed=3)
    text = "The quick brown fox jumps over the lazy dog."
    ps = lang.to_pseudo(text)
    assert lang.from_pseudo(ps) == "the quick brown fox jumps over the lazy dog"
    en_words, ps_words = "the quick brown fox".split(), ps.split()[:4]
    # pairs swapped: pseudo word 0 is the cipher of English word 1, and so on
    assert [len(w) for w in ps_words] == [len(en_words[i]) for i in (1, 0, 3, 2)]
    assert ps != "the quick brown fox jumps over the lazy dog"
    fwd, inv = lang._tables()
    assert sorted(fwd.values()) == sorted(fwd) and all(inv[fwd[c]] == c for c in fwd)


def test_word_codec_and_chunks():
    codec = WordCodec.build(["b a b", "c b a", "zz"], min_count=2)
    assert codec.words[5:] == ["b", "a"]  # by count, then alphabetical; zz and c are rare
    assert codec.encode("a c b") == [6, UNK, 5]
    assert codec.decode([6, UNK, 5, EOS]) == "a b"  # specials dropped
    assert chunk_words("a b c d e", 2) == ["a b", "c d", "e"]
    with pytest.raises(ValueError, match="max_words"):
        chunk_words("a", 0)


def test_pair_batcher_scores_only_the_target():
    ids, start = encode_pair([7, 8], [9, 10, 11], EN2PS, src_len=4)
    assert ids == [PAD, PAD, 7, 8, EN2PS, 9, 10, 11, EOS]
    assert start == 5
    b = PairBatcher([([7, 8], [9, 10, 11])], src_len=4)
    assert b.x.shape == (2, 9)  # both directions, length 2 * 4 + 2 - 1
    assert [v for v in b.y[0].tolist() if v != -100] == [9, 10, 11, EOS]
    assert [v for v in b.y[1].tolist() if v != -100] == [7, 8, EOS]
    assert b.x[0, 4] == EN2PS and b.x[1, 4] == PS2EN
    with pytest.raises(ValueError, match="src_len"):
        PairBatcher([([1] * 6, [2])], src_len=4)


class _Stub(torch.nn.Module):
    """Emits ``answer`` then EOS whatever the input (position = length - prompt length)."""

    def __init__(self, answer, prompt_len: int):
        super().__init__()
        self.answer, self.prompt_len = list(answer) + [EOS], prompt_len
        self.config = MiniFormerConfig(max_seq_len=512)

    def forward(self, ids):
        k = ids.shape[1] - self.prompt_len
        logits = torch.zeros(ids.shape[0], ids.shape[1], 32)
        logits[:, -1, self.answer[min(k, len(self.answer) - 1)]] = 10.0
        return type("Out", (), {"logits": logits})()


def test_translate_and_lm_continue_decode_in_lockstep():
    out = translate(_Stub([9, 10], prompt_len=5), [[5], [6, 7]], EN2PS, src_len=4)
    assert out == [[9, 10], [9, 10]]
    with pytest.raises(ValueError, match="direction"):
        translate(_Stub([9], 5), [[5]], 7, src_len=4)
    # banned EOS: the stub's end id is never chosen, so rows run to max_new
    outs = lm_continue(_Stub([9, 10], prompt_len=2), [[5, 6], [7, 8]], 3, banned=[EOS])
    assert [o[:2] for o in outs] == [[9, 10], [9, 10]] and all(len(o) == 3 and EOS not in o for o in outs)
    with pytest.raises(ValueError, match="one length"):
        lm_continue(_Stub([9], 2), [[1], [1, 2]], 3)


def test_lm_rewrite_keeps_prefix_and_replaces_at_rate():
    stub = _Stub([9, 10, 11, 12, 13], prompt_len=1)  # at position t the stub proposes answer[t]
    docs = [[5, 6, 7, 8], [5, 6]]
    assert lm_rewrite(stub, docs, start=2, rate=0.0) == docs
    assert lm_rewrite(stub, docs, start=2, rate=1.0) == [[5, 6, 11, 12], [5, 6]]
    gen = torch.Generator().manual_seed(0)
    out = lm_rewrite(stub, [[5] * 400], start=0, rate=0.3, generator=gen)[0]
    assert 0.2 < np.mean([t != 5 for t in out]) < 0.4
    with pytest.raises(ValueError, match="rate"):
        lm_rewrite(stub, docs, start=0, rate=1.5)


def test_embedding_neighbours_threshold_and_band():
    words = ["the", "cat", "kitten", "dog", "zebra"]  # rank order = frequency order
    vecs = np.array([[1, 0, 0], [0, 1, 0], [0, 0.99, 0.1], [0, 0.8, 0.6], [0.05, 1, 0]])
    table = WordVectors(words, vecs)
    strict = embedding_neighbours([table], k=4, min_cos=0.95, band=0)
    assert strict("cat") == ("zebra", "kitten")  # dog (cos 0.8) is below the threshold
    banded = embedding_neighbours([table], k=4, min_cos=0.95, band=0.6)
    assert banded("cat") == ("kitten",)  # log2(4+1) - log2(1+1) = 1.32 > 0.6: zebra drops out
    assert strict("unknown") == ()
    with pytest.raises(ValueError, match="min_cos"):
        embedding_neighbours([table], min_cos=2.0)


def test_bleu_and_edit_similarity_by_hand():
    ref = "the cat sat on the mat".split()
    assert bleu(ref, ref) == pytest.approx(1.0)
    assert bleu([], ref) == 0.0
    # one substitution: p1 = 5/6, smoothed p2 = (3+1)/(5+1), p3 = (2+1)/(4+1), p4 = (1+1)/(3+1)
    cand = "the cat sat on a mat".split()
    expected = np.exp(np.mean(np.log([5 / 6, 4 / 6, 3 / 5, 2 / 4])))
    assert bleu(cand, ref) == pytest.approx(expected)
    assert char_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert char_similarity(ref, cand) == pytest.approx(1 - 1 / 6)
    assert char_similarity("", "") == 1.0


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


def test_run_augmentation_tiny_end_to_end():
    recs = generate(ClassificationConfig(n=120), seed=0)
    data = prepare_task(recs[:80], recs[80:100], recs[100:], 0.5, seed=0)
    assert len(data.pool) == 40 and len(data.test) == 60 and data.n_classes == 5
    items, rows = run_augmentation(_tiny_config(), data, lambda w: ("match",) if w == "goal" else ())
    assert [r.item for r in items] == [f"data-augmentation-for-nlp/{i}" for i in (1, 2, 3)]
    for r in items:
        assert r.findings and all(np.isfinite(f.value) for f in r.findings)
    df = validate(pd.DataFrame(rows), AUGMENTED, "rows")
    assert (df["op"] == "original").sum() == 10  # seed 0's labelled set: 2 per class
    assert set(df["op"]) >= {"original", "eda", "synonym", "backtranslation"}
    sweep = items[2].metrics
    assert 0.0 <= sweep["baseline_test"] <= 1.0 and "eda_r2_test" in sweep
