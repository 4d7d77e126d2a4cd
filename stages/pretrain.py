"""Stage `pretrain`: train the base causal language model on the tokenized corpus.

Reads `data/processed/tokens/` (`load_tokens`: train and val streams, `vocab_size` from its
meta.json) and params `pretrain` (`PretrainConfig`: `model` = MiniFormerConfig fields without
`vocab_size`, `train` = TrainerConfig, `batch_mode`, `resume`); writes `models/base/model.pt`
(the trainer's atomic checkpoint; `load_model` rebuilds the model) + its `model.pt.json` sidecar,
the loss / val_loss / lr / tokens-per-second curves (`plots/pretrain/`, MLflow step metrics) and
`metrics/pretrain.json`; logs the model to MLflow and registers it as `nlpcurriculum-base`.
Control (`pretrain.control`, bounds in `pretrain.checks`): the trained model, an add-k count bigram
and a unigram (fitted on the train stream) score the same validation tokens; the stage's
findings are that the model beats the bigram, then the unigram (`count_control`).
Resume: an interrupted run (checkpoints every `train.checkpoint_every` updates) of the same
settings and data continues from `models/base/model.pt`. Serves no item: MLflow experiment `Pipeline`.
"""

import math
import time

from nlpcurriculum.params import ParamsError, load_section, params_file, read_yaml
from nlpcurriculum.stage import main_guard, publish
from nlpcurriculum.tokenizers.corpus import load_tokens

TOKENS = "data/processed/tokens"
MODEL = "models/base/model.pt"
REGISTERED = "nlpcurriculum-base"


def main() -> None:
    started = time.time()
    path = params_file("pretrain")
    if "vocab_size" in (read_yaml(path).get("pretrain", {}).get("model") or {}):
        raise ParamsError(f"{path}: pretrain.model.vocab_size: remove it, it comes from {TOKENS}/meta.json")
    import torch

    from nlpcurriculum.training.pretrain import PretrainConfig, count_control, pretrain

    cfg = load_section("pretrain", PretrainConfig)
    arrays, meta = load_tokens(TOKENS, splits=["train", "val"])
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))

    def progress(step: int, m: dict) -> None:
        if "val_loss" in m:
            print(f"pretrain: step {step}/{cfg.train.max_steps} loss {m['loss']:.3f} "
                  f"val_loss {m['val_loss']:.3f} {m['tokens_per_s']:.0f} tokens/s", flush=True)

    out = pretrain(cfg, arrays["train"], arrays["val"], meta["vocab_size"], MODEL, on_step=progress)
    history = out.result.history
    series = {n: [(h["step"], h[n]) for h in history if n in h] for n in ("loss", "val_loss", "lr", "grad_norm")}
    speed = {"tokens_per_s": [(h["step"], h["tokens_per_s"]) for h in history if "tokens_per_s" in h]}
    val_loss = out.result.final_val_loss
    metrics = {
        "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
        "train_loss": history[-1]["loss"], "steps": out.result.steps,
        "tokens_seen": out.result.tokens_seen, "params": out.model.num_params(),
        "params.non_embedding": out.model.num_params(non_embedding=True),
    }
    control = count_control(out.model, arrays["train"], arrays["val"], meta["vocab_size"],
                            cfg.model.max_seq_len, cfg.control, cfg.checks)
    for name, loss in control.losses.items():
        metrics[f"control.{name}.val_loss"] = loss
        metrics[f"control.{name}.val_bits_per_token"] = loss / math.log(2)
    for name, k in control.k.items():
        metrics[f"control.{name}.k"] = k
    metrics["control.val_tokens"] = control.n_tokens
    publish("pretrain", {"pretrain": {**vars(cfg), "model": cfg.with_vocab(meta["vocab_size"])}},
            metrics=metrics, findings=control.findings, series=series, timing_series=speed,
            started=started, model=out.model, registered_model=REGISTERED)
    resumed = f", resumed from step {out.resumed_from}" if out.resumed_from else ""
    print(f"pretrain: {metrics['params']:,} params, {out.result.steps} steps{resumed}, "
          f"val loss {val_loss:.3f} (ppl {metrics['val_perplexity']:.1f}) -> {MODEL}")
    losses = control.losses
    print(f"pretrain: on all {control.n_tokens:,} val tokens: model {losses['model']:.3f}, count bigram "
          f"{losses['bigram']:.3f}, unigram {losses['unigram']:.3f} nats/token; "
          + "; ".join(f"{f.metric} {f.value:+.3f} (SE {f.se:.3f}, bound {f.threshold:+g}): "
                      f"{'pass' if f.passed else 'FAIL'}" for f in control.findings))


if __name__ == "__main__":
    main_guard(main)
