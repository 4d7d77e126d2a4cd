"""Stage `evaluate`: score the base language model on whole splits and show what it writes.

Reads `models/base/model.pt` (`load_model`), `data/processed/tokens/` (val and test streams),
`data/processed/splits/` (UTF-8 bytes per split, for bits per byte), the tokenizer
`models/tokenizer/tokenizer.json` and params `evaluate`; writes `metrics/evaluate.json` (loss,
perplexity and bits per byte on val and test) and `reports/evaluate/samples.txt` (greedy and sampled
continuations of the prompts), also logged to MLflow. Serves no item: MLflow experiment `Pipeline`.
"""

import time
from dataclasses import dataclass, field

from nlpcurriculum.data.schemas import SPLITS, read_table
from nlpcurriculum.io import write_text
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish
from nlpcurriculum.tokenizers import load_tokenizer
from nlpcurriculum.tokenizers.corpus import encode_text, load_tokens

MODEL = "models/base/model.pt"
TOKENS = "data/processed/tokens"
SPLITS_DIR = "data/processed/splits"
TOKENIZER = "models/tokenizer/tokenizer.json"
OUTPUT = "reports/evaluate/samples.txt"


@dataclass
class EvaluateConfig:
    """The `evaluate` section: batch size of scoring, the prompts and how to continue them."""

    batch_size: int = 32
    prompts: list[str] = field(default_factory=lambda: ["The", "def"])
    max_new_tokens: int = 60
    temperature: float = 0.8
    top_k: int = 40
    seed: int = 0


def main() -> None:
    started = time.time()
    cfg = load_section("evaluate", EvaluateConfig)
    import torch

    from nlpcurriculum.decoding import generate
    from nlpcurriculum.decoding.samplers import SamplerConfig
    from nlpcurriculum.models import load_model
    from nlpcurriculum.training.pretrain import bits_per_byte, evaluate_lm

    model = load_model(MODEL)
    tok = load_tokenizer(TOKENIZER)
    arrays, meta = load_tokens(TOKENS, splits=["val", "test"])
    metrics = {}
    for split, tokens in arrays.items():
        texts = read_table(f"{SPLITS_DIR}/{split}.parquet", SPLITS)["text"]
        # The stream ends every document with the end-of-text token, whose loss counts: it stands
        # for one byte (the document separator of the byte-level models), so bits per byte
        # compare across tokenizers and with those models.
        n_bytes = sum(len(t.encode("utf-8")) + 1 for t in texts)
        score = evaluate_lm(model, tokens, model.config.max_seq_len, cfg.batch_size)
        metrics |= {f"{split}.loss": score.loss, f"{split}.perplexity": score.perplexity,
                    f"{split}.bits_per_byte": bits_per_byte(score.loss, len(tokens) / n_bytes),
                    f"{split}.tokens_scored": score.n_tokens}

    gen = torch.Generator().manual_seed(cfg.seed)
    blocks = []
    for prompt in cfg.prompts:
        ids = encode_text(tok, prompt)
        for label, temp in (("greedy", 0.0), (f"sampled (T={cfg.temperature}, top-k={cfg.top_k})", cfg.temperature)):
            sampler = SamplerConfig(temperature=temp, top_k=cfg.top_k)
            new = generate(model, ids, cfg.max_new_tokens, sampler=sampler, stop_id=meta["eos_id"],
                           generator=gen)
            blocks.append(f"--- {label} | prompt {prompt!r}\n{prompt}{tok.decode(new)}\n")
    write_text(OUTPUT, "\n".join(blocks))
    publish("evaluate", {"evaluate": cfg}, metrics=metrics, started=started, artifacts=[OUTPUT])
    print(f"evaluate: val ppl {metrics['val.perplexity']:.1f} ({metrics['val.bits_per_byte']:.3f} bits/byte), "
          f"test ppl {metrics['test.perplexity']:.1f} -> {OUTPUT}\n{blocks[0]}")


if __name__ == "__main__":
    main_guard(main)
