"""Stage `linear_attention`: "Linear Attention Variants" (items 1-3).

Reads params `linear_attention` only: random queries and keys, the selective-copying task
generated from seeds, and the machine. Checks Performer, Linformer and FNet against their
references, trains an encoder with each mixer against softmax attention, and times one mixer up to
100k+ tokens; writes the item tables to `reports/linear_attention/tables.txt`, the plots to
`plots/linear_attention/`, `metrics/linear_attention.json` and the clock readings to
`metrics/timings/linear_attention.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "linear_attention"


def main() -> None:
    from nlpcurriculum.experiments import linear_attention_variants as experiment

    run_section(STAGE, experiment, experiment.LinearAttentionConfig)


if __name__ == "__main__":
    main_guard(main)
