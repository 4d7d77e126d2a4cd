"""Stage `ssm`: "State Space Models (Mamba/SSM)" (items 1-3).

Reads params `ssm` only: its data is the selective-copying task, generated from seeds, and the
machine it runs on. Trains a selective SSM, its time-invariant ablation and a transformer of the
same size on the task, evaluates them from the training length to 10k+ tokens, checks the layer
against mambapy, and times one mixer layer by length and one generated token by position; writes
the item tables to `reports/ssm/tables.txt`, the plots to `plots/ssm/`, `metrics/ssm.json` and the
time and memory readings to `metrics/timings/ssm.json`.
"""

import time

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "ssm"
REPORTS = "reports/ssm"


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.state_space_models import Inputs, SSMExperimentConfig, run

    cfg = load_section(STAGE, SSMExperimentConfig)
    results = run(cfg, Inputs())
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
