"""Experiment of stage ``token_viz``: the "token visualizer to map words/chunks to IDs" item.

:func:`run` (through :func:`token_viz_item`) renders one text under several tokenizers (the
self-contained HTML page of :func:`~nlpcurriculum.viz.token_viz.render_html`) and checks the
visualizer's two promises for each tokenizer: the ids it shows are exactly ``encode(text)``, and
the chunks it colours, joined, give the text back (every character is shown under exactly one
token); both are invariants. It also reports how many tokens each tokenizer needs, the number a
reader compares first.

Three findings are measured on text in scripts the English training corpus never shows (Georgian,
Armenian, Tamil, ...; params ``unseen_texts``), for each byte-level BPE tokenizer shown:

* the visualizer shows each unseen text truthfully: its chunks join back to the text, and every
  token whose bytes are whole characters shows exactly ``decode([id])`` (a token holding only part
  of a character, most of them here, is shown by its bytes, as the module
  :mod:`nlpcurriculum.viz.token_viz` explains). A visualizer that labelled each chunk with
  ``decode([id], errors="replace")`` or gave a character to the token holding its first byte would
  fail it (a test checks the first);

* a ``tiktoken.Encoding`` built from its regex and merge ranks gives the same ids there too, where
  only the pre-tokenisation regex's Unicode classes (combining marks are not letters) and the raw
  byte fallback decide the split: the comparison a reader makes by pasting such text into the
  tiktokenizer app;
* with no merges learned for those scripts, text falls back to single bytes: tokens per character
  on the unseen scripts over tokens per character on the sample text (the control) must reach a
  bound. A tokenizer with merges or an unknown token for them would fail it.

The stage picks the sample paragraphs (:func:`sample_paragraphs`, sized by
:class:`TokenVizConfig`) and loads the tokenizers; :func:`run` only renders and checks.

Left out: nothing beyond what the stage needs; the library function does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from nlpcurriculum.experiments.tokenization_and_embeddings.tokenizer_compare import reference_parity
from nlpcurriculum.results import INVARIANT, Finding, ItemResult
from nlpcurriculum.tokenizers.bpe import BPETokenizer
from nlpcurriculum.viz.token_viz import TokenChunk, _encode, render_html, render_terminal, token_chunks

__all__ = ["ITEMS", "UNSEEN_TEXTS", "Inputs", "TokenVizChecks", "TokenVizConfig", "chunks_show_decode", "run",
           "sample_paragraphs", "token_viz_item", "unseen_script_findings"]

#: Curriculum item ids this module covers, in the order :func:`run` returns them.
ITEMS: tuple[str, ...] = ("tokenization-and-embeddings/7",)


@dataclass(frozen=True)
class TokenVizChecks:
    """Bounds of the item's findings (params ``token_viz.checks``).

    Attributes:
        min_ids_match: 1 when the ids shown are exactly ``encode(text)``.
        min_chunks_cover: 1 when the coloured chunks join back to the text.
        min_unseen_ids_match: share of the unseen-script texts on which a byte-level BPE and the
            ``tiktoken.Encoding`` of its ranks give the same ids.
        min_unseen_cost_ratio: a byte-level BPE's tokens per character on the unseen scripts over
            its tokens per character on the sample text.
        min_unseen_chunks_decode: share of the unseen-script texts whose chunks join back to the
            text and show ``decode([id])`` for every whole-character token.
    """

    min_ids_match: float = 1.0
    min_chunks_cover: float = 1.0
    min_unseen_ids_match: float = 1.0
    min_unseen_cost_ratio: float = 2.0
    min_unseen_chunks_decode: float = 1.0


#: Short sentences in scripts an English corpus does not contain (params ``token_viz.unseen_texts``).
UNSEEN_TEXTS = [
    "გამარჯობა, როგორ ხარ? ეს არის მოკლე წინადადება.",
    "Բարև, ինչպե՞ս ես։ Սա կարճ նախադասություն է։",
    "வணக்கம், நீங்கள் எப்படி இருக்கிறீர்கள்? இது ஒரு சிறிய வாக்கியம்.",
    "ሰላም፣ እንዴት ነህ? ይህ አጭር ዓረፍተ ነገር ነው።",
    "สวัสดี คุณสบายดีไหม นี่คือประโยคสั้นๆ",
    "សួស្តី តើអ្នកសុខសប្បាយទេ? នេះគឺជាប្រយោគខ្លីមួយ។",
]


@dataclass
class TokenVizConfig:
    """The `token_viz` section: val paragraphs, their length, an extra line, tiktoken, the
    unseen-script texts of the findings, `checks`."""

    n_samples: int = 3
    max_chars: int = 300
    extra_text: str = ""
    include_tiktoken: bool = True
    unseen_texts: list[str] = field(default_factory=lambda: list(UNSEEN_TEXTS))
    checks: TokenVizChecks = field(default_factory=TokenVizChecks)


def sample_paragraphs(groups: Mapping[str, Sequence[str]], n: int, max_chars: int = 300,
                      min_chars: int = 120) -> list[str]:
    """Pick ``n`` sample paragraphs from documents, taking turns between the groups (sources).

    Each sample is the first paragraph (blank-line separated) of a document that has at least
    ``min_chars`` characters (so that headings are skipped), cut at the last space before
    ``max_chars``. When no document has such a paragraph (a corpus of short texts), each
    document's longest paragraph is taken instead. Deterministic: groups in the order given,
    documents in order.

    Raises:
        ValueError: ``n < 1``, or there is no non-blank document at all.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if max_chars < min_chars:
        raise ValueError(f"max_chars ({max_chars}) must be >= min_chars ({min_chars})")
    long_enough = any(len(p.strip()) >= min_chars
                      for docs in groups.values() for doc in docs for p in doc.split("\n\n"))
    pools = []
    for docs in groups.values():
        paragraphs = []
        for doc in docs:
            parts = [p.strip() for p in doc.split("\n\n")]
            if long_enough:
                para = next((p for p in parts if len(p) >= min_chars), None)
            else:
                para = max(parts, key=len) or None
            if para is not None:
                if len(para) > max_chars:
                    cut = para.rfind(" ", 0, max_chars)
                    para = para[: cut if cut >= min_chars else max_chars]
                paragraphs.append(para)
        pools.append(paragraphs)
    out: list[str] = []
    depth = 0
    while len(out) < n and any(depth < len(p) for p in pools):
        for pool in pools:
            if depth < len(pool) and len(out) < n:
                out.append(pool[depth])
        depth += 1
    if not out:
        raise ValueError("no document has a non-blank paragraph to show")
    return out


def token_viz_item(item: str, text: str, tokenizers: Mapping[str, Any],
                   checks: TokenVizChecks | None = None, unseen_texts: Sequence[str] = ()) -> ItemResult:
    """Visualise ``text`` under each tokenizer and check ids and chunk coverage.

    Args:
        item: the curriculum item id.
        text: the sample text (mix in rare words, digits, non-ASCII to make it interesting).
        tokenizers: ``{name: tokenizer}`` (anything :func:`token_chunks` accepts).
        checks: the findings' bounds (default: :class:`TokenVizChecks`).
        unseen_texts: texts in scripts the tokenizers never saw in training; with any, each
            byte-level BPE among ``tokenizers`` gets the two findings of :func:`unseen_script_findings`.

    Returns:
        An :class:`ItemResult` with ``token_viz.html`` and ``token_viz.txt`` (plain terminal view),
        metrics ``<name>/tokens`` and ``<name>/chars_per_token``, two invariants per tokenizer and
        the unseen-script findings.
    """
    if not tokenizers:
        raise ValueError("need at least one tokenizer")
    checks = checks or TokenVizChecks()
    metrics: dict[str, float] = {"chars": float(len(text))}
    findings = []
    views = []
    for name, tok in tokenizers.items():
        chunks = token_chunks(text, tok)
        ids, _ = _encode(tok, text)
        n = len(chunks)
        metrics[f"{name}/tokens"] = float(n)
        metrics[f"{name}/chars_per_token"] = len(text) / n if n else 0.0
        ids_match = float([c.id for c in chunks] == ids)
        covered = float("".join(c.text for c in chunks) == text)
        findings.append(Finding.at_least(f"{name}: the ids shown are exactly encode(text)",
                                         f"{name}/ids_match", ids_match, checks.min_ids_match,
                                         kind=INVARIANT))
        findings.append(Finding.at_least(f"{name}: the coloured chunks join back to the text",
                                         f"{name}/chunks_cover_text", covered,
                                         checks.min_chunks_cover, kind=INVARIANT))
        views.append(f"== {name}\n" + render_terminal(text, tok, color=False))
    byte_level = {name: tok for name, tok in tokenizers.items() if isinstance(tok, BPETokenizer)}
    if unseen_texts and byte_level:
        metrics["unseen.texts"] = float(len(unseen_texts))
        metrics["unseen.chars"] = float(sum(map(len, unseen_texts)))
        for name, tok in byte_level.items():
            findings += unseen_script_findings(name, tok, text, unseen_texts, checks, metrics)
    return ItemResult(item=item, metrics=metrics, findings=findings,
                      texts={"token_viz.html": render_html(text, dict(tokenizers)),
                             "token_viz.txt": "\n".join(views)})


def chunks_show_decode(text: str, chunks: Sequence[TokenChunk], tok: BPETokenizer) -> tuple[bool, int, int]:
    """Whether the visualizer's ``chunks`` of ``text`` are truthful, and how many tokens are partial.

    Truthful: the chunks join back to ``text``, and every token whose bytes are valid UTF-8 (whole
    characters: such bytes cannot start or end inside a character) covers exactly
    ``decode([id])``. Tokens whose bytes are not valid UTF-8 hold part of a character and are
    shown by their bytes instead.

    Returns:
        ``(truthful, partial tokens, tokens)``.
    """
    ok = "".join(c.text for c in chunks) == text
    partial = 0
    for c in chunks:
        try:
            whole = tok.token_bytes(c.id).decode("utf-8")
        except UnicodeDecodeError:
            partial += 1
            continue
        ok = ok and c.text == whole
    return ok, partial, len(chunks)


def unseen_script_findings(name: str, tok: BPETokenizer, text: str, unseen_texts: Sequence[str],
                           checks: TokenVizChecks, metrics: dict[str, float]) -> list[Finding]:
    """A byte-level BPE on scripts it never saw: tiktoken's ids, and the cost of the byte fallback.

    Adds to ``metrics``: ``<name>/unseen_ids_match`` (share of texts with identical ids),
    ``<name>/unseen_tokens_per_char`` and ``<name>/tokens_per_char`` (the sample text: the
    control), their ratio ``<name>/unseen_cost_ratio``, and ``<name>/unseen_single_byte_share``
    (share of the unseen texts' tokens that are one byte: how far the fallback goes),
    ``<name>/unseen_chunks_decode`` (share of texts :func:`chunks_show_decode` finds truthful) and
    ``<name>/unseen_partial_share`` (share of tokens holding part of a character).
    """
    match = reference_parity("bpe", tok, unseen_texts)["identical_docs"]
    shown = [chunks_show_decode(t, token_chunks(t, tok), tok) for t in unseen_texts]
    truthful = sum(ok for ok, _, _ in shown) / len(shown)
    partial = sum(p for _, p, _ in shown) / max(sum(n for _, _, n in shown), 1)
    ids = [tok.encode(t) for t in unseen_texts]
    n_tokens = sum(map(len, ids))
    unseen_tpc = n_tokens / sum(map(len, unseen_texts))
    sample_tpc = len(tok.encode(text)) / len(text)
    single = sum(len(tok.token_bytes(i)) == 1 for row in ids for i in row) / n_tokens
    metrics.update({f"{name}/unseen_ids_match": match, f"{name}/unseen_tokens_per_char": unseen_tpc,
                    f"{name}/tokens_per_char": sample_tpc,
                    f"{name}/unseen_cost_ratio": unseen_tpc / sample_tpc,
                    f"{name}/unseen_single_byte_share": single, f"{name}/unseen_chunks_decode": truthful,
                    f"{name}/unseen_partial_share": partial})
    return [
        Finding.at_least(
            f"{name}: on {len(unseen_texts)} texts in scripts never seen in training, a tiktoken.Encoding "
            "built from its regex and ranks gives the same ids (share of texts)",
            f"{name}/unseen_ids_match", match, checks.min_unseen_ids_match),
        Finding.at_least(
            f"{name}: with no merges for unseen scripts, text falls back to bytes: tokens per character "
            "there over tokens per character of the sample text", f"{name}/unseen_cost_ratio",
            unseen_tpc / sample_tpc, checks.min_unseen_cost_ratio),
        Finding.at_least(
            f"{name}: on {len(unseen_texts)} texts in scripts never seen in training, the visualizer's chunks "
            f"join back to each text and every whole-character token shows exactly decode([id]) "
            f"({partial:.0%} of the tokens hold part of a character and are shown by their bytes; share of texts)",
            f"{name}/unseen_chunks_decode", truthful, checks.min_unseen_chunks_decode),
    ]


@dataclass(frozen=True)
class Inputs:
    """What :func:`run` reads.

    Attributes:
        text: the sample text (mix in rare words, digits, non-ASCII to make it interesting).
        tokenizers: ``{name: tokenizer}`` (anything :func:`token_chunks` accepts).
    """

    text: str
    tokenizers: Mapping[str, Any]


def run(cfg: TokenVizConfig, inputs: Inputs) -> list[ItemResult]:
    """The item: :func:`token_viz_item` of the sample text under every tokenizer.

    Args:
        cfg: the stage config (it sizes the sample, which the stage picks).
        inputs: the sample text and the tokenizers.

    Returns:
        ``[item 7]``.
    """
    return [token_viz_item(ITEMS[0], inputs.text, inputs.tokenizers, cfg.checks, cfg.unseen_texts)]
