"""Stage `ssm`: "State Space Models (Mamba/SSM)" (items 1-3).

Reads params `ssm` only: its data is the selective-copying task, generated from seeds, and the
machine it runs on. Trains a selective SSM, its time-invariant ablation and a transformer of the
same size on the task, evaluates them from the training length to 10k+ tokens, checks the layer
against mambapy, and times one mixer layer by length and one generated token by position; writes
the item tables to `reports/ssm/tables.txt`, the plots to `plots/ssm/`, `metrics/ssm.json` and the
time and memory readings to `metrics/timings/ssm.json`.
"""

from nlpcurriculum.section_stage import run_section
from nlpcurriculum.stage import main_guard

STAGE = "ssm"


def main() -> None:
    from nlpcurriculum.experiments import state_space_models as experiment

    run_section(STAGE, experiment, experiment.SSMExperimentConfig)


if __name__ == "__main__":
    main_guard(main)
