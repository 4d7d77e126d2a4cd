"""The regex engine against Python's re.fullmatch (re.ASCII): random strings and DFA samples."""

import random
import re

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


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_python_re(pattern):
    dfa = compile_regex(pattern)
    rng = random.Random(hash(pattern) % 1000)
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
