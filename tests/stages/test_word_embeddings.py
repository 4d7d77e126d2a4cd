"""The `word_embeddings` stage's params section and its end-to-end library call (fast, no DVC)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from nlpcurriculum.embeddings.word2vec import Word2VecConfig
from nlpcurriculum.experiments.tokenization_and_embeddings.word_embeddings import (
    ITEM,
    ControlsConfig,
    Inputs,
    Outputs,
    WordEmbeddingsConfig,
    corpus_min_count,
    run,
)
from nlpcurriculum.params import ParamsError, load_section, params_file
from tests.conftest import REPO, params_copy


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_params_section_loads_in_every_profile(profile, tmp_path):
    path = params_file("word_embeddings", params_copy(tmp_path, profile))
    cfg = load_section("word_embeddings", WordEmbeddingsConfig, path)
    assert (cfg.cbow.arch, cfg.skipgram.arch) == ("cbow", "skipgram")
    assert len(cfg.controls.seeds) >= 3 and cfg.seed not in cfg.controls.seeds  # fresh seeds
    if profile == "smoke":
        assert cfg.stories < WordEmbeddingsConfig().stories
        assert cfg.controls.stories < WordEmbeddingsConfig().controls.stories


def test_section_rejects_a_model_of_the_wrong_architecture(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("word_embeddings:\n  cbow:\n    arch: skipgram\n")
    with pytest.raises(ParamsError, match="cbow.arch must be 'cbow', got 'skipgram'"):
        load_section("word_embeddings", WordEmbeddingsConfig, path)


def test_run_covers_the_three_items_and_the_corpus():
    tiny = dict(dim=16, epochs=1, min_count=2, batch_size=512)
    cfg = WordEmbeddingsConfig(
        stories=300,
        cbow=Word2VecConfig(arch="cbow", **tiny),
        skipgram=Word2VecConfig(arch="skipgram", **tiny),
        corpus_epochs=1, corpus_documents=2, corpus_min_count=1, corpus_words=["socket", "nope"],
        neighbours=3, controls=ControlsConfig(stories=40),
    )
    corpus = [["the", "socket", "reads", "bytes", "from", "the", "pipe"] * 5,
              ["a", "pipe", "writes", "bytes", "to", "the", "socket"] * 5,
              ["unused", "document"] * 5]
    built = Outputs()
    results = run(cfg, Inputs(corpus), built)
    vectors = built.vectors
    assert [r.item for r in results] == [ITEM["cbow"], ITEM["skipgram"], ITEM["one_hot_vs_learned"]]
    assert set(vectors) == {"cbow", "skipgram", "corpus_skipgram"}
    assert "unused" not in vectors["corpus_skipgram"]  # corpus_documents=2 keeps the first two
    text = results[1].texts["corpus_neighbours.txt"]
    assert "socket: " in text and "nope: (not in the vocabulary)" in text
    assert results[1].metrics["corpus/documents"] == 2.0
    assert all(r.findings for r in results)
    controls = [f for f in results[0].findings if f.metric.startswith("controls/")]
    assert len(controls) == 3 and all(f.n == 3 for f in controls)
    assert "ours/cbow" in results[0].texts["controls.tsv"] and "controls/ppmi/analogy_acc_se" in results[2].metrics
    # corpus_epochs = 0 skips the corpus even when one is given
    built = Outputs()
    results = run(replace(cfg, corpus_epochs=0), Inputs(corpus), built)
    vectors = built.vectors
    assert "corpus_skipgram" not in vectors and "corpus_neighbours.txt" not in results[1].texts


def test_a_corpus_too_small_for_corpus_min_count_trains_on_its_commonest_words():
    """A user's few documents: no word reaches corpus_min_count=5; the vectors still get made."""
    corpus = [["a", "small", "corpus", "of", "a", "few", "words"], ["a", "few", "more", "words"]]
    built = Outputs()
    assert corpus_min_count(corpus, 3, built) == 1  # only "a" occurs three times: no pair
    assert built.warnings == [
        "word_embeddings: fewer than two words of the train split occur "
        "word_embeddings.corpus_min_count=3 times (7 distinct words, 11 in all); the corpus "
        "vectors use every word (min_count 1): lower the key or add documents"]
    assert corpus_min_count(corpus, 2, Outputs()) == 2  # a, few, words: unchanged, no warning
    tiny = dict(dim=8, epochs=1, min_count=2, batch_size=256)
    cfg = WordEmbeddingsConfig(stories=300, cbow=Word2VecConfig(arch="cbow", **tiny),
                               skipgram=Word2VecConfig(arch="skipgram", **tiny), corpus_epochs=1,
                               corpus_min_count=5, corpus_words=["words"], controls=ControlsConfig(stories=20))
    built = Outputs()
    results = run(cfg, Inputs(corpus), built)
    assert len(built.vectors["corpus_skipgram"]) == 7 and len(built.warnings) == 1
    assert "7 words seen >= 1 times" in results[1].texts["corpus_neighbours.txt"]


def test_importing_the_stage_is_cheap():
    code = ("import runpy, sys; runpy.run_path('stages/word_embeddings.py', run_name='not_main');"
            "print(','.join(m for m in ('torch', 'mlflow', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
