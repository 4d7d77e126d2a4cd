"""Stage `beam_search`: the three items of "Beam Search & Constrained Decoding" on the base model.

Reads `models/base/model.pt` (`load_model`), the tokenizer `models/tokenizer/tokenizer.json`
(prompts, token texts for the constraint index, the end-of-text id), the val token stream
`data/processed/tokens/` (item 1's prompts) and params `beam_search` (`BeamSearchConfig`); writes
`reports/beam_search/` (the beam trace page `beam_trace.html`, the constrained samples report
`constrained.txt`, the transformers parity log), the figures under `plots/beam_search/` and
`metrics/beam_search.json`. Item 2's ms/token numbers differ from run to run and machine to
machine: rerun on a quiet machine before quoting them.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers import eos_id, load_tokenizer
from nlpcurriculum.tokenizers.corpus import load_tokens

STAGE = "beam_search"
MODEL = "models/base/model.pt"
TOKENS = "data/processed/tokens"
TOKENIZER = "models/tokenizer/tokenizer.json"
REPORTS = "reports/beam_search"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.beam_search_and_constrained_decoding import BeamSearchConfig, Inputs, run
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, BeamSearchConfig)
    model = load_model(MODEL).eval()
    tok = load_tokenizer(TOKENIZER)
    arrays, _ = load_tokens(TOKENS, splits=["val"])
    hf_model = None
    if cfg.hf_compare and model.config.position == "rope" and model.config.mlp == "swiglu":
        from nlpcurriculum.models.hf_interop import to_hf_llama

        hf_model = to_hf_llama(model)
    results = run(cfg, Inputs(model, arrays["val"], tok.encode, tok.decode, eos_id(tok), hf_model))
    save_item_texts(REPORTS, results, separate=True)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)
    print(results[1].texts["constrained.txt"].split("\n\n")[0])


if __name__ == "__main__":
    main_guard(main)
