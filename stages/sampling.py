"""Stage `sampling`: "Sampling Parameters: temp/top-k/top-p" (items 1-3) on the trained base model.

Reads `models/base/model.pt` (`load_model`), the tokenizer `models/tokenizer/tokenizer.json`, the
val token stream `data/processed/tokens/` (prompts: `n_prompts` windows of `prompt_tokens` ids)
and params `sampling` (`SamplingConfig`). Item 1 runs the sampler dashboard's table function
headlessly (the interactive app: `python -m nlpcurriculum.apps.sampler_dashboard`); item 2 sweeps
temperature / top-k / top-p against distinct-n and self-BLEU; item 3 measures argmax repetition.
Writes `reports/sampling/` (the dashboard snapshot `dashboard.html`, the sweep table and the
samples), the figures under `plots/sampling/` and `metrics/sampling.json`.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers import eos_id, load_tokenizer
from nlpcurriculum.tokenizers.corpus import load_tokens

STAGE = "sampling"
MODEL = "models/base/model.pt"
TOKENS = "data/processed/tokens"
TOKENIZER = "models/tokenizer/tokenizer.json"
OUTPUT = "reports/sampling"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.sampling_parameters_temp_top_k_top_p import Inputs, SamplingConfig, run
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, SamplingConfig)
    model = load_model(MODEL).eval()
    tok = load_tokenizer(TOKENIZER)
    arrays, _ = load_tokens(TOKENS, splits=["val"])
    try:
        stop = eos_id(tok)
    except ValueError:
        stop = None
    results = run(cfg, Inputs(model, tok, arrays["val"].tolist(), stop))

    save_item_texts(OUTPUT, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started,
            artifacts=[f"{OUTPUT}/dashboard.html"])
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
