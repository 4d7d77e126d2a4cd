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

* :func:`json_schema_regex` — a subset of JSON Schema. Supported:

  - ``type``: ``object``, ``array``, ``string``, ``integer``, ``number``, ``boolean``, ``null``, or a
    list of them (``["string", "null"]``: the alternatives, each with the keywords that apply to it);
  - ``enum`` and ``const``: any JSON values (written compactly), filtered by ``type`` if given;
  - ``anyOf``; ``oneOf`` compiled as ``anyOf`` once no string is shown to match two branches
    (otherwise an error, since such a string would break "exactly one");
  - local ``$ref``: ``#/$defs/...``, ``#/definitions/...``, any ``#/`` JSON pointer or ``#``; a
    recursive one is unrolled ``max_ref_depth`` levels (default 3), its innermost level leaving out
    what may be left out, and an error says so when nothing fits;
  - objects: ``properties`` in their given order, ``required`` ones always present, an optional
    property after a required one, ``additionalProperties`` absent or ``false``;
  - strings: ``minLength`` / ``maxLength`` (without ``maxLength``, at most
    ``max(minLength, max_string_length)`` characters, default 16) from a safe character set
    without quotes or backslashes; or ``pattern`` (Python ``re`` syntax as read by
    :mod:`.regex_automaton`, anchored by ``^`` / ``$`` or padded by up to ``max_string_length``
    safe characters on an unanchored side, its characters limited to printable ASCII without
    quote or backslash; not together with the length keywords);
  - arrays: ``items``, ``minItems`` / ``maxItems`` (without ``maxItems``, at most
    ``max(minItems, max_items)``, default 4);
  - ``integer`` (at most 6 digits) and ``number`` (the same, with 1-3 optional decimals), with
    ``minimum: 0`` (no sign) as their only bound;
  - annotations anywhere (``title``, ``description``, ``default``, ``examples``, ``$comment``,
    ``$schema``, ``$defs`` / ``definitions`` holders; ``$id`` at the root).

  Anything else (``allOf``, ``not``, ``if``, ``format``, ``maximum``, ``multipleOf``,
  ``patternProperties``, ``uniqueItems``, ``prefixItems``, remote ``$ref``, boolean schemas, ...)
  raises :class:`SchemaError` (a ``ValueError``) naming the keyword and its JSON path, rather than
  produce output that might not validate.
* :func:`xml_grammar_regex` — an :class:`XmlGrammar`: named elements, each with text content or
  a bounded number of child elements from a given set, nesting bounded by ``max_depth``.

Dimension legend: B batch of samples, T tokens, V vocabulary.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nlpcurriculum.decoding.regex_automaton import (
    DFA,
    MAX_CODEPOINT,
    MAX_REPEAT,
    CharSet,
    Node,
    RegexError,
    compile_regex,
    escape,
    parse,
)
from nlpcurriculum.nn.kv_cache import KVCache

__all__ = [
    "SchemaError",
    "TokenIndex",
    "XmlGrammar",
    "common_string",
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
# Characters a `pattern` may produce: printable ASCII that JSON writes as itself inside a string
# (no quote, no backslash). On these, ECMA-262, Python's re and our engine agree on . \d \w \s.
PATTERN_CHARS = CharSet.of([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7E)])
DEFAULT_MAX_STRING_LENGTH = 16
DEFAULT_MAX_ITEMS = 4
DEFAULT_MAX_REF_DEPTH = 3
_ANNOTATIONS = {"title", "description", "$comment", "default", "examples", "$schema", "deprecated",
                "readOnly", "writeOnly", "$defs", "definitions"}
_TYPE_KEYWORDS = {
    "object": {"properties", "required", "additionalProperties"},
    "string": {"minLength", "maxLength", "pattern"},
    "integer": {"minimum"},
    "number": {"minimum"},
    "boolean": set(),
    "null": set(),
    "array": {"items", "minItems", "maxItems"},
}
_COMBINATORS = ("anyOf", "oneOf")
_KNOWN = _ANNOTATIONS | {"type", "enum", "const", "$ref", *_COMBINATORS} | set().union(*_TYPE_KEYWORDS.values())


class SchemaError(ValueError):
    """A JSON Schema (or part of one) that :func:`json_schema_regex` cannot compile.

    The message starts with the JSON path of the offending subschema (``$`` the root, ``.name`` a
    property, ``[]`` array items, ``.anyOf[i]`` a branch, ``->#/$defs/x`` a followed ``$ref``).
    """


def json_schema_regex(
    schema: dict[str, Any],
    path: str = "$",
    *,
    max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_ref_depth: int = DEFAULT_MAX_REF_DEPTH,
) -> str:
    """A regex whose every match is compact JSON valid against ``schema``.

    The supported subset is listed in the module docstring. Bounds that JSON Schema leaves open
    are closed so that decoding stays short: a string without ``maxLength`` has at most
    ``max(minLength, max_string_length)`` characters, an array without ``maxItems`` at most
    ``max(minItems, max_items)`` items; an unanchored side of a ``pattern`` is padded with up to
    ``max_string_length`` characters. A recursive ``$ref`` is unrolled: one reference may be
    entered ``max_ref_depth`` times inside itself, and at the innermost level whatever would
    recurse again is left out where the schema allows (an optional property, an ``anyOf`` /
    ``oneOf`` branch, an array that may be empty).

    Args:
        schema: the JSON Schema (a dict).
        path: the JSON path named in errors for the root.
        max_string_length: the cap on strings without ``maxLength`` (and on pattern padding).
        max_items: the cap on arrays without ``maxItems``.
        max_ref_depth: how many times one ``$ref`` may be entered inside itself.

    Raises:
        SchemaError (a ValueError): an unsupported keyword, type or combination; a ``$ref`` that
            is not local or not found; a recursive ``$ref`` required at every level; ``oneOf``
            branches that share a string; a ``pattern`` our engine cannot read or that matches
            nothing. The message starts with the JSON path and names the keyword.
    """
    for name, value in (("max_string_length", max_string_length), ("max_items", max_items),
                        ("max_ref_depth", max_ref_depth)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    compiler = _SchemaCompiler(schema, max_string_length, max_items, max_ref_depth)
    if isinstance(schema, dict) and "$id" in schema:  # allowed at the root only
        schema = {k: v for k, v in schema.items() if k != "$id"}
    pattern = compiler.compile(schema, path, ())
    if pattern is None:
        raise SchemaError(f"{path}: recursive $ref {sorted(compiler.cut_refs)} is required at every level, so no "
                          f"instance fits within max_ref_depth={max_ref_depth} (a regular expression cannot nest "
                          "without bound)")
    return pattern


class _SchemaCompiler:
    """The recursive compiler behind :func:`json_schema_regex`.

    ``compile`` returns a regex, or ``None`` when no instance fits within ``max_ref_depth`` (only
    recursive ``$ref`` can cause that; the callers drop what they may and pass ``None`` up
    otherwise).
    """

    def __init__(self, root: Any, max_string_length: int, max_items: int, max_ref_depth: int) -> None:
        self.root = root
        self.max_string_length, self.max_items, self.max_ref_depth = max_string_length, max_items, max_ref_depth
        self.cut_refs: set[str] = set()  # references left out at max_ref_depth

    def compile(self, schema: Any, path: str, refs: tuple[str, ...]) -> str | None:
        if isinstance(schema, bool):
            raise SchemaError(f"{path}: boolean schema {str(schema).lower()} is not supported (give a type)")
        if not isinstance(schema, dict):
            raise SchemaError(f"{path}: a schema must be an object, got {schema!r}")
        unknown = sorted(set(schema) - _KNOWN)
        if unknown:
            raise SchemaError(f"{path}: unsupported keyword(s) {unknown}")
        if "$ref" in schema:
            self._only(schema, {"$ref"}, path, "$ref")
            return self._ref(schema["$ref"], path, refs)
        combinators = [k for k in _COMBINATORS if k in schema]
        if combinators:
            self._only(schema, set(combinators), path, combinators[0])
            return self._any_of(schema, combinators, path, refs)
        if "enum" in schema or "const" in schema:
            return self._values(schema, path)
        if "type" not in schema:
            raise SchemaError(f"{path}: no 'type', 'enum', 'const', 'anyOf', 'oneOf' or '$ref' "
                              f"(keywords {sorted(schema)}): the values cannot be bounded")
        types = self._types(schema, path)
        allowed = _ANNOTATIONS | {"type"} | set().union(*(_TYPE_KEYWORDS[t] for t in types))
        self._check_keywords(schema, allowed, path, f"type {schema['type']!r}")
        options = [self._typed(t, schema, path, refs) for t in types]
        kept = [o for o in options if o is not None]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else "(" + "|".join(kept) + ")"

    # -- keyword checks

    @staticmethod
    def _check_keywords(schema: dict, allowed: set[str], path: str, what: str) -> None:
        extra = sorted(set(schema) - allowed)
        if extra:
            raise SchemaError(f"{path}: unsupported keyword(s) {extra} for {what}")

    def _only(self, schema: dict, keys: set[str], path: str, what: str) -> None:
        """``what`` must come alone (with annotations): its siblings would narrow it (allOf)."""
        self._check_keywords(schema, _ANNOTATIONS | keys, path, f"{what} (only annotations may sit beside it)")

    @staticmethod
    def _types(schema: dict, path: str) -> list[str]:
        raw = schema["type"]
        types = [raw] if isinstance(raw, str) else raw
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            raise SchemaError(f"{path}: 'type' must be a type name or a non-empty list of them, got {raw!r}")
        unknown = [t for t in types if t not in _TYPE_KEYWORDS]
        if unknown:
            raise SchemaError(f"{path}: unsupported type(s) {unknown} (supported: {sorted(_TYPE_KEYWORDS)})")
        if len(set(types)) != len(types):
            raise SchemaError(f"{path}: 'type' lists a type twice: {types}")
        return types

    # -- $ref, anyOf / oneOf, enum / const

    def _ref(self, ref: Any, path: str, refs: tuple[str, ...]) -> str | None:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise SchemaError(f"{path}: $ref {ref!r} is not local (only '#' and '#/...' JSON pointers)")
        if refs.count(ref) >= self.max_ref_depth:
            self.cut_refs.add(ref)
            return None  # recursion reached max_ref_depth: no instance at this level
        target: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise SchemaError(f"{path}: $ref {ref!r} not found (no {key!r})")
        if ref == "#" and isinstance(target, dict):
            target = {k: v for k, v in target.items() if k != "$id"}
        return self.compile(target, f"{path}->{ref}", refs + (ref,))

    def _any_of(self, schema: dict, combinators: list[str], path: str, refs: tuple[str, ...]) -> str | None:
        if len(combinators) > 1:
            raise SchemaError(f"{path}: anyOf and oneOf together are not supported")
        key = combinators[0]
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise SchemaError(f"{path}: {key} must be a non-empty list of schemas")
        compiled = [(i, self.compile(b, f"{path}.{key}[{i}]", refs)) for i, b in enumerate(branches)]
        kept = [(i, p) for i, p in compiled if p is not None]
        if not kept:
            return None
        if key == "oneOf":
            _check_disjoint(kept, f"{path}.oneOf")
        return "(" + "|".join(p for _, p in kept) + ")"

    def _values(self, schema: dict, path: str) -> str:
        if "enum" in schema and "const" in schema:
            raise SchemaError(f"{path}: enum and const together are not supported")
        key = "enum" if "enum" in schema else "const"
        self._check_keywords(schema, _ANNOTATIONS | {key, "type"}, path, key)
        values = schema["enum"] if key == "enum" else [schema["const"]]
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{path}: enum must be a non-empty list")
        if "type" in schema:
            types = self._types(schema, path)
            values = [v for v in values if any(_json_type_matches(v, t) for t in types)]
            if not values:
                raise SchemaError(f"{path}: no {key} value has type {schema['type']!r}")
        texts = []
        for v in values:
            try:
                texts.append(json.dumps(v, separators=(",", ":"), allow_nan=False))
            except (TypeError, ValueError) as e:
                raise SchemaError(f"{path}: {key} value {v!r} is not JSON ({e})") from None
        return "(" + "|".join(escape(t) for t in dict.fromkeys(texts)) + ")"

    # -- one type

    def _typed(self, kind: str, schema: dict, path: str, refs: tuple[str, ...]) -> str | None:
        if kind == "null":
            return "null"
        if kind == "boolean":
            return "(true|false)"
        if kind in ("integer", "number"):
            return self._number(kind, schema, path)
        if kind == "string":
            return self._string(schema, path)
        if kind == "array":
            return self._array(schema, path, refs)
        return self._object(schema, path, refs)

    @staticmethod
    def _number(kind: str, schema: dict, path: str) -> str:
        if "minimum" in schema and schema["minimum"] not in (0, 0.0):
            raise SchemaError(f"{path}: only minimum 0 is supported, got {schema['minimum']}")
        sign = "" if "minimum" in schema else "-?"
        frac = r"(\.[0-9]{1,3})?" if kind == "number" else ""
        return f"{sign}{_INT}{frac}"

    def _bounds(self, schema: dict, path: str, lo_key: str, hi_key: str, cap: int) -> tuple[int, int]:
        lo, hi = schema.get(lo_key, 0), schema.get(hi_key)
        for key, value in ((lo_key, lo), (hi_key, hi)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SchemaError(f"{path}: {key} must be a non-negative integer, got {value!r}")
        hi = max(lo, cap) if hi is None else hi
        if lo > hi:
            raise SchemaError(f"{path}: need {lo_key} <= {hi_key}, got {lo} > {hi}")
        if hi > MAX_REPEAT:
            raise SchemaError(f"{path}: {hi_key} {hi} is above {MAX_REPEAT}, the engine's largest repeat")
        return lo, hi

    def _string(self, schema: dict, path: str) -> str:
        if "pattern" in schema:
            if "minLength" in schema or "maxLength" in schema:
                raise SchemaError(f"{path}: pattern together with minLength/maxLength is not supported")
            return '"' + _pattern_regex(schema["pattern"], self.max_string_length, path) + '"'
        lo, hi = self._bounds(schema, path, "minLength", "maxLength", self.max_string_length)
        return f'"{SAFE_CHARS}{{{lo},{hi}}}"'

    def _array(self, schema: dict, path: str, refs: tuple[str, ...]) -> str | None:
        lo, hi = self._bounds(schema, path, "minItems", "maxItems", self.max_items)
        if "items" not in schema:
            raise SchemaError(f"{path}: an array needs 'items' (a schema)")
        item = self.compile(schema["items"], path + "[]", refs)
        if item is None or hi == 0:
            return r"\[\]" if lo == 0 else None
        body = f"{item}(,{item}){{{max(lo - 1, 0)},{hi - 1}}}"
        return rf"\[{body}\]" if lo >= 1 else rf"\[({body})?\]"

    def _object(self, schema: dict, path: str, refs: tuple[str, ...]) -> str | None:
        if schema.get("additionalProperties", False) is not False:
            raise SchemaError(f"{path}: additionalProperties must be false (we never emit extra keys)")
        props = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(props, dict) or not isinstance(required, list):
            raise SchemaError(f"{path}: properties must be an object and required a list")
        unknown = set(required) - set(props)
        if unknown:
            raise SchemaError(f"{path}: required names unknown properties {sorted(unknown)}")
        parts, seen_required = [], False
        for name, sub in props.items():
            value = self.compile(sub, f"{path}.{name}", refs)
            if value is None and name in required:
                return None
            if value is None:
                continue  # an optional property with no instance at this depth: never emitted
            pair = escape(json.dumps(name)) + ":" + value
            if name in required:
                parts.append(("," if parts else "") + pair)
                seen_required = True
            elif seen_required:
                parts.append(f"(,{pair})?")
            else:
                raise SchemaError(f"{path}.{name}: an optional property must follow a required one")
        return r"\{" + "".join(parts) + r"\}"


def _json_type_matches(value: Any, kind: str) -> bool:
    """Whether a JSON value is of a JSON Schema type (integers include 2.0; booleans are not numbers)."""
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float))
    return isinstance(value, {"string": str, "array": list, "object": dict}[kind])


def _pattern_regex(pattern: Any, pad: int, path: str) -> str:
    """A JSON Schema ``pattern`` as the regex of a string's content (between the quotes).

    JSON Schema patterns match anywhere (a search): a side without an anchor (``^`` first, ``$``
    last) is padded with up to ``pad`` characters of :data:`SAFE_CHARS`. Every character class of
    the pattern is narrowed to :data:`PATTERN_CHARS`. Anything our engine does not read
    (look-around, back-references, ``\\b``, flags, ``\\u`` escapes, inner anchors) is refused.
    """
    if not isinstance(pattern, str):
        raise SchemaError(f"{path}: pattern must be a string, got {pattern!r}")
    start_anchored = pattern.startswith("^")
    body = pattern[1:] if start_anchored else pattern
    # a final "$" is an anchor unless escaped (an odd number of backslashes before it)
    end_anchored = body.endswith("$") and (len(body) - 1 - len(body[:-1].rstrip("\\"))) % 2 == 0
    if end_anchored:
        body = body[:-1]
    try:
        tree = parse(body)
    except RegexError as e:
        raise SchemaError(f"{path}: pattern {pattern!r} uses syntax our regex engine does not support: {e}") from None
    if (start_anchored or end_anchored) and _has_top_level_bar(body):
        raise SchemaError(f"{path}: pattern {pattern!r}: an anchor beside a top-level '|' binds to one "
                          "alternative only; group the alternatives, e.g. ^(a|b)$")
    core = _node_regex(tree)
    if compile_regex(core).start < 0:
        raise SchemaError(f"{path}: pattern {pattern!r} matches no string of printable ASCII without "
                          'quotes or backslashes (the characters a pattern may produce here)')
    head = "" if start_anchored else f"{SAFE_CHARS}{{0,{pad}}}"
    tail = "" if end_anchored else f"{SAFE_CHARS}{{0,{pad}}}"
    return f"{head}(?:{core}){tail}"


def _has_top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside every group and character class."""
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":  # a leading ] is literal
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
        i += 1
    return False


def _node_regex(node: Node) -> str:
    """Write a syntax tree back as a pattern, every character class narrowed to PATTERN_CHARS."""
    if node.kind == "set":
        return _class_regex(_intersect(node.charset, PATTERN_CHARS))
    if node.kind == "empty":
        return "(?:)"
    if node.kind == "cat":
        return "".join(f"(?:{_node_regex(c)})" if c.kind == "alt" else _node_regex(c) for c in node.children)
    if node.kind == "alt":
        return "|".join(_node_regex(c) for c in node.children)
    hi = "" if node.hi is None else str(node.hi)
    return f"(?:{_node_regex(node.children[0])}){{{node.lo},{hi}}}"


def _intersect(a: CharSet, b: CharSet) -> CharSet:
    out = []
    for lo1, hi1 in a.ranges:
        for lo2, hi2 in b.ranges:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo <= hi:
                out.append((lo, hi))
    return CharSet.of(out)


def _class_regex(cs: CharSet) -> str:
    """A character class for a set of printable ASCII code points (``[^\\s\\S]`` when empty)."""
    if not cs.ranges:
        return r"[^\s\S]"

    def char(cp: int) -> str:
        c = chr(cp)
        return "\\" + c if c in "\\]^-[" else c

    return "[" + "".join(char(lo) if lo == hi else f"{char(lo)}-{char(hi)}" for lo, hi in cs.ranges) + "]"


def _check_disjoint(branches: list[tuple[int, str]], path: str) -> None:
    """Raise if two oneOf branches share a string (then that string would fail "exactly one")."""
    dfas = [(i, compile_regex(p)) for i, p in branches]
    for (i, a), (j, b) in itertools.combinations(dfas, 2):
        example = common_string(a, b)
        if example is not None:
            raise SchemaError(f"{path}: branches {i} and {j} both match {example!r}; oneOf needs exactly one "
                              "match (use anyOf, or make the branches disjoint)")


def common_string(a: DFA, b: DFA, max_pairs: int = 200_000) -> str | None:
    """A shortest string both DFAs accept, or ``None`` if their languages are disjoint.

    Breadth-first search over pairs of states (the product automaton), stepping on the
    intersections of the two alphabet partitions' intervals.
    """
    if a.start < 0 or b.start < 0:
        return None

    def intervals(dfa: DFA, state: int) -> list[tuple[int, int, int]]:
        ends = dfa.bounds[1:] + [MAX_CODEPOINT + 1]
        return [(dfa.bounds[k], ends[k] - 1, t) for k, t in dfa.trans[state].items()]

    start = (a.start, b.start)
    came: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = [start]
    for pair in queue:  # the queue grows while it is read: breadth first
        sa, sb = pair
        if sa in a.accepting and sb in b.accepting:
            chars = []
            while came[pair] is not None:
                pair, ch = came[pair]
                chars.append(ch)
            return "".join(reversed(chars))
        for lo1, hi1, ta in intervals(a, sa):
            for lo2, hi2, tb in intervals(b, sb):
                lo = max(lo1, lo2)
                if lo <= min(hi1, hi2) and (ta, tb) not in came:
                    came[(ta, tb)] = (pair, chr(lo))
                    queue.append((ta, tb))
        if len(came) > max_pairs:
            raise SchemaError(f"the oneOf overlap check needs more than {max_pairs} state pairs")
    return None


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
