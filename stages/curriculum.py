"""Stage `curriculum`: "Curriculum Learning & Data Ordering" (items 1-3).

Reads params `curriculum` only: its data are three text domains (prose, topic documents,
arithmetic) generated from seeds as bytes. Scores every training example's difficulty (length, a
reference bigram's loss, token rarity), trains a small byte-level LM under each ordering (random,
easy->hard, hard->easy, competence-based pacing) and each domain-mixing schedule (static,
temperature, shifting) on every seed, and measures the steps to a target held-out loss and the
per-domain losses; writes the item tables to `reports/curriculum/tables.txt`, the plots to
`plots/curriculum/`, `metrics/curriculum.json` and the timings to
`metrics/timings/curriculum.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "curriculum"


def main() -> None:
    from nlpcurriculum.experiments import curriculum_learning_and_data_ordering as experiment

    run_section(STAGE, experiment, experiment.CurriculumExperimentConfig)


if __name__ == "__main__":
    main_guard(main)
