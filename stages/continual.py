"""Stage `continual`: "Continual Learning & Catastrophic Forgetting" (items 1-3).

Reads params `continual` only: its tasks (word-polarity lexicons, one per task) are generated from
seeds. Trains a small mini-former on task A, then five shifts, naively, with EWC (a lambda sweep),
with reservoir replay and with parameter isolation, and jointly as the reference; measures
forgetting after every shift; writes the item tables to `reports/continual/tables.txt`, the plots
to `plots/continual/`, `metrics/continual.json` and `metrics/timings/continual.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "continual"


def main() -> None:
    from nlpcurriculum.experiments import continual_learning_and_catastrophic_forgetting as experiment

    run_section(STAGE, experiment, experiment.ContinualExperimentConfig)


if __name__ == "__main__":
    main_guard(main)
