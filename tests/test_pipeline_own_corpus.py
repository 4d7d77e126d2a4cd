"""`dvc repro` of the whole smoke pipeline on a user's own corpus, not the built-in one.

The corpus is generated in ``tmp_path``, outside the project: a folder of plain ``.txt``/``.md``
files (English stories, German, Russian and Chinese prose, a few tiny files, one huge file), one
``.jsonl`` and one ``.parquet``, plus a file of a kind ``ingest`` does not read. Its sources are
never ``pydoc_topics`` or ``stdlib_docstrings``, so every default that assumes the built-in corpus
shows up here as a failure.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nlpcurriculum import dag
from nlpcurriculum.data.synthetic.stories import generate_stories
from tests.conftest import BIN, make_project_copy, run

pytestmark = pytest.mark.slow
DVC = str(BIN / "dvc")

# Non-English prose from small grammars: subjects x verbs x objects x endings, in word order.
_GERMAN = (
    ["Der alte Bäcker", "Die junge Lehrerin", "Unser Nachbar", "Das kleine Mädchen", "Der Förster"],
    ["trägt", "findet", "repariert", "vergisst", "malt"],
    ["einen schweren Korb", "die grüne Tür", "das alte Fahrrad", "einen langen Brief", "die Brücke"],
    ["am frühen Morgen.", "hinter dem Bahnhof.", "trotz des Regens.", "mit großer Geduld.",
     "kurz vor Mitternacht."],
)  # fmt: skip
_RUSSIAN = (
    ["Старый рыбак", "Молодая учительница", "Наш сосед", "Маленькая девочка", "Лесник"],
    ["несёт", "находит", "чинит", "забывает", "рисует"],
    ["тяжёлую корзину", "зелёную дверь", "старый велосипед", "длинное письмо", "мост"],
    ["рано утром.", "за вокзалом.", "несмотря на дождь.", "с большим терпением.",
     "незадолго до полуночи."],
)  # fmt: skip
_CHINESE = (
    ["老渔夫", "年轻的老师", "我们的邻居", "小女孩", "护林员"],
    ["拿着", "找到了", "修好了", "忘记了", "画了"],
    ["一个很重的篮子", "绿色的门", "旧自行车", "一封长信", "那座桥"],
    ["在清晨。", "在车站后面。", "尽管下着雨。", "非常耐心地。", "在午夜之前。"],
)  # fmt: skip


def _prose(grammar: tuple[list[str], ...], rng: random.Random, sentences: int, sep: str) -> str:
    """``sentences`` random sentences of ``grammar`` (one choice per slot), joined by ``sep``."""
    return sep.join(sep.join(rng.choice(slot) for slot in grammar) for _ in range(sentences))


def write_corpus(folder: Path, seed: int = 0) -> dict[str, int]:
    """Write a mixed user corpus under ``folder``; returns how many documents of each kind.

    Every document is distinct (different stories or sentence draws), so the corpus has no
    exact duplicates. Sizes are mixed: one- to five-story files, a huge file of 400 stories
    (about 160 kB), and tiny files, one of them below ``ingest.min_chars``.
    """
    rng = random.Random(seed)
    stories = iter(generate_stories(1400, seed=seed))
    counts: dict[str, int] = {}

    def write(rel: str, text: str, kind: str) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        counts[kind] = counts.get(kind, 0) + 1

    for i in range(160):  # English .txt of one to five stories each
        write(f"stories/story_{i:03d}.txt", "\n\n".join(next(stories) for _ in range(rng.randint(1, 5))), "txt")
    for i in range(20):  # Markdown notes: a heading and two stories
        write(f"notes/note_{i:02d}.md", f"# Note {i}\n\n{next(stories)}\n\n{next(stories)}\n", "md")
    for lang, grammar, sep in (("de", _GERMAN, " "), ("ru", _RUSSIAN, " "), ("zh", _CHINESE, "")):
        for i in range(40 if lang != "zh" else 25):
            write(f"{lang}/doc_{i:02d}.txt", _prose(grammar, rng, rng.randint(4, 12), sep), lang)
    write("huge/book.txt", "\n\n".join(next(stories) for _ in range(400)), "huge")
    write("tiny/hello.txt", "Hi.", "tiny_below_min_chars")  # dropped by ingest.min_chars
    write("tiny/line.txt", "The cat sat on the mat and slept.", "tiny")
    write("tiny/word.md", "Tschüss und danke für alles!", "tiny")
    records = [{"id": i, "text": next(stories), "lang": "en"} for i in range(40)]
    (folder / "extra").mkdir(exist_ok=True)
    (folder / "extra/records.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    counts["jsonl"] = len(records)
    rows = [_prose(_GERMAN, rng, rng.randint(3, 8), " ") if i % 2 else next(stories) for i in range(40)]
    pd.DataFrame({"text": rows, "row": range(len(rows))}).to_parquet(folder / "extra/table.parquet")
    counts["parquet"] = len(rows)
    (folder / "extra/scan.pdf").write_bytes(b"%PDF-1.4 not read")  # skipped and counted
    return counts


@pytest.fixture(scope="module")
def own_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A smoke-profile project whose ``ingest`` reads a generated corpus outside it, reproduced.

    ``max_documents: 0`` (the smoke profile reads 150) so that every kind of document (the huge
    one, the tiny ones, Chinese) goes through; the other sizes are the smoke profile's.
    """
    base = tmp_path_factory.mktemp("own_corpus")
    corpus = base / "corpus"  # outside the project: an absolute path, an external DVC dependency
    counts = write_corpus(corpus)
    root = make_project_copy(base / "project")
    params = yaml.safe_load((root / "params/pipeline.yaml").read_text())
    params["ingest"].update(source="files", path=str(corpus), max_documents=0)
    (root / "params/pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.time()
    proc = run([DVC, "repro"], root)
    wall = time.time() - started
    return {"root": root, "corpus": corpus, "counts": counts, "proc": proc, "wall_s": wall}


def _metrics(root: Path, stage: str) -> dict:
    return json.loads((root / "metrics" / f"{stage}.json").read_text())


def test_every_stage_runs_on_a_users_corpus(own_corpus: dict):
    root, counts, proc = own_corpus["root"], own_corpus["counts"], own_corpus["proc"]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages)
    for stage in stages:
        assert _metrics(root, stage)["stage"] == stage
    # The corpus really is the user's: all of it, none of the built-in sources.
    ingest = _metrics(root, "ingest")["metrics"]
    assert ingest["documents"] == sum(counts.values()) - counts["tiny_below_min_chars"]
    assert ingest["dropped_short"] == 1 and ingest["files.skipped.pdf"] == 1
    assert ingest["documents"] == ingest["documents.files"]
    assert lock["ingest"]["deps"][0]["path"] == str(own_corpus["corpus"])
    # No duplicates: dedup writes an empty, typed dropped table (it used to stop here).
    dedup = _metrics(root, "dedup")["metrics"]
    assert dedup["exact_duplicate"] == 0 and dedup["kept"] == ingest["documents"]
    assert len(pd.read_parquet(root / "data/interim/dedup_dropped.parquet")) == 0
    # The perplexity reference adapts (every source); clean_sources falls back, with a warning.
    filt = _metrics(root, "filter")["metrics"]
    assert filt["dropped.no_stop_words"] >= counts["de"] + counts["ru"]  # English stop words
    assert filt["kept"] > counts["txt"]
    assert "warning: filter.clean_sources ['pydoc_topics'] names no source of this corpus" in proc.stderr
    splits = _metrics(root, "splits")["metrics"]
    assert sum(splits[f"{n}.documents"] for n in ("train", "val", "test")) == filt["kept"]
    assert min(splits["val.documents"], splits["test.documents"]) >= 5
    assert (root / "reports/index.html").is_file()
    # Figures for the closing note: wall time, and each stage's time and failed findings.
    db = sqlite3.connect(root / "mlflow.db")
    times = dict(db.execute(
        "select t.value, m.value from tags t join latest_metrics m on m.run_uuid = t.run_uuid "
        "where t.key = 'nlpc.stage' and m.key = 'wall_time_s'"))
    print(f"\nown-corpus smoke pipeline: {own_corpus['wall_s']:.0f} s wall, {len(stages)} stages")
    for stage in stages:
        items = _metrics(root, stage)["items"].values()
        failed = [f["metric"] for it in items for f in it["findings"] if not f["passed"]]
        print(f"  {stage}: ran in {times.get(stage, float('nan')):.1f} s; "
              + (f"findings not met: {', '.join(failed)}" if failed else "findings met"))


def _status(root: Path) -> dict:
    return json.loads(run([DVC, "status", "--json"], root).stdout or "{}")


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def test_corpus_files_are_dependencies_that_rerun_what_depends_on_them(own_corpus: dict):
    root, corpus = own_corpus["root"], own_corpus["corpus"]
    changed_corpus = {"ingest": [{"changed deps": {str(corpus): "modified"}}]}
    # Unchanged: nothing reruns.
    assert _status(root) == {}
    assert _ran(run([DVC, "repro"], root).stdout) == set()
    # Changing a file's content, or removing a file, changes the dependency; undoing it undoes that.
    story = corpus / "stories/story_000.txt"
    original = story.read_bytes()
    story.write_text("A new story about a dog who likes the sea and the sand, and the boats.")
    assert _status(root) == changed_corpus
    story.write_bytes(original)
    assert _status(root) == {}
    moved = story.rename(corpus.parent / "story_000.txt")
    assert _status(root) == changed_corpus
    moved.rename(story)
    assert _status(root) == {}
    # A file ingest skips reruns ingest, whose documents stay the same: nothing after it reruns.
    (corpus / "extra/more.pdf").write_bytes(b"%PDF-1.4 still not read")
    assert _status(root) == changed_corpus
    assert _ran(run([DVC, "repro", "splits"], root).stdout) == {"ingest"}
    # A copy of a document: dedup drops it and keeps the same documents, so filter does not rerun.
    shutil.copy(corpus / "stories/story_001.txt", corpus / "stories/story_001_copy.txt")
    assert _ran(run([DVC, "repro", "splits"], root).stdout) == {"ingest", "dedup"}
    assert _metrics(root, "dedup")["metrics"]["exact_duplicate"] == 1
    # A new document reruns ingest and what reads its output, up to the stage asked for ...
    val = root / "data/processed/splits/val.parquet"
    val_before = val.read_bytes()
    (corpus / "stories/new.txt").write_text(generate_stories(1, seed=99)[0])
    assert _ran(run([DVC, "repro", "splits"], root).stdout) == {"ingest", "dedup", "filter", "splits"}
    # ... and the stages that read what those four rewrote are now out of date, no others: a
    # stage reading only val.parquet (token_viz) stays up to date when the new document went
    # to another split.
    graph = dag.load(root / "dvc.yaml")
    rerun = {"ingest", "dedup", "filter", "splits"}
    readers = {stage for stage, upstream in graph.items() if upstream & rerun} - rerun
    stale = set(_status(root))
    assert stale <= readers and "synthetic" not in stale
    assert {"tokenizer", "word_embeddings", "dedup_impact", "report"} <= stale
    assert ("token_viz" in stale) == (val.read_bytes() != val_before)
