"""Stage `synthetic_curves`: learning curves of one small LM on real vs synthetic text.

Reads the real splits `data/processed/splits/{train,val}.parquet` (the `splits` contract), the
synthetic stories `data/synthetic/stories/{train,val}.jsonl` (written by the `synthetic` stage;
one JSON record per line with a `text` field) and params `synthetic_curves`; trains the same
mini-former on each (and a 50/50 mix) at an equal token budget, cross-evaluates, and writes
`plots/synthetic_curves/` and `metrics/synthetic_curves.json`. Item synthetic-data/2.
"""

import json
import time
from pathlib import Path

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

STAGE = "synthetic_curves"
SYNTHETIC = "data/synthetic/stories"


def read_jsonl_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the `synthetic` stage first")
    try:
        return [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is not JSONL records with a `text` field: {err}") from err


def main() -> None:
    started = time.time()
    from nlpcurriculum.experiments.synthetic_data.synthetic_curves import Inputs, SyntheticCurvesConfig, run

    cfg = load_section(STAGE, SyntheticCurvesConfig)
    real = {s: split_texts(s) for s in ("train", "val")}
    synthetic = {s: read_jsonl_texts(Path(SYNTHETIC) / f"{s}.jsonl") for s in ("train", "val")}
    (result,) = run(cfg, Inputs(real, synthetic))
    publish(STAGE, {STAGE: cfg}, results=[result], started=started)
    print(f"{STAGE}:\n{result.texts['cross_eval.txt']}" + "; ".join(
        f"{f.metric}={f.value:.3f} {'pass' if f.passed else 'FAIL'}" for f in result.findings))


if __name__ == "__main__":
    main_guard(main)
