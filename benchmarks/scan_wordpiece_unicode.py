"""Scan: WordPiece's normaliser + pre-tokeniser against ``tokenizers``' over all of Unicode.

For every code point U+0000..U+10FFFF except the surrogates (a Rust string cannot hold one), the
text ``"A" + c`` goes through :func:`~nlpcurriculum.tokenizers.wordpiece.bert_normalize` +
``bert_pre_tokenize`` and through ``BertNormalizer`` + ``BertPreTokenizer`` with the same options
(:func:`~nlpcurriculum.tokenizers.wordpiece.scan_hf_differences`). The script prints, per option
set, how many code points differ, by documented cause and by Unicode block, and exits with status 1
if the set is not exactly the documented one
(:func:`~nlpcurriculum.tokenizers.wordpiece.expected_hf_differences`).

Recorded (``tokenizers`` 0.23.3, Python 3.11 with Unicode 14.0.0), differing code points:

=======================  ==========================  =====
options                  before the per-character     after
                         rules (issue 18)
=======================  ==========================  =====
default (uncased)        830,339                      559
``lowercase=False``      829,953                      119
=======================  ==========================  =====

Before, 829,834 of the uncased 830,339 were code points unassigned in Python's tables (dropped
here, kept by ``tokenizers``); 1,168 of them lay in U+0020..U+2FFF. After, every difference comes
from tables of different Unicode versions; the module docstring of
:mod:`nlpcurriculum.tokenizers.wordpiece` lists them.

Run: ``python benchmarks/scan_wordpiece_unicode.py [--all-options] [--show N]`` (about 10 s of CPU
per option set; ``--all-options`` scans all 24 combinations of the four options).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import unicodedata
from collections import Counter

from nlpcurriculum.tokenizers.wordpiece import (
    HF_DIFFERENCES,
    HF_DIFFERENCES_MEASURED_WITH,
    WordPieceConfig,
    expected_hf_differences,
    scan_hf_differences,
)


def option_sets(all_options: bool) -> list[WordPieceConfig]:
    if not all_options:
        return [WordPieceConfig(), WordPieceConfig(lowercase=False)]
    return [
        WordPieceConfig(lowercase=lc, strip_accents=sa, clean_text=ct, handle_chinese_chars=cj)
        for lc, sa, ct, cj in itertools.product([True, False], [None, True, False], [True, False], [True, False])
    ]


def block_namer():
    """``code point -> block name``, from the ``regex`` module's Block property.

    ``regex`` does not list its property values publicly; if its internal table moves, the name
    falls back to the 256-code-point row.
    """
    import regex

    try:
        from regex._regex_core import PROPERTIES

        values = PROPERTIES["BLOCK"][1]
        longest: dict[int, str] = {}
        for name, value in values.items():
            if value and len(name) > len(longest.get(value, "")):
                longest[value] = name
        blocks = [(name, regex.compile(rf"\p{{Block={name}}}")) for name in longest.values()]
    except (ImportError, KeyError, IndexError, TypeError):
        blocks = []

    def name_of(cp: int) -> str:
        c = chr(cp)
        for name, pattern in blocks:
            if pattern.match(c):
                return name
        return f"row U+{cp & ~0xFF:04X}"

    return name_of


def cause_of(cp: int) -> str:
    return next((cause for cause, cps in HF_DIFFERENCES.items() if cp in cps), "undocumented")


def options_label(cfg: WordPieceConfig) -> str:
    return (f"lowercase={cfg.lowercase} strip_accents={cfg.strip_accents} clean_text={cfg.clean_text} "
            f"handle_chinese_chars={cfg.handle_chinese_chars}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all-options", action="store_true", help="scan all 24 option sets")
    parser.add_argument("--show", type=int, default=0, help="print the first N differing code points")
    args = parser.parse_args(argv)

    import tokenizers

    versions = {"tokenizers": tokenizers.__version__, "unicodedata": unicodedata.unidata_version}
    print(f"versions: {versions} (documented set measured with {HF_DIFFERENCES_MEASURED_WITH})")
    name_of = block_namer()
    ok = True
    for cfg in option_sets(args.all_options):
        start = time.perf_counter()
        found = scan_hf_differences(cfg)
        seconds = time.perf_counter() - start
        expected = expected_hf_differences(cfg)
        extra, missing = sorted(set(found) - expected), sorted(expected - set(found))
        ok &= not extra and not missing
        in_bmp_start = sum(0x20 <= cp <= 0x2FFF for cp in found)
        print(f"\n{options_label(cfg)}: {len(found)} differing code points "
              f"({in_bmp_start} in U+0020..U+2FFF), {seconds:.1f} s")
        print("  by cause: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(map(cause_of, found)).items())))
        by_block = Counter(name_of(cp) for cp in found)
        print("  by block: " + ", ".join(f"{k} {v}" for k, v in by_block.most_common()))
        if extra or missing:
            print(f"  NOT AS DOCUMENTED: undocumented {[f'{c:04X}' for c in extra[:30]]}, "
                  f"no longer differing {[f'{c:04X}' for c in missing[:30]]}")
        for cp in found[: args.show]:
            c = chr(cp)
            print(f"    U+{cp:04X} {unicodedata.category(c)} {unicodedata.name(c, '(unnamed)')} [{cause_of(cp)}]")
    print("\nall as documented" if ok else "\nsome differences are not the documented ones")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
