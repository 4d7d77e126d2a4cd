"""The regex engine against Python's re.fullmatch (re.ASCII): random strings (mostly rejected),
strings generated from the pattern by an independent walker over Python's own parse of it (every
one must be accepted), and DFA samples (every one must be accepted by Python). Seeds are fixed."""

import random
import re
import string
import zlib
from re import _constants as sre
from re import _parser as sre_parse

import pytest

from nlpcurriculum.decoding.regex_automaton import RegexError, compile_regex, escape

PATTERNS = [
    r"a*b", r"(ab|cd)+e?", r"[a-c]{2,4}x", r"[^ab]+", r"\d{4}-\d{2}", r"(a|b)*abb", r".?a.{1,3}",
    r"\w+@\w+\.(com|org)", r"x{3}", r"(a?){2}b", r"[\d_-]*", r"a{2,}", r"(?:ab)?c", r"", r"a|",
    r"\.\*\\", r"[a\-c]+", r"(a|)(b|c){0,2}", r"\s?\S\W", r"[^\n]{2}", r"((a|b)c)*d?",
    r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", r"\{\"k\":(true|false)\}", r"a{,2}b", r"a{,}", r"[]a]+", r"[^]]",
]
ALPHABET = "abcdex_-@.0129 \n*\\{}\":truefals"


def _sample(dfa, rng: random.Random, max_len: int = 12) -> str:
    """A random walk of the DFA that stops in an accepting state (a string the DFA accepts)."""
    out, state = [], dfa.start
    for _ in range(max_len):
        moves = list(dfa.trans[state].items())
        if not moves or (state in dfa.accepting and rng.random() < 0.3):
            break
        sym, state = rng.choice(moves)
        lo = dfa.bounds[sym]
        hi = dfa.bounds[sym + 1] - 1 if sym + 1 < len(dfa.bounds) else 0x10FFFF
        hi = min(hi, lo + 200)
        cp = rng.randint(lo, hi)
        while 0xD800 <= cp <= 0xDFFF:
            cp = rng.randint(lo, hi)
        out.append(chr(cp))
    return "".join(out) if state in dfa.accepting else None


# Characters the pattern walker draws from: printable ASCII, tab, newline and two non-ASCII ones.
POOL = string.printable.replace("\x0b", "").replace("\x0c", "") + "\u00e9\u4e2d"
CATEGORIES = {
    sre.CATEGORY_DIGIT: lambda c: c in string.digits,
    sre.CATEGORY_SPACE: lambda c: c in " \t\n\r\f\v",
    sre.CATEGORY_WORD: lambda c: c in string.ascii_letters + string.digits + "_",
}
CATEGORIES |= {
    sre.CATEGORY_NOT_DIGIT: lambda c: not CATEGORIES[sre.CATEGORY_DIGIT](c),
    sre.CATEGORY_NOT_SPACE: lambda c: not CATEGORIES[sre.CATEGORY_SPACE](c),
    sre.CATEGORY_NOT_WORD: lambda c: not CATEGORIES[sre.CATEGORY_WORD](c),
}


def _in_set(items, c: str) -> bool:
    """Whether ``c`` is in a parsed character class (``[...]``, ``\\d``...)."""
    negate = bool(items) and items[0][0] is sre.NEGATE
    hit = False
    for op, arg in items[negate:]:
        if op is sre.LITERAL:
            hit |= ord(c) == arg
        elif op is sre.RANGE:
            hit |= arg[0] <= ord(c) <= arg[1]
        elif op is sre.CATEGORY:
            hit |= CATEGORIES[arg](c)
        else:
            raise NotImplementedError(op)
    return hit != negate


def _walk(nodes, rng: random.Random) -> str:
    """A random string that Python's parse of a pattern matches (repeats capped at 4 extra)."""
    out = []
    for op, arg in nodes:
        if op is sre.LITERAL:
            out.append(chr(arg))
        elif op is sre.NOT_LITERAL:
            out.append(rng.choice([c for c in POOL if ord(c) != arg]))
        elif op is sre.ANY:
            out.append(rng.choice([c for c in POOL if c != "\n"]))
        elif op is sre.IN:
            out.append(rng.choice([c for c in POOL if _in_set(arg, c)]))
        elif op is sre.BRANCH:
            out.append(_walk(rng.choice(arg[1]), rng))
        elif op is sre.SUBPATTERN:
            out.append(_walk(arg[3], rng))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, body = arg
            hi = lo + 4 if hi is sre.MAXREPEAT else hi
            out.extend(_walk(body, rng) for _ in range(rng.randint(lo, hi)))
        else:
            raise NotImplementedError(op)
    return "".join(out)


def _seed(pattern: str) -> int:
    """A seed fixed per pattern (``hash`` of a str changes from process to process)."""
    return zlib.crc32(pattern.encode())


@pytest.mark.parametrize("pattern", PATTERNS)
def test_accepts_what_the_pattern_generates(pattern):
    dfa = compile_regex(pattern)
    rng = random.Random(_seed(pattern))
    parsed = list(sre_parse.parse(pattern, re.ASCII))
    for _ in range(300):
        s = _walk(parsed, rng)
        assert re.fullmatch(pattern, s, re.ASCII), (pattern, s)  # the walker is right
        assert dfa.fullmatch(s), (pattern, s)


def test_pattern_walk_catches_an_automaton_that_accepts_too_little():
    """The generated strings would expose a DFA of a narrower pattern (a class missing a digit)."""
    narrow = compile_regex(r"[0-8]{4}-[0-8]{2}")
    rng = random.Random(0)
    parsed = list(sre_parse.parse(r"\d{4}-\d{2}", re.ASCII))
    assert not all(narrow.fullmatch(_walk(parsed, rng)) for _ in range(300))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_python_re(pattern):
    dfa = compile_regex(pattern)
    rng = random.Random(_seed(pattern))
    for _ in range(1500):  # random strings: mostly rejections
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))
        assert dfa.fullmatch(s) == (re.fullmatch(pattern, s, re.ASCII) is not None), (pattern, s)
    accepted = 0
    for _ in range(300):  # strings the DFA accepts: Python must accept them too
        s = _sample(dfa, rng)
        if s is not None:
            accepted += 1
            assert re.fullmatch(pattern, s, re.ASCII), (pattern, s)
    assert accepted > 0


def test_max_length_and_trimming():
    assert compile_regex(r"ab{2,3}").max_length() == 4
    assert compile_regex(r"a+").max_length() is None
    dfa = compile_regex(r"ab|ac")
    assert dfa.walk(dfa.start, "ad") == -1 and dfa.walk(dfa.start, "a") >= 0
    assert compile_regex(r"a[^\s\S]").start == -1  # an empty class: nothing matches


def test_escape_round_trip():
    text = '{"a": [1, 2.5], "b": "x|y*"}'
    assert compile_regex(escape(text)).fullmatch(text)
    assert re.fullmatch(escape(text), text)


@pytest.mark.parametrize("bad", ["(ab", "a)", "*a", "[a-", "a{3,1}", r"\q", "(?=a)"])
def test_bad_patterns_raise(bad):
    with pytest.raises(RegexError):
        compile_regex(bad)
