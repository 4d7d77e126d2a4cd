"""The tokenizer interface shared by every algorithm in this package, and its file format.

A tokenizer maps text to a list of integer ids and back. Every variant here (byte-level BPE,
WordPiece, Unigram LM, SentencePiece) is a subclass of :class:`Tokenizer` with the same four verbs,
in the spirit of minbpe's ``base.py`` (Karpathy, 2024):

* ``train(text_or_iter, vocab_size)`` learns a vocabulary from raw text (a string or an iterable
  of strings) and returns ``self``;
* ``encode(text) -> list[int]`` and ``decode(ids) -> str``;
* ``save(path)`` / ``Tokenizer.load(path)`` (or :func:`load_tokenizer`, which dispatches on the
  kind written in the file).

File format (docs/CONVENTIONS.md, convention 13). ``save(path)`` writes two files:

* ``path``: a JSON document ``{"format": "nlpcurriculum-tokenizer", "version": 1, "kind": "bpe",
  "config": {...}, "state": {...}}``. ``config`` is the tokenizer's config dataclass as a dict;
  ``state`` is what training learned (merges, a vocabulary, piece scores). Loading checks every
  layer of that header and raises :class:`TokenizerFileError` naming the path and the problem.
* ``path + ".vocab"``: a human-readable tab-separated sidecar, one line per id:
  ``id<TAB>token<TAB>score`` where ``score`` is a merge rank (BPE), a log-probability (Unigram)
  or blank. Tokens are shown with ``repr``-style escapes so that whitespace and raw bytes are
  visible. The sidecar is for people; loading never reads it.

What is left out: normalisation beyond what each algorithm needs, post-processing templates
(``[CLS] ... [SEP]``), offsets/alignment, and batch encoding.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

from nlpcurriculum.io import write_text

FORMAT_NAME = "nlpcurriculum-tokenizer"
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The Unicode White_Space characters (Rust's ``char::is_whitespace``, which ``tokenizers`` uses;
Python's ``str.split()`` also splits on U+001C..U+001F, which are not White_Space)."""

FORMAT_VERSION = 1

# kind -> subclass; filled by ``Tokenizer.__init_subclass__`` when a module defines a variant.
# Every variant is defined by the time anyone can call ``load``: importing this module runs the
# package's ``__init__`` first, and that imports every variant.
_REGISTRY: dict[str, type["Tokenizer"]] = {}


class TokenizerFileError(ValueError):
    """A saved tokenizer file is missing, unreadable, corrupt, of another kind or version.

    Attributes:
        path: the file that was being read.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot load tokenizer from {self.path!r}: {problem}")


class Tokenizer(abc.ABC):
    """Base class: text <-> ids, training, and the versioned save/load format.

    Subclasses set ``kind`` (the string written to files) and ``config_cls`` (their config
    dataclass) and implement the abstract methods. ``train`` returns ``self`` so that
    ``BPETokenizer().train(text, 512).encode("hi")`` reads naturally.
    """

    kind: ClassVar[str]
    config_cls: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            if kind in _REGISTRY and _REGISTRY[kind] is not cls:
                raise TypeError(f"tokenizer kind {kind!r} is registered twice")
            _REGISTRY[kind] = cls

    def __init__(self, config: Any = None) -> None:
        if config is None:
            config = self.config_cls()
        if not isinstance(config, self.config_cls):
            raise TypeError(
                f"{type(self).__name__} expects a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config = config

    # ----------------------------------------------------------------- the four verbs
    @abc.abstractmethod
    def train(self, text_or_iter: str | Iterable[str], vocab_size: int) -> "Tokenizer":
        """Learn a vocabulary of (at most) ``vocab_size`` entries from raw text; return self."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Map text to token ids."""

    @abc.abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Map token ids back to text (exactly for lossless tokenizers)."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids this tokenizer can emit (0 before training)."""

    @abc.abstractmethod
    def id_to_token(self, token_id: int) -> str:
        """A human-readable form of one token (for the sidecar and visualisers)."""

    def token_score(self, token_id: int) -> float | None:
        """The score printed in the sidecar (merge rank, log-probability), if the algorithm has one."""
        return None

    # ----------------------------------------------------------------- persistence
    @abc.abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """What training learned, as JSON-serialisable data."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore from ``_get_state()``'s output; raise KeyError/TypeError/ValueError if malformed."""

    @property
    def is_trained(self) -> bool:
        return self.vocab_size > 0

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call train() or load() first")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer to ``path`` (JSON) and ``path + '.vocab'`` (readable sidecar).

        Both files are written atomically (temporary file + rename).

        Returns:
            The path of the JSON file.
        """
        self._check_trained()
        path = Path(path)
        doc = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "config": asdict(self.config),
            "state": self._get_state(),
        }
        write_text(path, json.dumps(doc, ensure_ascii=False) + "\n")
        write_text(vocab_sidecar_path(path), self.vocab_table())
        return path

    def vocab_table(self) -> str:
        """The sidecar text: a header line, then ``id<TAB>token<TAB>score`` for every id."""
        lines = [f"# {FORMAT_NAME} v{FORMAT_VERSION} kind={self.kind} vocab_size={self.vocab_size}",
                 "id\ttoken\tscore"]
        for i in range(self.vocab_size):
            score = self.token_score(i)
            shown = "" if score is None else (str(int(score)) if float(score).is_integer() else f"{score:.6f}")
            lines.append(f"{i}\t{_printable(self.id_to_token(i))}\t{shown}")
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a tokenizer saved by :meth:`save`.

        Called on a subclass, the file must hold that kind; called on ``Tokenizer`` itself it
        dispatches on the kind (same as :func:`load_tokenizer`).

        Raises:
            TokenizerFileError: the file is missing, not JSON (truncated or corrupt), not an
                nlpcurriculum tokenizer, of an unknown version, of another kind, or its
                config/state do not parse.
        """
        doc = _read_document(path)
        kind = doc["kind"]
        if kind not in _REGISTRY:
            raise TokenizerFileError(path, f"unknown tokenizer kind {kind!r} (known: {sorted(_REGISTRY)})")
        target = _REGISTRY[kind]
        if cls is not Tokenizer and target is not cls:
            raise TokenizerFileError(path, f"holds a {kind!r} tokenizer, not a {cls.kind!r} one")
        try:
            config = _config_from_dict(target.config_cls, doc.get("config", {}))
            tok = target(config)
            tok._set_state(doc["state"])
        except TokenizerFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise TokenizerFileError(path, f"corrupt {kind!r} tokenizer content: {type(err).__name__}: {err}") from err
        return tok

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, config={self.config!r})"


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load any tokenizer saved by :meth:`Tokenizer.save`, choosing the class from its ``kind``."""
    return Tokenizer.load(path)


def vocab_sidecar_path(path: str | os.PathLike) -> Path:
    """Where the human-readable vocabulary of the tokenizer saved at ``path`` goes."""
    path = Path(path)
    return path.with_name(path.name + ".vocab")


def iter_texts(text_or_iter: str | Iterable[str]) -> Iterable[str]:
    """Accept one string or an iterable of strings; always yield strings (type-checked)."""
    if isinstance(text_or_iter, str):
        yield text_or_iter
        return
    if isinstance(text_or_iter, (bytes, bytearray)):
        raise TypeError("train() takes str (or an iterable of str), not bytes: decode it first")
    for i, text in enumerate(text_or_iter):
        if not isinstance(text, str):
            raise TypeError(f"training item {i} is {type(text).__name__}, not str")
        yield text


def check_vocab_size(vocab_size: int, minimum: int, why: str) -> None:
    """Raise a clear ValueError when the requested vocabulary cannot hold the mandatory entries."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small: at least {minimum} needed ({why})")


def check_ids(ids: Sequence[int], size: int) -> None:
    """Raise a ValueError naming the first id outside ``[0, size)``."""
    for i in ids:
        if not (0 <= i < size):
            raise ValueError(f"token id {i} is outside the vocabulary [0, {size})")


# --------------------------------------------------------------------------- internals
def _read_document(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise TokenizerFileError(path, "file does not exist")
    if not p.is_file():
        raise TokenizerFileError(path, "is not a regular file")
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TokenizerFileError(path, f"not UTF-8 text (corrupt?): {err}") from err
    except OSError as err:
        raise TokenizerFileError(path, f"cannot be read: {err}") from err
    if not raw.strip():
        raise TokenizerFileError(path, "file is empty")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise TokenizerFileError(path, f"not valid JSON, the file is truncated or corrupt ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise TokenizerFileError(path, f"not an {FORMAT_NAME} file (missing or wrong 'format' field)")
    version = doc.get("version")
    if version != FORMAT_VERSION:
        raise TokenizerFileError(
            path, f"unsupported format version {version!r} (this code reads version {FORMAT_VERSION})"
        )
    if not isinstance(doc.get("kind"), str):
        raise TokenizerFileError(path, "missing 'kind' field")
    if not isinstance(doc.get("state"), dict):
        raise TokenizerFileError(path, "missing or malformed 'state' field")
    if not isinstance(doc.get("config", {}), dict):
        raise TokenizerFileError(path, "malformed 'config' field")
    return doc


def _config_from_dict(config_cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(config_cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)} for {config_cls.__name__}")
    # JSON has no tuples; config dataclasses use tuples for immutable sequences.
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return config_cls(**data)


def _printable(token: str) -> str:
    # repr without the quotes: shows "\n", "\t", and leaves ordinary unicode readable.
    return repr(token)[1:-1]
