"""Write the shipped default dataset of the `finetune` stage: `data/custom/release_notes.jsonl`.

Release notes of made-up Python packages, one release per record (`{"id": ..., "text": ...}`),
drawn from templates and word lists with a fixed seed: a genre the pipeline's corpus (Python
docstrings and pydoc topics) lacks, written in the same vocabulary, so fine-tuning the base LM on
it has something new to learn and something old to build on. Regenerate byte for byte with

    python scripts/make_custom_dataset.py [--n 400] [--seed 0] [--out data/custom/release_notes.jsonl]

Provenance and licence: data/custom/SOURCE.md (generated here; no text taken from anywhere).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PACKAGES = ["tidepool", "lanternfs", "quillrpc", "marblecache", "ferncsv", "bramblehttp",
            "otterlog", "pebbleorm", "cinderqueue", "hazelconf", "wrenplot", "juniperauth"]
FUNCS = ["load_config", "parse_header", "open_stream", "read_table", "write_rows", "connect",
         "fetch_page", "retry_call", "flush", "resolve_path", "render_template", "encode_key",
         "split_batches", "merge_records", "validate_schema", "close_session", "get_logger",
         "schedule_task", "cancel_task", "compress_block", "decode_frame", "iter_lines"]
SYMPTOMS = ["raised a KeyError", "returned None", "leaked a file descriptor", "hung forever",
            "dropped the last row", "ignored the timeout argument", "raised UnicodeDecodeError",
            "printed a spurious warning", "used the wrong default encoding",
            "returned duplicate entries", "crashed with a RecursionError"]
CONDITIONS = ["the input file was empty", "the path contained spaces", "called from a thread",
              "the server closed the connection early", "the list had a single element",
              "the environment variable was unset", "running on Windows",
              "the cache directory did not exist", "a header line was longer than 64 KiB",
              "the event loop was already closed", "the config file used tabs"]
OPTIONS = ["timeout", "encoding", "strict", "max_retries", "chunk_size", "verbose", "dry_run",
           "follow_links", "compression", "on_error", "batch_size", "lazy"]
EFFECTS = ["controls how long to wait before giving up", "selects the text encoding",
           "turns warnings into errors", "limits the number of attempts",
           "sets the size of each read", "prints every step to stderr",
           "shows what would change without writing anything", "follows symbolic links",
           "chooses the compression algorithm", "decides what happens on a bad record",
           "groups the records before sending them", "defers the work until first use"]
BEHAVIOURS = ["accepts a pathlib.Path as well as a string", "returns a list instead of a tuple",
              "raises ValueError on a negative size", "closes the file it opened",
              "keeps the order of the input", "is safe to call from several threads",
              "retries once on a timeout", "strips trailing whitespace from every line",
              "logs at DEBUG level instead of INFO", "validates its arguments before connecting"]
INPUTS = ["large files", "many small files", "long lines", "deeply nested dictionaries",
          "slow networks", "wide tables", "unicode text"]
TOPICS = ["the retry policy", "thread safety", "the plugin interface", "error handling",
          "configuration files", "logging", "the command line options", "upgrading from 1.x"]
THANKS = ["Thanks to all who reported issues.", "Thanks to the new contributors of this release.",
          "This release was tested on Linux, macOS and Windows.", ""]


def change(rng: random.Random) -> str:
    """One bullet of a release: a fix, an addition, a behaviour change, a deprecation, ..."""
    f, g = rng.sample(FUNCS, 2)
    kind = rng.randrange(8)
    if kind == 0:
        return f"Fixed a bug where {f}() {rng.choice(SYMPTOMS)} when {rng.choice(CONDITIONS)}."
    if kind == 1:
        k = rng.randrange(len(OPTIONS))
        return f"Added the {OPTIONS[k]} argument to {f}(), which {EFFECTS[k]}."
    if kind == 2:
        return f"{f}() now {rng.choice(BEHAVIOURS)}."
    if kind == 3:
        return f"Deprecated {f}(); use {g}() instead. It will be removed in the next major release."
    if kind == 4:
        return f"Improved the speed of {f}() on {rng.choice(INPUTS)} (about {rng.randint(2, 9)}x faster)."
    if kind == 5:
        return f"Removed support for Python 3.{rng.randint(6, 9)}."
    if kind == 6:
        return f"Documented {rng.choice(TOPICS)} in the user guide."
    return f"Fixed a crash in {f}() when {rng.choice(CONDITIONS)}."


def release(rng: random.Random, package: str, version: tuple[int, int, int]) -> str:
    """One release's notes: a title line with version and date, then 2 to 6 bullets."""
    year, month, day = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    lines = [f"{package} {'.'.join(map(str, version))} ({year}-{month:02d}-{day:02d})", ""]
    lines += [f"- {change(rng)}" for _ in range(rng.randint(2, 6))]
    thanks = rng.choice(THANKS)
    return "\n".join(lines + ([ "", thanks] if thanks else []))


def generate(n: int, seed: int) -> list[dict]:
    """``n`` records ``{"id", "text"}``, the versions of each package rising in order."""
    rng = random.Random(seed)
    versions = {p: [1, 0, 0] for p in PACKAGES}
    out = []
    for i in range(n):
        package = rng.choice(PACKAGES)
        v = versions[package]
        bump = rng.random()
        v[:] = [v[0] + 1, 0, 0] if bump < 0.05 else [v[0], v[1] + 1, 0] if bump < 0.35 else [v[0], v[1], v[2] + 1]
        out.append({"id": f"rn{i:04d}", "text": release(rng, package, tuple(v))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/custom/release_notes.jsonl")
    args = parser.parse_args()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for rec in generate(args.n, args.seed):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {args.n} records to {path}")


if __name__ == "__main__":
    main()
