"""Stage `kv_cache`: the three items of "KV Cache (Fast Inference)" on the trained base model.

Reads `models/base/model.pt` (`load_model`), the val token stream `data/processed/tokens/` (the
prompt: its first `prompt_tokens` ids), the tokenizer `models/tokenizer/tokenizer.json` (token
labels) and params `kv_cache` (`KVCacheConfig`); writes `reports/kv_cache/cache_viz.html` (the
hit/miss visualizer page), the figures under `plots/kv_cache/` and `metrics/kv_cache.json`.
Clock and allocator readings (speed-ups, tokens/s, heap bytes) differ from run to run and machine
to machine: they go to `metrics/timings/kv_cache.json` with the host, apart from the deterministic
`metrics/kv_cache.json`; rerun on a quiet machine before quoting them.
"""

import time

from nlpcurriculum.io import write_text
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish
from nlpcurriculum.tokenizers import load_tokenizer
from nlpcurriculum.tokenizers.corpus import load_tokens

MODEL = "models/base/model.pt"
TOKENS = "data/processed/tokens"
TOKENIZER = "models/tokenizer/tokenizer.json"
VIZ = "reports/kv_cache/cache_viz.html"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.kv_cache import Inputs, KVCacheConfig, run
    from nlpcurriculum.models import load_model

    cfg = load_section("kv_cache", KVCacheConfig)
    model = load_model(MODEL).eval()
    tok = load_tokenizer(TOKENIZER)
    arrays, _ = load_tokens(TOKENS, splits=["val"])
    prompt = arrays["val"][: cfg.prompt_tokens].tolist()
    hf_model = None
    if cfg.hf_compare and model.config.position == "rope" and model.config.mlp == "swiglu":
        from nlpcurriculum.models.hf_interop import to_hf_llama

        hf_model = to_hf_llama(model)
    results = run(cfg, Inputs(model, prompt, lambda t: tok.decode([t]), hf_model))
    write_text(VIZ, results[1].texts["cache_viz.html"])
    publish("kv_cache", {"kv_cache": cfg}, results=results, started=started, artifacts=[VIZ])
    print_findings("kv_cache", results)
    print(results[0].texts["speed.txt"])


if __name__ == "__main__":
    main_guard(main)
