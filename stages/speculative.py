"""Stage `speculative`: the three items of "Speculative Decoding" on the trained base model.

Reads `models/base/model.pt` (the target, `load_model`), the train and val token streams
`data/processed/tokens/` (drafts are trained on train, the n-gram table is distilled from the
target on train; prompts and val losses come from val) and
params `speculative` (`SpeculativeConfig`); writes the item tables to
`reports/speculative/tables.txt`, the figures under `plots/speculative/` and
`metrics/speculative.json` (clock readings: `metrics/timings/speculative.json`). Wall-clock speedups differ from run to run and machine to machine:
rerun on a quiet machine before quoting them.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts
from nlpcurriculum.tokenizers.corpus import load_tokens

STAGE = "speculative"
MODEL = "models/base/model.pt"
TOKENS = "data/processed/tokens"
OUTPUT = "reports/speculative"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.speculative_decoding import Inputs, SpeculativeConfig, run
    from nlpcurriculum.models import load_model

    cfg = load_section(STAGE, SpeculativeConfig)
    target = load_model(MODEL).eval()
    arrays, _ = load_tokens(TOKENS, splits=["train", "val"])
    results = run(cfg, Inputs(target, arrays["train"], arrays["val"]))
    save_item_texts(OUTPUT, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started, artifacts=[f"{OUTPUT}/tables.txt"])
    print_findings(STAGE, results)
    for r in results:
        for text in r.texts.values():
            print(text)


if __name__ == "__main__":
    main_guard(main)
