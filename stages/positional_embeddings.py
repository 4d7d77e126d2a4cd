"""Stage `positional_embeddings`: none / sinusoidal / learned / RoPE / ALiBi, trained and compared.

Covers the six items of "Positional Embeddings". Reads params `positional_embeddings` and the
splits `data/processed/splits/{train,val}.parquet` (the `splits` contract; tokenized as UTF-8
bytes by the library). Trains the same mini-former once per scheme and seed (`seeds`), compares
each scheme with no positions paired by seed, measures length extrapolation,
each scheme's own property, the 3D encoding animation and the attention-collapse ablation (see
`nlpcurriculum.experiments.positional_embeddings.positional_embeddings`). Writes the interactive
3D page and a findings summary to `reports/positional_embeddings/`, figures, series and the
animated GIF to `plots/positional_embeddings/`, and `metrics/positional_embeddings.json`.
"""

import time

from nlpcurriculum.data.schemas import split_texts
from nlpcurriculum.io import atomic_path
from nlpcurriculum.params import load_section
from nlpcurriculum.stage import main_guard, publish

STAGE = "positional_embeddings"
OUTPUT = "reports/positional_embeddings"
PAGE = "position_encoding_3d.html"


def main() -> None:
    started = time.time()
    import torch

    from nlpcurriculum.experiments.positional_embeddings.positional_embeddings import (
        Inputs,
        PositionalConfig,
        run,
    )

    cfg = load_section(STAGE, PositionalConfig)
    train, val = split_texts("train"), split_texts("val")
    torch.set_num_threads(cfg.num_threads)
    results = run(cfg, Inputs(train, val, log=lambda line: print(f"{STAGE}: {line}", flush=True)))

    summary = "".join(
        f"{r.item}: {f.metric} = {f.value:.6g} (threshold {f.threshold}) "
        f"{'pass' if f.passed else 'FAIL'}: {f.claim}\n" for r in results for f in r.findings)
    with atomic_path(OUTPUT, is_dir=True) as tmp:
        page = next(r.texts[PAGE] for r in results if PAGE in r.texts)
        (tmp / PAGE).write_text(page, encoding="utf-8")
        (tmp / "findings.txt").write_text(summary, encoding="utf-8")
    publish(STAGE, {STAGE: cfg}, results=results, started=started)
    print(summary, end="")


if __name__ == "__main__":
    main_guard(main)
