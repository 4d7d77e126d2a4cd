"""The pretraining spine: params, resume, whole-split scoring, generation and clear errors."""

import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from nlpcurriculum.models import MiniFormerConfig, build_model
from nlpcurriculum.params import load_section, params_file, read_yaml
from nlpcurriculum.stage import main_guard
from nlpcurriculum.training import CheckpointError, TrainerConfig
from nlpcurriculum.models.miniformer import ModelOutput
from nlpcurriculum.training.pretrain import (
    ControlConfig,
    PretrainChecks,
    PretrainConfig,
    bits_per_byte,
    count_control,
    eval_windows,
    evaluate_lm,
    pretrain,
    resume_step,
    window_losses,
)
from tests.conftest import params_copy

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(**train) -> PretrainConfig:
    model = MiniFormerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8)
    knobs = dict(max_steps=6, warmup_steps=1, batch_size=4, eval_every=3, eval_batches=1,
                 checkpoint_every=3, progress=False, lr=1e-2)
    return PretrainConfig(model=model, train=TrainerConfig(**{**knobs, **train}))


def stream(n: int = 400, vocab: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.int32)


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_params_section_loads_and_builds(profile, tmp_path):
    path = params_file("pretrain", params_copy(tmp_path, profile))
    cfg = load_section("pretrain", PretrainConfig, path)
    assert "vocab_size" not in read_yaml(path)["pretrain"]["model"]
    model = build_model(cfg.with_vocab(97))
    assert model.config.vocab_size == 97
    assert cfg.train.max_steps >= cfg.train.warmup_steps


def test_interrupted_run_resumes_to_the_same_losses(tmp_path):
    cfg, train, val = tiny_cfg(), stream(), stream(seed=1)
    full = pretrain(cfg, train, val, 32, tmp_path / "full.pt")

    class Interrupt(Exception):
        pass

    def stop(step, metrics):
        if step == 4:  # after the checkpoint at step 3
            raise Interrupt

    with pytest.raises(Interrupt):
        pretrain(cfg, train, val, 32, tmp_path / "cut.pt", on_step=stop)
    resumed = pretrain(cfg, train, val, 32, tmp_path / "cut.pt")
    assert resumed.resumed_from == 3
    losses = lambda out: [h["loss"] for h in out.result.history]  # noqa: E731
    assert losses(resumed) == pytest.approx(losses(full), abs=0, rel=0)  # bit-identical
    for name, weight in full.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name


def test_repeated_run_writes_a_byte_identical_checkpoint(tmp_path):
    """dvc.lock hashes models/base: an unchanged rerun (or a Prefect run) must not change it."""
    for run in ("a", "b"):
        pretrain(tiny_cfg(), stream(), stream(seed=1), 32, tmp_path / run / "model.pt")
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()


def test_checkpoint_of_other_settings_or_data_is_not_resumed(tmp_path):
    cfg, train = tiny_cfg(), stream()

    def stop(step, metrics):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, train, None, 32, tmp_path / "m.pt", on_step=stop)
    model_cfg = cfg.with_vocab(32)
    from nlpcurriculum.training.pretrain import fingerprint

    assert resume_step(tmp_path / "m.pt", model_cfg, cfg.train, fingerprint(train)) == 3
    assert resume_step(tmp_path / "m.pt", model_cfg, cfg.train, fingerprint(stream(seed=5))) == 0
    assert resume_step(tmp_path / "m.pt", model_cfg, tiny_cfg(lr=5e-3).train, fingerprint(train)) == 0
    assert resume_step(tmp_path / "absent.pt", model_cfg, cfg.train, fingerprint(train)) == 0


def test_unreadable_checkpoint_is_an_error_and_is_kept(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match=r"model\.pt: cannot read checkpoint.*delete it"):
        pretrain(tiny_cfg(), stream(), None, 32, path)
    assert path.read_bytes() == b"PK\x03\x04 truncated"


def test_evaluate_stage_names_a_truncated_checkpoint(tmp_path, monkeypatch, capsys):
    (tmp_path / "params").mkdir()
    (tmp_path / "params/pipeline.yaml").write_text(yaml.safe_dump({"evaluate": {"batch_size": 4}}))
    model = tmp_path / "models/base/model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.chdir(tmp_path)
    stage = runpy.run_path(str(REPO / "stages/evaluate.py"), run_name="not_main")
    with pytest.raises(SystemExit) as exit_:
        main_guard(stage["main"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "models/base/model.pt: cannot read checkpoint, truncated or corrupt" in err
    model.unlink()
    with pytest.raises(SystemExit):
        main_guard(stage["main"])
    assert "models/base/model.pt: no checkpoint file there" in capsys.readouterr().err


def test_evaluate_lm_is_the_mean_loss_over_all_windows():
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=8))
    tokens = stream(n=45)  # (45 - 1) // 8 = 5 windows; the last 4 tokens are left out
    score = evaluate_lm(model, tokens, seq_len=8, batch_size=2)
    t = torch.from_numpy(tokens.astype(np.int64))
    x = t[:40].view(5, 8)  # (windows, T)
    y = t[1:41].view(5, 8)
    with torch.no_grad():
        logits = model(x).logits  # (5, T, V)
    expected = F.cross_entropy(logits.reshape(40, -1), y.reshape(40)).item()
    assert score.n_tokens == 40
    assert score.loss == pytest.approx(expected, rel=1e-6)
    assert score.perplexity == pytest.approx(math.exp(expected), rel=1e-6)


def test_bits_per_byte_worked_example():
    assert bits_per_byte(3.0, 0.25) == pytest.approx(3.0 / math.log(2) / 4, rel=1e-12)
    with pytest.raises(ValueError):
        bits_per_byte(3.0, 0.0)


def test_control_windows_are_the_ones_evaluate_lm_scores():
    """Invariant: the control scores exactly evaluate_lm's tokens with the same loss."""
    torch.manual_seed(0)
    model = build_model(MiniFormerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=8))
    tokens = stream(n=77)
    x, y = eval_windows(tokens, 8)  # (9, 8) each
    assert x.shape == y.shape == (9, 8)
    assert np.array_equal(x[1], tokens[8:16]) and np.array_equal(y[1], tokens[9:17])
    per_window = window_losses(model, x, y, batch_size=4)
    assert per_window.mean() == pytest.approx(evaluate_lm(model, tokens, 8, batch_size=4).loss, rel=1e-6)


class _SecondOrderOracle(torch.nn.Module):
    """Knows the data rule y[t] = (x[t-1] + x[t]) % V: context a bigram cannot see."""

    def __init__(self, vocab: int, confidence: float = 4.0) -> None:
        super().__init__()
        self.vocab, self.confidence = vocab, confidence

    def forward(self, idx):
        prev = torch.cat([idx[:, :1], idx[:, :-1]], dim=1)  # (B, T); the first has no prev
        guess = (prev + idx) % self.vocab
        logits = torch.zeros(*idx.shape, self.vocab)
        logits.scatter_(-1, guess[..., None], self.confidence)
        return ModelOutput(logits, None)


def _second_order_stream(n: int, vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = list(rng.integers(0, vocab, 2))
    for _ in range(n - 2):  # a 5% chance of a random token keeps every pair possible
        out.append(int(rng.integers(0, vocab)) if rng.random() < 0.05 else (out[-2] + out[-1]) % vocab)
    return np.array(out)


def test_control_passes_for_a_model_with_context_and_fails_for_an_untrained_one():
    vocab = 16
    train, val = _second_order_stream(20000, vocab, 0), _second_order_stream(4000, vocab, 1)
    control, checks = ControlConfig(blocks=8), PretrainChecks(0.25, 1.0)
    oracle = count_control(_SecondOrderOracle(vocab), train, val, vocab, 16, control, checks)
    assert [f.metric for f in oracle.findings] == ["model_minus_bigram_loss", "model_minus_unigram_loss"]
    assert all(f.passed and f.n == 8 for f in oracle.findings)
    assert oracle.losses["model"] < oracle.losses["bigram"] - 0.25
    assert oracle.k["bigram"] in control.k_grid
    torch.manual_seed(0)
    untrained = build_model(MiniFormerConfig(vocab_size=vocab, d_model=16, n_layers=1, n_heads=2,
                                             max_seq_len=16))
    null = count_control(untrained, train, val, vocab, 16, control, checks)
    assert not any(f.passed for f in null.findings)
    assert null.losses["model"] == pytest.approx(math.log(vocab), abs=0.1)  # ~uniform
    assert null.n_tokens == (len(val) - 1) // 16 * 16
