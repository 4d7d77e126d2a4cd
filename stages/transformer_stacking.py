"""Stage `transformer_stacking`: "Transformers, QKV, & Stacking" (items 1-3).

Reads params `transformer_stacking`; its data is generated in code (the repeated-block toy task of
`nlpcurriculum.data.synthetic.repeats`), so the stage has no data dependency. Trains a bigram
baseline and mini-formers of each depth on each of `seeds` (side by side), dissects Q/K/V of one of
them; writes the first seed's trained models
to `models/transformer_stacking/depth<n>.pt` (+ `.json` sidecars), the item tables to
`reports/transformer_stacking/tables.txt`, the plots to `plots/transformer_stacking/` and
`metrics/transformer_stacking.json`.
"""

import time

from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, print_findings, publish, save_item_texts

STAGE = "transformer_stacking"
OUTPUT = "models/transformer_stacking"
REPORTS = "reports/transformer_stacking"


def main() -> None:
    started = time.time()
    from dataclasses import asdict

    from nlpcurriculum.experiments.transformers_qkv_and_stacking import Inputs, Outputs, StackingConfig, run
    from nlpcurriculum.training.checkpoint import save_checkpoint

    cfg = load_section(STAGE, StackingConfig)
    built = Outputs()
    results = run(cfg, Inputs(), built)
    models = built.models

    with atomic_path(OUTPUT, is_dir=True) as tmp:
        for depth, model in models.items():
            save_checkpoint(tmp / f"depth{depth}.pt", model=model, model_config=asdict(model.config),
                            trainer_config=asdict(cfg.train), extra={"task": asdict(cfg.task)})
    save_item_texts(REPORTS, results)
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
