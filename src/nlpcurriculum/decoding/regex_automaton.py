"""A regular-expression engine from scratch: parser -> Thompson NFA -> DFA (subset construction).

The pipeline is the textbook one (Thompson 1968, "Regular expression search algorithm", CACM 11(6);
Aho, Lam, Sethi & Ullman, "Compilers", 2nd ed., section 3.7):

1. :func:`parse` turns a pattern into a small syntax tree (:class:`Node`).
2. :func:`thompson` builds an epsilon-NFA with one fragment per tree node (concatenation,
   alternation, star, ...), every edge labelled with a :class:`CharSet` or epsilon.
3. :func:`compile_regex` runs the subset construction over an *alphabet partition*: the code-point
   axis is cut at every boundary of every char set in the pattern, so that each interval (a
   "symbol") is either wholly inside or wholly outside each set. A DFA state is a set of NFA
   states; its successor on a symbol is the epsilon-closure of the NFA moves. States from which
   no accepting state can be reached are trimmed (a walk that enters one has "died"), which is
   what constrained decoding needs: an allowed token must keep acceptance reachable.

Semantics follow Python's ``re.fullmatch`` with the ``re.ASCII`` flag (the parity oracle in the
tests): ``.`` matches anything but ``\\n``; ``\\d \\w \\s`` are ASCII classes.

Supported syntax: literals, escapes (``\\. \\* \\\\ \\n \\t`` ...), ``\\d \\D \\w \\W \\s \\S``,
classes ``[a-z0-9_]`` and negated ``[^...]`` (with escapes inside), ``.``, ``* + ?``,
``{m}``, ``{m,}``, ``{,n}``, ``{m,n}``, ``|``, groups ``( )`` and ``(?: )``.

Left out: anchors (a whole-string match is implied), back-references, look-around, lazy or
possessive quantifiers, flags, Unicode classes, named groups, capture extraction.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["CharSet", "DFA", "Node", "RegexError", "compile_regex", "escape", "parse", "thompson"]

MAX_CODEPOINT = 0x10FFFF
MAX_REPEAT = 1000  # {m,n} bounds above this are refused (each repeat copies the NFA fragment)


class RegexError(ValueError):
    """A pattern the parser cannot read (the message names the position)."""


@dataclass(frozen=True)
class CharSet:
    """A set of code points as sorted, disjoint, non-adjacent inclusive ranges ``(lo, hi)``."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, ranges) -> "CharSet":
        """Normalise any iterable of ranges (sort, merge overlapping / adjacent ones)."""
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges):
            if lo > hi:
                raise RegexError(f"bad character range {chr(lo)!r}-{chr(hi)!r}")
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return cls(tuple((a, b) for a, b in merged))

    @classmethod
    def char(cls, c: str) -> "CharSet":
        return cls(((ord(c), ord(c)),))

    def negate(self) -> "CharSet":
        out, start = [], 0
        for lo, hi in self.ranges:
            if lo > start:
                out.append((start, lo - 1))
            start = hi + 1
        if start <= MAX_CODEPOINT:
            out.append((start, MAX_CODEPOINT))
        return CharSet(tuple(out))

    def union(self, other: "CharSet") -> "CharSet":
        return CharSet.of(self.ranges + other.ranges)

    def __contains__(self, cp: int) -> bool:
        i = bisect.bisect_right(self.ranges, (cp, MAX_CODEPOINT + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= cp <= self.ranges[i][1]


DIGIT = CharSet.of([(48, 57)])
WORD = CharSet.of([(48, 57), (65, 90), (97, 122), (95, 95)])
SPACE = CharSet.of([(9, 13), (32, 32)])  # \t \n \v \f \r and space, as re.ASCII
DOT = CharSet.char("\n").negate()
CLASS_ESCAPES = {"d": DIGIT, "w": WORD, "s": SPACE, "D": DIGIT.negate(), "W": WORD.negate(),
                 "S": SPACE.negate()}
CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
SPECIAL = set("\\.^$*+?{}[]()|/")


def escape(text: str) -> str:
    """Escape every character of ``text`` that is special in our syntax (a literal pattern)."""
    return "".join("\\" + c if c in SPECIAL or c == "-" else c for c in text)


# --- 1. parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A syntax-tree node.

    ``kind`` is ``"set"`` (one character from ``charset``), ``"empty"`` (the empty string),
    ``"cat"`` / ``"alt"`` (``children`` in sequence / as alternatives) or ``"repeat"`` (``children[0]``
    repeated ``lo`` to ``hi`` times, ``hi`` None for unbounded).
    """

    kind: str
    children: tuple["Node", ...] = ()
    charset: CharSet | None = None
    lo: int = 0
    hi: int | None = None


class _Parser:
    """Recursive descent: alt := cat ('|' cat)*; cat := repeat*; repeat := atom quantifier*."""

    def __init__(self, pattern: str) -> None:
        self.p, self.i = pattern, 0

    def error(self, msg: str) -> RegexError:
        return RegexError(f"{msg} at position {self.i} of pattern {self.p!r}")

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self) -> str:
        c = self.peek()
        if c is None:
            raise self.error("unexpected end of pattern")
        self.i += 1
        return c

    def parse(self) -> Node:
        node = self.alt()
        if self.i != len(self.p):
            raise self.error(f"unexpected {self.p[self.i]!r}")
        return node

    def alt(self) -> Node:
        options = [self.cat()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.cat())
        return options[0] if len(options) == 1 else Node("alt", tuple(options))

    def cat(self) -> Node:
        items = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.repeat())
        if not items:
            return Node("empty")
        return items[0] if len(items) == 1 else Node("cat", tuple(items))

    def repeat(self) -> Node:
        node = self.atom()
        while True:
            c = self.peek()
            if c == "*":
                lo, hi = 0, None
            elif c == "+":
                lo, hi = 1, None
            elif c == "?":
                lo, hi = 0, 1
            elif c == "{" and self._is_bound():
                lo, hi = self._bound()
                node = Node("repeat", (node,), lo=lo, hi=hi)
                continue
            else:
                return node
            self.i += 1
            node = Node("repeat", (node,), lo=lo, hi=hi)

    def _is_bound(self) -> bool:
        j = self.p.find("}", self.i)
        body = self.p[self.i + 1 : j] if j > 0 else ""
        parts = body.split(",")
        if j < 0 or not 1 <= len(parts) <= 2:
            return False
        if len(parts) == 1:
            return parts[0].isdigit()
        lo, hi = parts  # {m,n}, {m,} or {,n}
        return (lo.isdigit() or lo == "") and (hi.isdigit() or hi == "")  # {,} = {0,}, as re

    def _bound(self) -> tuple[int, int | None]:
        j = self.p.index("}", self.i)
        parts = self.p[self.i + 1 : j].split(",")
        lo = int(parts[0] or 0)
        hi = lo if len(parts) == 1 else (None if parts[1] == "" else int(parts[1]))
        if hi is not None and hi < lo:
            raise self.error(f"bad repeat bound {{{lo},{hi}}}")
        if max(lo, hi or 0) > MAX_REPEAT:
            raise self.error(f"repeat bound above {MAX_REPEAT}")
        self.i = j + 1
        return lo, hi

    def atom(self) -> Node:
        c = self.take()
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise self.error("only (?: ) groups are supported")
            node = self.alt()
            if self.peek() != ")":
                raise self.error("missing )")
            self.i += 1
            return node
        if c == "[":
            return Node("set", charset=self._class())
        if c == ".":
            return Node("set", charset=DOT)
        if c == "\\":
            return Node("set", charset=self._escape())
        if c in "*+?":
            raise self.error(f"nothing to repeat before {c!r}")
        if c in ")^$" or (c == "{" and False):
            raise self.error(f"unsupported {c!r}")
        return Node("set", charset=CharSet.char(c))

    def _escape(self) -> CharSet:
        c = self.take()
        if c in CLASS_ESCAPES:
            return CLASS_ESCAPES[c]
        if c in CHAR_ESCAPES:
            return CharSet.char(CHAR_ESCAPES[c])
        if c.isalnum():
            raise self.error(f"unknown escape \\{c}")
        return CharSet.char(c)

    def _class(self) -> CharSet:
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.take()
            if c == "]" and not first:
                break
            first = False
            if c == "\\":
                cs = self._escape()
                if len(cs.ranges) != 1 or cs.ranges[0][0] != cs.ranges[0][1]:
                    ranges.extend(cs.ranges)  # \d, \w ... inside a class
                    continue
                lo = cs.ranges[0][0]
            else:
                lo = ord(c)
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                h = self.take()
                hi = self._escape().ranges[0][0] if h == "\\" else ord(h)
                ranges.append((lo, hi))
            else:
                ranges.append((lo, lo))
        cs = CharSet.of(ranges)
        return cs.negate() if negate else cs


def parse(pattern: str) -> Node:
    """Parse a pattern into a syntax tree; raises :class:`RegexError` on bad syntax."""
    return _Parser(pattern).parse()


# --- 2. Thompson NFA ---------------------------------------------------------------------------


@dataclass
class NFA:
    """An epsilon-NFA: ``edges[s]`` is a list of ``(charset_or_None, target)``; None = epsilon."""

    edges: list[list[tuple[CharSet | None, int]]] = field(default_factory=list)
    start: int = 0
    accept: int = 0

    def new_state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1


def thompson(node: Node) -> NFA:
    """Thompson's construction: one (start, accept) fragment per node, glued by epsilon edges."""
    nfa = NFA()

    def build(n: Node) -> tuple[int, int]:
        if n.kind == "set":
            s, t = nfa.new_state(), nfa.new_state()
            nfa.edges[s].append((n.charset, t))
            return s, t
        if n.kind == "empty":
            s = nfa.new_state()
            return s, s
        if n.kind == "cat":
            s, t = build(n.children[0])
            for child in n.children[1:]:
                s2, t2 = build(child)
                nfa.edges[t].append((None, s2))
                t = t2
            return s, t
        if n.kind == "alt":
            s, t = nfa.new_state(), nfa.new_state()
            for child in n.children:
                cs, ct = build(child)
                nfa.edges[s].append((None, cs))
                nfa.edges[ct].append((None, t))
            return s, t
        if n.kind == "repeat":
            child = n.children[0]
            s = t = nfa.new_state()
            for _ in range(n.lo):  # the mandatory copies
                cs, ct = build(child)
                nfa.edges[t].append((None, cs))
                t = ct
            if n.hi is None:  # star: loop back over one more copy
                cs, ct = build(child)
                loop_in, out = nfa.new_state(), nfa.new_state()
                nfa.edges[t].append((None, loop_in))
                nfa.edges[loop_in].append((None, cs))
                nfa.edges[loop_in].append((None, out))
                nfa.edges[ct].append((None, loop_in))
                return s, out
            out = nfa.new_state()
            for _ in range(n.hi - n.lo):  # optional copies, each may skip to the end
                nfa.edges[t].append((None, out))
                cs, ct = build(child)
                nfa.edges[t].append((None, cs))
                t = ct
            nfa.edges[t].append((None, out))
            return s, out
        raise AssertionError(n.kind)

    nfa.start, nfa.accept = build(node)
    return nfa


# --- 3. subset construction --------------------------------------------------------------------


@dataclass
class DFA:
    """A trimmed DFA over an alphabet partition of the code points.

    Attributes:
        bounds: sorted lower ends of the partition's intervals (``bounds[0] == 0``); a code point
            ``cp`` belongs to symbol ``bisect_right(bounds, cp) - 1``.
        trans: ``trans[state]`` maps a symbol to the next state; a missing symbol = dead.
        accepting: the accepting states.
        start: the start state (0), or -1 when the pattern matches nothing.
        pattern: the source pattern.
    """

    bounds: list[int]
    trans: list[dict[int, int]]
    accepting: set[int]
    start: int
    pattern: str

    @property
    def n_states(self) -> int:
        return len(self.trans)

    def step(self, state: int, ch: str) -> int:
        """The state after reading ``ch``, or -1 when the walk dies."""
        if state < 0:
            return -1
        return self.trans[state].get(bisect.bisect_right(self.bounds, ord(ch)) - 1, -1)

    def walk(self, state: int, text: str) -> int:
        """The state after reading ``text`` from ``state`` (-1 once dead)."""
        for ch in text:
            state = self.step(state, ch)
            if state < 0:
                return -1
        return state

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of ``text`` is in the pattern's language."""
        return self.walk(self.start, text) in self.accepting

    def max_length(self) -> int | None:
        """Longest accepted string's length, or None when the language is infinite (a cycle)."""
        if self.start < 0:
            return None
        order, state_of = [], {}
        # iterative DFS for a topological order; a back edge means a cycle
        colour = [0] * self.n_states
        stack = [(self.start, iter(set(self.trans[self.start].values())))]
        colour[self.start] = 1
        while stack:
            s, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[s] = 2
                order.append(s)
                stack.pop()
            elif colour[nxt] == 1:
                return None
            elif colour[nxt] == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(set(self.trans[nxt].values()))))
        for s in order:  # reverse topological: successors first
            best = 0 if s in self.accepting else -1
            for t in set(self.trans[s].values()):
                if state_of.get(t, -1) >= 0:
                    best = max(best, state_of[t] + 1)
            state_of[s] = best
        return state_of[self.start]


def _partition(nfa: NFA) -> list[int]:
    cuts = {0}
    for edges in nfa.edges:
        for cs, _ in edges:
            if cs is not None:
                for lo, hi in cs.ranges:
                    cuts.add(lo)
                    if hi < MAX_CODEPOINT:
                        cuts.add(hi + 1)
    return sorted(cuts)


def compile_regex(pattern: str, max_states: int = 20000) -> DFA:
    """Compile a pattern to a trimmed DFA (parse -> Thompson NFA -> subset construction).

    Args:
        pattern: the regular expression (whole-string match semantics).
        max_states: refuse (``RegexError``) patterns whose DFA grows past this many states.
    """
    nfa = thompson(parse(pattern))
    bounds = _partition(nfa)
    # the symbols each NFA edge accepts: symbol k = [bounds[k], bounds[k+1])
    edge_symbols: list[list[tuple[tuple[int, ...], int]]] = []
    for edges in nfa.edges:
        row = []
        for cs, target in edges:
            if cs is None:
                continue
            syms = tuple(k for lo, hi in cs.ranges
                         for k in range(bisect.bisect_left(bounds, lo), bisect.bisect_right(bounds, hi)))
            row.append((syms, target))
        edge_symbols.append(row)

    def closure(states) -> frozenset[int]:
        seen, stack = set(states), list(states)
        while stack:
            s = stack.pop()
            for cs, t in nfa.edges[s]:
                if cs is None and t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    start = closure([nfa.start])
    index = {start: 0}
    sets, trans = [start], [{}]
    todo = [start]
    while todo:
        current = todo.pop()
        moves: dict[int, set[int]] = {}
        for s in current:
            for syms, target in edge_symbols[s]:
                for k in syms:
                    moves.setdefault(k, set()).add(target)
        row = trans[index[current]]
        by_target: dict[frozenset[int], int] = {}
        for k, targets in moves.items():
            key = frozenset(targets)
            if key not in by_target:
                nxt = closure(targets)
                if nxt not in index:
                    if len(sets) >= max_states:
                        raise RegexError(f"pattern {pattern!r} needs more than {max_states} DFA states")
                    index[nxt] = len(sets)
                    sets.append(nxt)
                    trans.append({})
                    todo.append(nxt)
                by_target[key] = index[nxt]
            row[k] = by_target[key]
    accepting = {i for i, s in enumerate(sets) if nfa.accept in s}
    return _trim(DFA(bounds, trans, accepting, 0, pattern))


def _trim(dfa: DFA) -> DFA:
    """Drop states that cannot reach an accepting state, renumbering the rest (start -> 0)."""
    reverse: list[set[int]] = [set() for _ in range(dfa.n_states)]
    for s, row in enumerate(dfa.trans):
        for t in row.values():
            reverse[t].add(s)
    live, stack = set(dfa.accepting), list(dfa.accepting)
    while stack:
        for p in reverse[stack.pop()]:
            if p not in live:
                live.add(p)
                stack.append(p)
    if dfa.start not in live:
        return DFA(dfa.bounds, [], set(), -1, dfa.pattern)
    order = [dfa.start] + sorted(live - {dfa.start})
    new = {s: i for i, s in enumerate(order)}
    trans = [{k: new[t] for k, t in dfa.trans[s].items() if t in live} for s in order]
    return DFA(dfa.bounds, trans, {new[s] for s in dfa.accepting}, 0, dfa.pattern)
