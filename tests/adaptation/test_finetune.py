"""Custom datasets for fine-tuning: loading with clear errors, the split, and the fine-tuning loop."""

import json

import numpy as np
import pytest
import torch

from nlpcurriculum.adaptation.finetune import (
    CustomDataError,
    fine_tune,
    load_text_dataset,
    save_tuned,
    split_texts,
)
from nlpcurriculum.data.errors import ContractError
from nlpcurriculum.models.miniformer import MiniFormerConfig, build_model, load_model
from nlpcurriculum.training.pretrain import evaluate_lm
from nlpcurriculum.training.trainer import TrainerConfig, seed_everything


def _jsonl(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_jsonl_and_csv_give_the_texts_in_file_order_without_blank_ones(tmp_path):
    path = _jsonl(tmp_path, [json.dumps({"text": "first doc", "id": 1}), "",
                             json.dumps({"text": "  "}), json.dumps({"text": "second,\n doc"})])
    assert load_text_dataset(path) == ["first doc", "second,\n doc"]
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('id,body\n1,"one, with a comma"\n2,"two\nlines"\n', encoding="utf-8")
    assert load_text_dataset(csv_path, "body") == ["one, with a comma", "two\nlines"]


def test_the_worked_example_a_missing_field_names_the_line_and_the_fields_found(tmp_path):
    path = _jsonl(tmp_path, [json.dumps({"text": "a"}), json.dumps({"body": "b"})])
    with pytest.raises(CustomDataError, match=r"line 2 has no 'text' field \(its fields: body\)"):
        load_text_dataset(path, "text")


@pytest.mark.parametrize("content, name, message", [
    (None, "missing.jsonl", "does not exist"),
    ("text\nhello\n", "data.txt", "unknown format '.txt'"),
    ('{"text": "ok"}\n{"text": \n', "data.jsonl", "line 2 is not JSON"),
    ('["a list"]\n', "data.jsonl", "line 1 is a JSON list, not an object"),
    ('{"text": 3}\n', "data.jsonl", "line 1: 'text' is a int, not a string"),
    ('{"text": " "}\n\n', "data.jsonl", "no text: 1 record"),
    ("", "data.jsonl", "no text: 0 record"),
    ("", "data.csv", "empty CSV file"),
    ("body\nhello\n", "data.csv", r"row 2 has no 'text' field \(its fields: body\)"),
])
def test_every_bad_dataset_fails_with_one_line_naming_the_problem(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CustomDataError, match=message) as err:
        load_text_dataset(path)
    assert isinstance(err.value, ContractError)  # the stage's main_guard prints it in one line
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_folder_and_non_utf8_bytes_are_named(tmp_path):
    with pytest.raises(CustomDataError, match="is a folder"):
        load_text_dataset(tmp_path)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(CustomDataError, match="not UTF-8"):
        load_text_dataset(path)


def test_the_split_is_seeded_disjoint_and_keeps_file_order():
    texts = [f"doc {i}" for i in range(10)]
    train, val = split_texts(texts, 0.3, seed=1)
    assert (train, val) == split_texts(texts, 0.3, seed=1)
    assert len(val) == 3 and sorted(train + val) == sorted(texts) and not set(train) & set(val)
    assert train == [t for t in texts if t in train] and val == [t for t in texts if t in val]
    assert split_texts(texts, 0.3, seed=2) != (train, val)
    assert [len(s) for s in split_texts(texts[:2], 0.9, 0)] == [1, 1]  # one document each at least
    with pytest.raises(CustomDataError, match="1 document"):
        split_texts(texts[:1], 0.5, 0)


def _tiny(vocab=32, T=16):
    seed_everything(0)
    return build_model(MiniFormerConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2,
                                        max_seq_len=T)).eval()


def test_fine_tune_trains_a_copy_and_lowers_the_loss_on_the_new_data():
    base = _tiny()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    stream = np.tile(np.arange(8, dtype=np.int32), 200)  # a pattern the model can learn
    cfg = TrainerConfig(lr=3e-3, max_steps=40, batch_size=8, warmup_steps=2, eval_every=0,
                        progress=False)
    tuned, result = fine_tune(base, stream, cfg)
    assert result.steps == 40 and not tuned.training
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # base untouched
    assert evaluate_lm(tuned, stream, 16).loss < evaluate_lm(base, stream, 16).loss - 1.0
    with pytest.raises(CustomDataError, match="fewer than one window"):
        fine_tune(base, stream[:10], cfg)


def test_save_tuned_writes_a_checkpoint_load_model_rebuilds_the_same_bytes_every_time(tmp_path):
    model = _tiny()
    cfg = TrainerConfig(max_steps=7, warmup_steps=1, seed=4, progress=False)
    history = [{"step": 1, "loss": 2.5}]
    a = save_tuned(tmp_path / "a" / "model.pt", model, cfg, history, extra={"data": "x.jsonl"})
    torch.manual_seed(123)  # a different global RNG state before the second save
    b = save_tuned(tmp_path / "b" / "model.pt", model, cfg, history, extra={"data": "x.jsonl"})
    assert a.read_bytes() == b.read_bytes()
    loaded = load_model(a)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert loaded.config == model.config
