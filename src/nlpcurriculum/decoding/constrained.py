"""Constrained decoding: a DFA over characters, lifted to a token-level mask over the vocabulary.

A constraint is a regular language (a regex, or a JSON schema / XML grammar compiled to one;
:mod:`nlpcurriculum.decoding.regex_automaton` compiles it to a trimmed DFA). Decoding keeps the
DFA state of the text generated so far. At each step the logits of every token whose text would
walk the DFA into a dead end are set to ``-inf``, and the end-of-text token is allowed only in an
accepting state. The allowed set of a state is computed once, when the state is first reached,
and cached (the "index" of Willard & Louf 2023, "Efficient Guided Generation for Large Language
Models", arXiv:2307.09702, built lazily here). Every sequence the decoder can emit is then in the
language; since the DFA is trimmed, no step can leave the decoder without an allowed token.

The token texts come from the tokenizer's decode of each id. Byte-level BPE has ids whose bytes
are not valid UTF-8 on their own (pieces of a multi-byte character; they decode to U+FFFD): those
are *excluded* from the index (documented choice; every pattern here is ASCII, so no accepted
string needs them), as are special tokens (the end-of-text token is handled separately). The
concatenation of valid-UTF-8 tokens decodes to the concatenation of their texts, so the DFA walk
over token texts is the walk over the decoded output.

To walk the vocabulary fast, the token texts are stored in a character trie; computing a state's
allowed set walks the trie and the DFA together and abandons a branch as soon as the DFA dies, so
most of the vocabulary is never touched.

Schema compilers (compact output, no optional whitespace):

* :func:`json_schema_regex` — a subset of JSON Schema: ``object`` (``properties`` in their given
  order; ``required`` ones always present; an optional property must come after a required one),
  ``string`` (``minLength``/``maxLength``, default at most 16, characters from a safe set without
  quotes or backslashes), ``integer`` (at most 6 digits; no sign when ``minimum >= 0``),
  ``number`` (same integer part, optional 1-3 decimals), ``boolean``, ``enum`` (of strings, numbers
  or booleans), ``array`` (``items`` of any of those, ``minItems``/``maxItems``, default at most 4),
  nested objects. Anything else raises ``ValueError`` rather than produce output that might not
  validate.
* :func:`xml_grammar_regex` — an :class:`XmlGrammar`: named elements, each with text content or
  a bounded number of child elements from a given set, nesting bounded by ``max_depth``.

Dimension legend: B batch of samples, T tokens, V vocabulary.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nlpcurriculum.decoding.regex_automaton import DFA, compile_regex, escape
from nlpcurriculum.nn.kv_cache import KVCache

__all__ = [
    "TokenIndex",
    "XmlGrammar",
    "constrained_sample",
    "ms_per_row_step",
    "json_schema_regex",
    "validate_xml",
    "xml_grammar_regex",
]

SAFE_CHARS = r"[a-zA-Z0-9 _.,\-]"  # string content: no quote, backslash, < > & or control chars
TEXT_CHARS = r"[a-zA-Z0-9 _.,\-]"


# --- the token-level index ---------------------------------------------------------------------


class TokenIndex:
    """For each DFA state, the token ids whose text keeps the DFA alive (lazy, cached).

    Args:
        dfa: a trimmed DFA (:func:`~nlpcurriculum.decoding.regex_automaton.compile_regex`).
        token_texts: ``token_texts[i]`` is the text of id ``i``, or ``None`` for ids that may never
            be emitted as text (special tokens, bytes that are not valid UTF-8 on their own).
        eos_id: the end-of-text id, allowed exactly in accepting states.
    """

    def __init__(self, dfa: DFA, token_texts: Sequence[str | None], eos_id: int) -> None:
        if dfa.start < 0:
            raise ValueError(f"pattern {dfa.pattern!r} matches nothing")
        if not 0 <= eos_id < len(token_texts):
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary of {len(token_texts)}")
        self.dfa, self.eos_id, self.vocab_size = dfa, eos_id, len(token_texts)
        self.texts = list(token_texts)
        # a character trie: node = (children dict, token ids ending here)
        self._trie: tuple[dict, list[int]] = ({}, [])
        for i, text in enumerate(token_texts):
            if not text or i == eos_id:
                continue
            node = self._trie
            for ch in text:
                node = node[0].setdefault(ch, ({}, []))
            node[1].append(i)
        self._allowed: dict[int, tuple[Tensor, dict[int, int]]] = {}
        self._masks: dict[int, Tensor] = {}
        self.build_seconds = 0.0

    def mask(self, state: int) -> Tensor:
        """Additive logit mask ``(V,)`` of a state: 0 for allowed ids, ``-inf`` elsewhere (cached)."""
        row = self._masks.get(state)
        if row is None:
            ids, _ = self.allowed(state)
            t0 = time.perf_counter()
            row = torch.full((self.vocab_size,), float("-inf"))
            row[ids] = 0.0
            self._masks[state] = row
            self.build_seconds += time.perf_counter() - t0
        return row

    def allowed(self, state: int) -> tuple[Tensor, dict[int, int]]:
        """``(ids, next_state)`` for a DFA state: allowed ids as a tensor, and where each leads."""
        hit = self._allowed.get(state)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        nxt: dict[int, int] = {}
        stack = [(self._trie, state)]
        while stack:
            (children, ids), s = stack.pop()
            for i in ids:
                nxt[i] = s
            for ch, child in children.items():
                s2 = self.dfa.step(s, ch)
                if s2 >= 0:
                    stack.append((child, s2))
        if state in self.dfa.accepting:
            nxt[self.eos_id] = state
        ids = torch.tensor(sorted(nxt), dtype=torch.long)
        self._allowed[state] = (ids, nxt)
        self.build_seconds += time.perf_counter() - t0
        return ids, nxt

    @property
    def states_indexed(self) -> int:
        return len(self._allowed)


def token_texts(decode: Callable[[list[int]], str], vocab_size: int,
                special_ids: Sequence[int] = ()) -> list[str | None]:
    """Each id's text from ``decode([id])``; ``None`` for special ids and for ids that decode to
    U+FFFD (bytes that are not valid UTF-8 on their own)."""
    out: list[str | None] = []
    special = set(special_ids)
    for i in range(vocab_size):
        text = None if i in special else decode([i])
        out.append(None if text is None or "\ufffd" in text or text == "" else text)
    return out


# --- constrained sampling ----------------------------------------------------------------------


@dataclass
class SampleBatch:
    """What :func:`constrained_sample` produced: per sample the new ids (without the final EOS),
    whether EOS ended it, and timing: wall seconds, tokens generated (EOS included), decoding
    steps run for the whole batch, batch rows, and seconds spent building / applying masks."""

    ids: list[list[int]]
    ended: list[bool]
    seconds: float
    tokens: int
    steps: int = 0
    rows: int = 0
    mask_seconds: float = 0.0


@torch.no_grad()
def constrained_sample(
    model: nn.Module,
    prompt: Sequence[int],
    n: int,
    max_new_tokens: int,
    eos_id: int,
    index: TokenIndex | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> SampleBatch:
    """Sample ``n`` continuations of one prompt in a batch with a KV cache, optionally constrained.

    Args:
        model: a MiniFormer (``kv_cache=`` forward).
        prompt: the prompt ids (shared by the whole batch).
        n: batch size (samples).
        max_new_tokens: steps at most (a sample without EOS by then is cut there).
        eos_id: the end-of-text id (ends a sample).
        index: the constraint; ``None`` samples unconstrained (the baseline).
        temperature: softmax temperature (> 0).
        generator: torch RNG for reproducible samples.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if n < 1 or max_new_tokens < 1 or not prompt:
        raise ValueError("n and max_new_tokens must be >= 1 and the prompt non-empty")
    model.eval()
    t0 = time.perf_counter()
    mask_time = 0.0
    cache = KVCache(len(model.blocks), capacity=len(prompt) + max_new_tokens)
    logits = model(torch.tensor([list(prompt)]), kv_cache=cache).logits[:, -1]  # (1, V)
    cache.reorder(torch.zeros(n, dtype=torch.long))  # one prefill, shared: copied to the batch
    logits = logits.expand(n, -1)  # (B, V)
    states = [index.dfa.start if index else 0] * n
    out: list[list[int]] = [[] for _ in range(n)]
    done = [False] * n
    ended = [False] * n
    tokens = steps = 0
    for _ in range(max_new_tokens):
        steps += 1
        scores = logits.float() / temperature  # (B, V)
        if index is not None:
            tm = time.perf_counter()
            scores = scores + torch.stack([index.mask(st) for st in states])  # (B, V)
            mask_time += time.perf_counter() - tm
        nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)  # (B, 1)
        picks = nxt[:, 0].tolist()
        for b, tok in enumerate(picks):
            if done[b]:
                continue
            tokens += 1
            if tok == eos_id:
                done[b] = ended[b] = True
                continue
            out[b].append(tok)
            if index is not None:
                tm = time.perf_counter()
                states[b] = index.allowed(states[b])[1][tok]
                mask_time += time.perf_counter() - tm
        if all(done):
            break
        logits = model(nxt, kv_cache=cache).logits[:, -1]  # (B, V); finished rows are ignored
    return SampleBatch(out, ended, time.perf_counter() - t0, tokens, steps, n, mask_time)


# --- JSON schema -> regex ----------------------------------------------------------------------

_INT = r"(0|[1-9][0-9]{0,5})"
_SUPPORTED = {
    "object": {"type", "properties", "required", "additionalProperties", "title", "description"},
    "string": {"type", "minLength", "maxLength", "title", "description"},
    "integer": {"type", "minimum", "title", "description"},
    "number": {"type", "minimum", "title", "description"},
    "boolean": {"type", "title", "description"},
    "array": {"type", "items", "minItems", "maxItems", "title", "description"},
    "enum": {"enum", "type", "title", "description"},
}


def json_schema_regex(schema: dict[str, Any], path: str = "$") -> str:
    """A regex whose every match is compact JSON valid against ``schema`` (the subset above).

    Raises:
        ValueError: an unsupported type or keyword (the message names its path).
    """
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: a schema must be an object, got {schema!r}")
    kind = "enum" if "enum" in schema else schema.get("type")
    if kind not in _SUPPORTED:
        raise ValueError(f"{path}: unsupported schema type {kind!r}")
    extra = set(schema) - _SUPPORTED[kind]
    if extra:
        raise ValueError(f"{path}: unsupported keyword(s) {sorted(extra)} for {kind}")
    if kind == "enum":
        values = schema["enum"]
        if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ValueError(f"{path}: enum must be a non-empty list of strings, numbers or booleans")
        return "(" + "|".join(escape(json.dumps(v)) for v in values) + ")"
    if kind == "string":
        lo, hi = int(schema.get("minLength", 0)), int(schema.get("maxLength", 16))
        if not 0 <= lo <= hi:
            raise ValueError(f"{path}: need 0 <= minLength <= maxLength, got {lo}, {hi}")
        return f'"{SAFE_CHARS}{{{lo},{hi}}}"'
    if kind in ("integer", "number"):
        sign = "" if schema.get("minimum", -1) >= 0 else "-?"
        if "minimum" in schema and schema["minimum"] not in (0, 0.0):
            raise ValueError(f"{path}: only minimum 0 is supported, got {schema['minimum']}")
        frac = r"(\.[0-9]{1,3})?" if kind == "number" else ""
        return f"{sign}{_INT}{frac}"
    if kind == "boolean":
        return "(true|false)"
    if kind == "array":
        lo, hi = int(schema.get("minItems", 0)), int(schema.get("maxItems", 4))
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f"{path}: need 0 <= minItems <= maxItems and maxItems >= 1")
        item = json_schema_regex(schema.get("items", {}), path + "[]")
        body = f"{item}(,{item}){{{max(lo - 1, 0)},{hi - 1}}}"
        return rf"\[{body}\]" if lo >= 1 else rf"\[({body})?\]"
    # object
    if schema.get("additionalProperties", False) is not False:
        raise ValueError(f"{path}: additionalProperties must be false (we never emit extra keys)")
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    unknown = required - set(props)
    if unknown:
        raise ValueError(f"{path}: required names unknown properties {sorted(unknown)}")
    parts, seen_required = [], False
    for name, sub in props.items():
        pair = escape(json.dumps(name)) + ":" + json_schema_regex(sub, f"{path}.{name}")
        if name in required:
            parts.append(("," if parts else "") + pair)
            seen_required = True
        elif seen_required:
            parts.append(f"(,{pair})?")
        else:
            raise ValueError(f"{path}.{name}: an optional property must follow a required one")
    return r"\{" + "".join(parts) + r"\}"


# --- XML grammar -> regex ----------------------------------------------------------------------


@dataclass
class XmlGrammar:
    """A tiny XML grammar: element tags with text content or child elements, bounded nesting.

    Attributes:
        root: the root element's tag.
        elements: tag -> ``"text"`` (text content) or a list of allowed child tags.
        min_children / max_children: how many child elements an element with children holds.
        max_text: longest text content (characters from a safe set, no ``< > &``).
        max_depth: deepest nesting (the root is depth 1); a recursive element stops there.
    """

    root: str
    elements: dict[str, Any]
    min_children: int = 1
    max_children: int = 3
    max_text: int = 12
    max_depth: int = 3

    def __post_init__(self) -> None:
        if self.root not in self.elements:
            raise ValueError(f"root {self.root!r} is not in elements")
        for tag, content in self.elements.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tag):
                raise ValueError(f"elements: bad tag name {tag!r}")
            if content != "text" and (not isinstance(content, list) or not content
                                      or any(c not in self.elements for c in content)):
                raise ValueError(f"elements.{tag} must be 'text' or a list of known tags")
        if not 0 <= self.min_children <= self.max_children or self.max_children < 1:
            raise ValueError("need 0 <= min_children <= max_children and max_children >= 1")
        if self.max_depth < 1 or self.max_text < 0:
            raise ValueError("max_depth must be >= 1 and max_text >= 0")


def xml_grammar_regex(grammar: XmlGrammar) -> str:
    """A regex for the grammar's documents (nesting unrolled up to ``max_depth``)."""

    def element(tag: str, depth: int) -> str | None:
        content = grammar.elements[tag]
        if content == "text":
            body = f"{TEXT_CHARS}{{0,{grammar.max_text}}}"
        else:
            if depth >= grammar.max_depth:
                return None
            kids = [k for k in (element(c, depth + 1) for c in content) if k is not None]
            if not kids:
                return None
            one = "(" + "|".join(kids) + ")"
            body = f"{one}{{{grammar.min_children},{grammar.max_children}}}"
        return f"<{tag}>{body}</{tag}>"

    pattern = element(grammar.root, 1)
    if pattern is None:
        raise ValueError("the grammar has no document within max_depth")
    return pattern


def validate_xml(text: str, grammar: XmlGrammar) -> tuple[bool, bool]:
    """``(parses, valid)``: well-formed XML per ``xml.etree.ElementTree``, and whether the tree
    obeys the grammar (tags, allowed children and their count, text-only leaves, depth)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return False, False

    def ok(el, depth: int) -> bool:
        content = grammar.elements.get(el.tag)
        if content is None or depth > grammar.max_depth or el.attrib:
            return False
        kids = list(el)
        if content == "text":
            return not kids and len(el.text or "") <= grammar.max_text
        if (el.text or "").strip() or any((k.tail or "").strip() for k in kids):
            return False
        return (grammar.min_children <= len(kids) <= grammar.max_children
                and all(k.tag in content and ok(k, depth + 1) for k in kids))

    return True, root.tag == grammar.root and ok(root, 1)


def ms_per_row_step(batches: Sequence[SampleBatch]) -> float:
    """Wall milliseconds per decoding step per batch row (one token position of one sample):
    the per-token cost at equal batch size and step count, whether or not a row had finished."""
    work = sum(b.steps * b.rows for b in batches)
    return 1000.0 * sum(b.seconds for b in batches) / work if work else math.nan
