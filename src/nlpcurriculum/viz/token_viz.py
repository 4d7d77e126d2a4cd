"""Token visualizer: which chunk of the text became which id, for one or several tokenizers.

The curriculum item "token visualizer to map words/chunks to IDs" (compare the tiktokenizer web
app). Given a text and a tokenizer, :func:`token_chunks` returns one :class:`TokenChunk` per id:
the span of the *original text* that the token covers, as character offsets. The renderers colour
those spans: :func:`render_html` (a self-contained page, inline CSS, no script, several tokenizers
side by side with token counts) and :func:`render_terminal` (ANSI background colours).

How spans are found (the alignment problem). A tokenizer returns ids; the visualizer must find
where each id's text sits in the input. Three cases, tried in order:

1. **Offsets from the tokenizer.** HuggingFace ``tokenizers`` returns an ``Encoding`` with
   ``.offsets`` (character spans); they are used as given.
2. **Byte-level tokenizers** (byte-level BPE, tiktoken): each id's exact bytes are known
   (``token_bytes`` / ``decode_single_token_bytes``) and their concatenation *is* the UTF-8 text.
   Byte offsets are cumulative lengths; a character belongs to the token holding its **last**
   byte. A token holding only the first bytes of a character (``"你"`` = ``e4 bd a0`` split as
   ``[e4 bd][a0]``) therefore gets an empty span, and both are *shown* by their bytes
   (``\\xe4\\xbd``, ``\\xa0``) rather than pretending either one is the character. The spans
   always tile the text, so joining the chunk texts gives the input back exactly.
3. **Piece-string tokenizers** (SentencePiece ``▁word``, WordPiece ``##ing``, ``<0xE4>`` byte
   fallback): each piece is mapped back to surface text (``▁`` -> space, ``##`` dropped, byte pieces
   decoded) and matched left to right against the input, case-insensitively, skipping whitespace
   the tokenizer dropped. A piece that does not match (``[UNK]``, ``[CLS]``) takes the text up to
   where the next piece matches. Skipped text is attached to the following token, so the spans again
   tile the input.

Hand-worked example (byte level): text ``"hi 你"`` (bytes ``68 69 20 e4 bd a0``), tokens
``[68 69][20 e4 bd][a0]``: cumulative byte ends 2, 5, 6; character ends (in bytes) 1, 2, 3, 6; so
the spans are chars ``[0, 2)`` "hi", ``[2, 3)`` " " (the space; its partial ``e4 bd`` shows as
bytes) and ``[3, 4)`` "你".

Left out: GPT-2-style printable-byte pieces (``"Ġthe"``) from ``transformers`` slow tokenizers; pass
a fast tokenizer's ``backend_tokenizer`` instead, whose offsets are used (case 1). Also left out:
interactivity (the page has no JavaScript; ids show below each token and on hover) and
normalisation-aware alignment beyond case (accent-stripping tokenizers fall back to case 3's gap rule).
"""

from __future__ import annotations

import codecs
import html
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Callable, NamedTuple, Sequence

import regex

__all__ = ["TokenChunk", "FunctionTokenizer", "token_chunks", "token_label", "render_html", "render_terminal"]


class TokenChunk(NamedTuple):
    """One token mapped back onto the input text.

    Attributes:
        text: ``input[start:end]``, the part of the input this token covers ("" for a token that
            holds only the leading bytes of a character, or a special token like ``[CLS]``).
        id: the token id.
        start: start character offset in the input.
        end: end character offset (exclusive).
    """

    text: str
    id: int
    start: int
    end: int


@dataclass
class FunctionTokenizer:
    """Adapter for anything with an encode function and a per-id text function.

    Args:
        encode: ``text -> list[int]``.
        piece: ``id -> bytes`` (exact token bytes) or ``id -> str`` (a piece such as ``"▁the"``).
    """

    encode: Callable[[str], Sequence[int]]
    piece: Callable[[int], bytes | str]


_BYTE_PIECE = regex.compile(r"<0x([0-9A-Fa-f]{2})>")


def _piece_function(tok: Any) -> Callable[[int], bytes | str]:
    """Find the most exact per-id text function the tokenizer offers (bytes before strings)."""
    if isinstance(tok, FunctionTokenizer):
        return tok.piece
    for name in ("token_bytes", "decode_single_token_bytes"):  # ours; tiktoken
        if callable(getattr(tok, name, None)):
            return getattr(tok, name)
    for name in ("id_to_piece", "id_to_token", "convert_ids_to_tokens"):  # sentencepiece; ours/HF
        fn = getattr(tok, name, None)
        if callable(fn):
            return lambda i, fn=fn: fn(int(i))
    if callable(getattr(tok, "decode", None)):
        return lambda i: tok.decode([i])
    raise TypeError(f"{type(tok).__name__} has no per-id text function (token_bytes, "
                    "decode_single_token_bytes, id_to_piece, id_to_token or decode); wrap it in "
                    "FunctionTokenizer(encode, piece)")


def _encode(tok: Any, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    if not callable(getattr(tok, "encode", None)):
        raise TypeError(f"{type(tok).__name__} has no encode(text) method")
    out = tok.encode(text)
    if hasattr(out, "ids") and hasattr(out, "offsets"):  # HuggingFace tokenizers.Encoding
        return [int(i) for i in out.ids], [tuple(o) for o in out.offsets]
    return [int(i) for i in out], None


def token_label(piece: bytes | str) -> str:
    """How a token's own content is shown: its text, with bytes that are not complete UTF-8
    characters written as ``\\xNN`` escapes (never silently replaced)."""
    if isinstance(piece, (bytes, bytearray)):
        return bytes(piece).decode("utf-8", errors="backslashreplace")
    return str(piece)


def _is_partial(piece: bytes | str) -> bool:
    """Whether a token is only part of a character: bytes that are not valid UTF-8 on their own,
    or a byte-fallback piece ``<0xNN>`` for a non-ASCII byte."""
    if isinstance(piece, (bytes, bytearray)):
        try:
            bytes(piece).decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    m = _BYTE_PIECE.fullmatch(piece)
    return bool(m) and int(m.group(1), 16) >= 0x80


def _char_ends_in_bytes(text: str) -> list[int]:
    """Byte offset just after each character: ``[len(utf8(text[:k+1])) for k]``."""
    return list(accumulate(len(ch.encode("utf-8")) for ch in text))


def _byte_aligned(text: str, ids: list[int], pieces: list[bytes]) -> list[TokenChunk]:
    char_ends = _char_ends_in_bytes(text)
    chunks = []
    byte_pos = 0
    start = 0
    for i, p in zip(ids, pieces):
        byte_pos += len(p)
        end = bisect_right(char_ends, byte_pos)  # characters whose last byte is inside [0, byte_pos)
        chunks.append(TokenChunk(text[start:end], i, start, end))
        start = end
    return chunks


def _surface_pieces(pieces: list[bytes | str]) -> list[str | None]:
    """Piece strings -> the surface text each one stands for; ``None`` for markers like ``[CLS]``.

    Byte-fallback runs (``<0xE4><0xBD><0xA0>``) are decoded together; the decoded character goes to
    the piece holding its last byte, the others get ``""`` (as in the byte-level case).
    """
    out: list[str | None] = []
    # An incremental decoder emits a character when its last byte arrives: exactly the rule
    # "a character belongs to the piece holding its last byte".
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    last_byte_piece: int | None = None

    def end_byte_run() -> None:
        nonlocal last_byte_piece
        if last_byte_piece is not None:  # a run ending mid-character: U+FFFD, on its last piece
            out[last_byte_piece] += decoder.decode(b"", final=True)  # type: ignore[operator]
            decoder.reset()
            last_byte_piece = None

    for p in pieces:
        if isinstance(p, (bytes, bytearray)):
            p = bytes(p).decode("utf-8", errors="replace")
        m = _BYTE_PIECE.fullmatch(p)
        if m:
            out.append(decoder.decode(bytes([int(m.group(1), 16)])))
            last_byte_piece = len(out) - 1
            continue
        end_byte_run()
        if regex.fullmatch(r"\[[A-Z]+\]|<[a-z/|_]+>|<\|[^|]+\|>", p):  # [CLS] <s> </s> <|endoftext|>
            out.append(None)
        elif p.startswith("##"):
            out.append(p[2:])
        else:
            out.append(p.replace("\u2581", " "))
    end_byte_run()
    return out


def _string_aligned(text: str, ids: list[int], pieces: list[bytes | str]) -> list[TokenChunk]:
    surfaces = _surface_pieces(pieces)
    # Lower-casing for uncased vocabularies; skipped when it changes lengths (offsets would drift).
    folded = text.lower() if len(text.lower()) == len(text) else text
    fold = (lambda x: x.lower()) if folded is not text else (lambda x: x)

    # 1. Find where each piece's surface text matches, left to right: (match start, match end).
    matches: list[tuple[int, int] | None] = []
    pos = 0
    for surface in surfaces:
        if not surface:  # a marker ([CLS]) or a leading partial byte piece
            matches.append(None)
            continue
        found = None
        for cand in dict.fromkeys((fold(surface), fold(surface).lstrip(" "))):
            # the dummy-prefix space of "▁Hello" may be absent at the start of the text
            if not cand:
                continue
            j = pos
            while j < len(text) and text[j].isspace() and not folded.startswith(cand, j):
                j += 1  # whitespace the tokenizer dropped (WordPiece) or collapsed
            if folded.startswith(cand, j):
                found = (j, j + len(cand))
                break
        if found is None and not surface.strip():
            found = (pos, pos)  # a lone dummy-prefix "▁" with no space in the text: zero width
        if found is None:  # an unknown/normalised piece left a gap: look further ahead
            cand = fold(surface).strip()
            j = folded.find(cand, pos)
            if j >= 0:
                found = (j, j + len(cand))
        matches.append(found)
        if found is not None:
            pos = found[1]

    # 2. Make the spans tile the text: skipped text goes to the next matched token, or to the
    #    first unmatched token ([UNK]) waiting before it; what is left at the end to the last token.
    spans: list[tuple[int, int]] = []
    cursor = 0
    pending: list[int] = []
    for k, m in enumerate(matches):
        if m is None:
            pending.append(k)
            spans.append((cursor, cursor))
            continue
        if pending:
            spans[pending[0]] = (cursor, m[0])
            for q in pending[1:]:
                spans[q] = (m[0], m[0])
            cursor = m[0]
            pending = []
        spans.append((cursor, m[1]))
        cursor = m[1]
    if pending:
        spans[pending[0]] = (cursor, len(text))
        for q in pending[1:]:
            spans[q] = (len(text), len(text))
        cursor = len(text)
    if spans and cursor < len(text):
        s0, _ = spans[-1]
        spans[-1] = (s0, len(text))
    return [TokenChunk(text[s:e], i, s, e) for i, (s, e) in zip(ids, spans)]


def token_chunks(text: str, tok: Any) -> list[TokenChunk]:
    """Map each token id of ``tok.encode(text)`` to the span of ``text`` it covers.

    Args:
        text: the input.
        tok: any object with ``encode(text)`` (returning ids, or a HuggingFace ``Encoding``) and a
            per-id text function: ``token_bytes`` (this package's byte-level BPE),
            ``decode_single_token_bytes`` (tiktoken), ``id_to_piece`` (sentencepiece),
            ``id_to_token`` (this package, HuggingFace); or a :class:`FunctionTokenizer`.

    Returns:
        One :class:`TokenChunk` per id, in order; ``[c.id for c in chunks] == encode(text)``. For
        byte-level and piece-string tokenizers the spans tile the text, so
        ``"".join(c.text for c in chunks) == text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    ids, offsets = _encode(tok, text)
    if offsets is not None:
        return [TokenChunk(text[s:e], i, s, e) for i, (s, e) in zip(ids, offsets)]
    piece = _piece_function(tok)
    pieces = [piece(i) for i in ids]
    if pieces and all(isinstance(p, (bytes, bytearray)) for p in pieces):
        if b"".join(pieces) == text.encode("utf-8"):
            return _byte_aligned(text, ids, [bytes(p) for p in pieces])
    elif not pieces:
        return []
    return _string_aligned(text, ids, pieces)


# ------------------------------------------------------------------------------ rendering
_HTML_COLOURS = ("#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad")
_ANSI_COLOURS = (223, 157, 159, 183, 225, 229, 153, 217)  # xterm-256 pastels, dark text on top

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.summary { border-collapse: collapse; margin-bottom: 1em; }
table.summary td, table.summary th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
table.summary td:first-child, table.summary th:first-child { text-align: left; }
.grid { display: grid; gap: 1em; align-items: start; }
section { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em; min-width: 0; }
h2 { font-size: 1em; margin: 0 0 0.5em 0; }
h2 .n { font-weight: normal; color: #666; }
.toks { line-height: 1.1; font-family: ui-monospace, monospace; font-size: 0.9em; }
.tok { display: inline-block; vertical-align: top; margin: 0 1px 4px 0; border-radius: 3px;
       max-width: 100%; }
.tok .t { display: block; white-space: pre-wrap; overflow-wrap: anywhere; padding: 1px 2px; }
.tok .i { display: block; font-size: 0.7em; color: #555; text-align: center; padding: 0 2px; }
.tok.partial .t { border: 1px dashed #c00; color: #900; }
.nl { color: #999; }
details pre { white-space: pre-wrap; word-break: break-all; font-size: 0.8em; }
""" + "".join(f".c{k} {{ background: {c}; }}\n" for k, c in enumerate(_HTML_COLOURS))


def _display(chunk: TokenChunk, piece: bytes | str) -> tuple[str, bool]:
    """What to print for a token: its span of the input, or its own bytes when it is partial."""
    if _is_partial(piece) or (chunk.start == chunk.end):
        return token_label(piece), _is_partial(piece)
    return chunk.text, False


def _rows(text: str, tok: Any) -> tuple[list[TokenChunk], list[bytes | str]]:
    chunks = token_chunks(text, tok)
    try:
        piece = _piece_function(tok)
        pieces = [piece(c.id) for c in chunks]
    except TypeError:  # offsets-only tokenizers: show the span text
        pieces = [c.text for c in chunks]
    return chunks, pieces


def render_html(text: str, tokenizers: dict[str, Any], title: str = "Token visualizer") -> str:
    """A self-contained HTML page showing how each tokenizer cuts ``text``.

    One column per tokenizer, side by side, each token a coloured box with its id below and its
    id, piece and character span on hover (``title``); a summary table gives token counts and
    characters/bytes per token. All text is HTML-escaped; the page has inline CSS only, no
    scripts and no external resources.

    Args:
        text: the input text.
        tokenizers: ``{display name: tokenizer}`` (see :func:`token_chunks` for what works).
        title: page title.
    """
    if not tokenizers:
        raise ValueError("need at least one tokenizer")
    esc = lambda s: html.escape(s, quote=True)  # noqa: E731
    n_bytes = len(text.encode("utf-8"))
    summary = []
    columns = []
    for name, tok in tokenizers.items():
        chunks, pieces = _rows(text, tok)
        n = len(chunks)
        summary.append(
            f"<tr><td>{esc(name)}</td><td>{n}</td><td>{len(text) / n if n else 0:.2f}</td>"
            f"<td>{n_bytes / n if n else 0:.2f}</td></tr>"
        )
        spans = []
        for k, (c, p) in enumerate(zip(chunks, pieces)):
            shown, partial = _display(c, p)
            visible = esc(shown).replace("\n", '<span class="nl">\u21b5</span>').replace("\t", "\u2192")
            label = token_label(p).replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            hover = esc(f"id {c.id} | piece '{label}' | chars {c.start}-{c.end}")
            cls = f"tok c{k % len(_HTML_COLOURS)}" + (" partial" if partial else "")
            spans.append(f'<span class="{cls}" title="{hover}"><span class="t">{visible}</span>'
                         f'<span class="i">{c.id}</span></span>')
            if c.text.endswith("\n"):
                spans.append("<br>")
        ids = esc(str([c.id for c in chunks]))
        columns.append(
            f'<section><h2>{esc(name)} <span class="n">({n} tokens)</span></h2>'
            f'<div class="toks">{"".join(spans)}</div>'
            f"<details><summary>ids</summary><pre>{ids}</pre></details></section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>{len(text)} characters, {n_bytes} UTF-8 bytes.</p>"
        "<table class=\"summary\"><tr><th>tokenizer</th><th>tokens</th><th>chars/token</th>"
        f"<th>bytes/token</th></tr>{''.join(summary)}</table>"
        f'<div class="grid" style="grid-template-columns: repeat({len(tokenizers)}, minmax(0, 1fr))">'
        f"{''.join(columns)}</div></body></html>\n"
    )


def render_terminal(text: str, tok: Any, color: bool = True, show_ids: bool = True) -> str:
    """The tokens of ``text`` for a terminal: ANSI background colours, then the ids.

    Tokens alternate through 8 background colours (256-colour codes); newlines show as ``↵`` and
    break the line; a partial-UTF-8 token shows its ``\\xNN`` bytes. With ``color=False`` tokens
    are separated by ``|`` instead. The last line lists the ids in the same colours.

    Returns:
        The string to print (ends with a newline).
    """
    chunks, pieces = _rows(text, tok)
    reset = "\x1b[0m"

    def paint(s: str, k: int) -> str:
        if not color:
            return s
        return f"\x1b[48;5;{_ANSI_COLOURS[k % len(_ANSI_COLOURS)]}m\x1b[38;5;16m{s}{reset}"

    out = []
    for k, (c, p) in enumerate(zip(chunks, pieces)):
        shown, _ = _display(c, p)
        *full_lines, last = shown.split("\n")
        for line in full_lines:  # close the colour before each newline so it does not bleed
            out.append(paint(line + "\u21b5", k) + "\n")
        if last:
            out.append(paint(last, k))
        if not color and k < len(chunks) - 1:
            out.append("|")
    body = "".join(out)
    lines = [f"{len(chunks)} tokens, {len(text)} characters", body]
    if show_ids:
        lines.append(" ".join(paint(str(c.id), k) for k, c in enumerate(chunks)))
    return "\n".join(lines) + "\n"
