"""Stage `linear_attention`: "Linear Attention Variants" (items 1-3).

Reads params `linear_attention` only: random queries and keys, the selective-copying task
generated from seeds, and the machine. Checks Performer, Linformer and FNet against their
references, trains an encoder with each mixer against softmax attention, and times one mixer up to
100k+ tokens; writes the item tables to `reports/linear_attention/tables.txt`, the plots to
`plots/linear_attention/`, `metrics/linear_attention.json` and the clock readings to
`metrics/timings/linear_attention.json`.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "linear_attention"
REPORTS = "reports/linear_attention"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.linear_attention_variants import Inputs, LinearAttentionConfig, run

    cfg = load_section(STAGE, LinearAttentionConfig)
    results = run(cfg, Inputs())
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
