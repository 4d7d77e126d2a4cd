"""Stage `synthetic`: toy task corpora with noise and planted duplicates, deduped and split.

Reads params `synthetic` (see `SyntheticCorporaConfig`); writes
`data/synthetic/<task>/{train,val,test}.jsonl` (one record per line: `text`, `clean_text`, noise
counts and the generator's ground-truth fields), `plots/synthetic/` and `metrics/synthetic.json`.
Item synthetic-data/1.
"""

import json
import time

from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

OUTPUT = "data/synthetic"


def main() -> None:
    started = time.time()
    from nlpcurriculum.data.synthetic.corpora import SPLIT_NAMES, build_task_corpus
    from nlpcurriculum.experiments.synthetic_data.synthetic import Inputs, SyntheticCorporaConfig, run

    cfg = load_section("synthetic", SyntheticCorporaConfig)
    corpora = {task: build_task_corpus(task, cfg) for task in cfg.tasks}
    with atomic_path(OUTPUT, is_dir=True) as tmp:
        for task, corpus in corpora.items():
            (tmp / task).mkdir()
            for name in SPLIT_NAMES:
                lines = (json.dumps(r, sort_keys=True) for r in corpus.splits[name])
                (tmp / task / f"{name}.jsonl").write_text("".join(f"{x}\n" for x in lines))
    results = run(cfg, Inputs(corpora))
    metrics = {f"{t}.{n}": len(c.splits[n]) for t, c in corpora.items() for n in SPLIT_NAMES}
    publish("synthetic", {"synthetic": cfg}, metrics=metrics, results=results, started=started)
    print(f"synthetic: {len(corpora)} task corpora -> {OUTPUT}/<task>/{{train,val,test}}.jsonl")


if __name__ == "__main__":
    main_guard(main)
