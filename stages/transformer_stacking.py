"""Stage `transformer_stacking`: "Transformers, QKV, & Stacking" (items 1-3).

Reads params `transformer_stacking`; its data is generated in code (the repeated-block toy task of
`nlpcurriculum.data.synthetic.repeats`), so the stage has no data dependency. Trains a bigram
baseline and mini-formers of each depth, dissects Q/K/V of one of them; writes the trained models
to `models/transformer_stacking/depth<n>.pt` (+ `.json` sidecars) with the item tables in
`models/transformer_stacking/tables.txt`, the plots to `plots/transformer_stacking/` and
`metrics/transformer_stacking.json`.
"""

import time

from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import item_tables, main_guard, print_findings, publish

STAGE = "transformer_stacking"
OUTPUT = "models/transformer_stacking"


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
        (tmp / "tables.txt").write_text(item_tables(results), encoding="utf-8")
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print_findings(STAGE, results)


if __name__ == "__main__":
    main_guard(main)
