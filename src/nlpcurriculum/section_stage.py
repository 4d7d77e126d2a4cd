"""The whole stage script of a section whose experiment reads nothing but its params.

Many sections generate their data from seeds (a synthetic task, random queries and keys) or read
one folder their params name, and save nothing but results. Their stage script is the same four
steps, written once here: load the params section into the experiment's config dataclass, call
the experiment's ``run(cfg, Inputs())``, write the items' tables to ``reports/<stage>/`` and
publish (plots, MLflow, ``metrics/<stage>.json``). A stage script then reads::

    def main() -> None:
        from nlpcurriculum.experiments import state_space_models as experiment

        run_section("ssm", experiment, experiment.SSMExperimentConfig)

    if __name__ == "__main__":
        main_guard(main)

(the import is written out, not computed from a name, so tests/test_dvc_deps.py sees which
modules the stage runs).

A stage that saves a model or reads another stage's outputs writes its own script.
"""

from __future__ import annotations

import time
from types import ModuleType

from nlpcurriculum.params import load_section
from nlpcurriculum.stage import print_findings, publish, save_item_texts


def run_section(stage: str, experiment: ModuleType, config: type, separate: bool = False) -> None:
    """Run an experiment module (its ``run`` and ``Inputs``, docs in ``experiments/__init__``).

    Args:
        stage: the DVC stage name, which is also its params section and its output folders'
            name (``reports/<stage>``, ``plots/<stage>``, ``metrics/<stage>.json``).
        experiment: the section's module under ``nlpcurriculum.experiments``; its ``Inputs()``
            must need no arguments.
        config: the module's config dataclass (the params section maps onto it).
        separate: each item's text artifact as its own file instead of one ``tables.txt``.
    """
    started = time.time()
    cfg = load_section(stage, config)
    results = experiment.run(cfg, experiment.Inputs())
    save_item_texts(f"reports/{stage}", results, separate=separate)
    publish(stage, {stage: cfg}, results=results, started=started)
    print_findings(stage, results)
