"""Stage `flash_attention`: "Flash Attention & Sparse Attention" (items 1-3).

Reads params `flash_attention` only: its inputs are random queries, keys and values (seeded) and
the machine it runs on (cache sizes from sysfs, CPU flags). Compares tiled attention and
block-sparse patterns with torch's fused kernel and a dense masked reference, and benchmarks
plain, recompute, tiled and fused attention by length; writes the item tables to
`reports/flash_attention/tables.txt`, the plots to `plots/flash_attention/`,
`metrics/flash_attention.json` and the time and memory readings to
`metrics/timings/flash_attention.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "flash_attention"


def main() -> None:
    from nlpcurriculum.experiments import flash_attention_and_sparse_attention as experiment

    run_section(STAGE, experiment, experiment.FlashAttentionConfig)


if __name__ == "__main__":
    main_guard(main)
