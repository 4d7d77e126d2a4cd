"""Stage `multitask`: "Multi-Task Learning" (items 1-3).

Reads params `multitask` only: its data are word-level classification tasks generated from seeds
(topic, sentiment, and topic with shifted labels: the built conflict). Trains a shared
bidirectional encoder with task heads single-task, jointly (equal weights, PCGrad, GradNorm,
uncertainty weighting) and with task sampling, on every seed; checks PCGrad against torchjd and
the negative-transfer detector on its positive and negative controls; writes the item tables to
`reports/multitask/tables.txt`, the plots to `plots/multitask/`, `metrics/multitask.json` and the
timings to `metrics/timings/multitask.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "multitask"


def main() -> None:
    from nlpcurriculum.experiments import multi_task_learning as experiment

    run_section(STAGE, experiment, experiment.MultiTaskExperimentConfig)


if __name__ == "__main__":
    main_guard(main)
