"""MinHash signatures: shingle a document, hash the shingles, keep the minimum under P permutations.

Implements Broder (1997), "On the resemblance and containment of documents", as presented in
Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3 (http://www.mmds.org/).

The idea. A document is reduced to its set of shingles S (word k-grams or character k-grams).
For a random permutation pi of the shingle universe, P[min pi(A) == min pi(B)] equals the
Jaccard similarity J(A, B) = |A & B| / |A | B|: the first element of A | B under pi is equally
likely to be any element, and the minima agree exactly when that element lies in A & B. Keeping
the minimum under P independent permutations gives a signature of P numbers; the fraction of
positions where two signatures agree is an unbiased estimate of J with standard error
sqrt(J (1 - J) / P) (0.035 at J = 0.8, P = 128).

True random permutations of a 2^32 universe cannot be stored, so each permutation is a universal
hash of the 32-bit shingle hash x. Two schemes are implemented, both bit-for-bit compatible with
``datasketch`` (the reference; parity is tested):

* ``"mersenne61"`` (datasketch's ``scheme="legacy"``, the MMDS construction):
  ``h(x) = ((a * x + b) mod 2^64) mod p  &  (2^32 - 1)`` with p = 2^61 - 1 and a, b drawn from
  ``numpy.random.RandomState(seed)``. The ``mod 2^64`` is not in the textbook formula: it is what
  uint64 arithmetic does when a (< 2^61) times x (< 2^32) overflows, and datasketch computes it
  that way, so we do too. ``mod p`` for a Mersenne prime needs no division:
  y mod (2^61 - 1) = (y & p) + (y >> 61), minus p if that is still >= p (because 2^61 = 1 mod p).
  The final 32-bit mask folds a 61-bit range onto 32 bits, which makes h behave like a random
  function rather than a permutation; on very large sets the resulting collisions bias estimates
  upward (datasketch issue #212). Harmless at document sizes, and the classic construction.
* ``"affine32"`` (datasketch >= 2.0's default): x is pre-mixed once with the MurmurHash3 32-bit
  finaliser, then ``h(x) = a * x + b mod 2^32`` with a odd, a true bijection on 32 bits: the
  hardware wraparound *is* the modulo. Cheaper (uint32 throughout) and collision-free.

Shingle hashes. ``hash_fn="sha1"`` reproduces datasketch's default: the first 4 bytes of
SHA-1(shingle as UTF-8), read little-endian. One SHA-1 call per shingle costs ~0.3 us of Python,
more than all 128 permutations together, so ``hash_fn="fast"`` instead hashes each distinct word
(or code point) once, caches it, and combines the k hashes of a k-gram with multiply-add and the
MurmurHash3 64-bit finaliser in numpy. Same shingle sets, different (equally good) 32-bit hash:
signatures are then not comparable with datasketch's, but Jaccard estimates are equally unbiased.

Batching. :meth:`MinHasher.signatures` concatenates the shingle hashes of many documents into one
array of M rows, applies the P permutations to a chunk of rows at a time (an (R, P) block small
enough to stay in cache: ten times faster than one huge temporary) and takes each document's
minimum with ``np.minimum.reduceat`` over its segment of rows.

Long documents are streamed: the text is cut into pieces at whitespace boundaries, each piece is
shingled separately with the last k - 1 tokens carried over, and since min over a union is the
min of the mins, the pieces simply become more rows of the same document. ``max_doc_chars`` caps
how much of a document is read at all (time, not memory, is the reason).

Dimension legend: N documents, M shingle rows (all documents of a batch), R rows in one chunk,
P permutations (``num_perm``), S document segments in a chunk.

Left out: weighted MinHash, b-bit MinHash, one-permutation hashing (Li et al. 2012) and
GPU kernels; ``count()`` cardinality estimation.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH32 = np.uint64((1 << 32) - 1)
#: Signature value of an empty set (no shingle ever lowered it); datasketch uses the same value.
EMPTY_VALUE = np.uint32(0xFFFFFFFF)

_LITTLE_ENDIAN = sys.byteorder == "little"
_WORD_RE = re.compile(r"\w+")
_SPACE_RE = re.compile(r"\s+")

# MurmurHash3 finaliser constants (fmix32 / fmix64): fixed avalanching bijections.
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
# Odd multiplier of the polynomial that combines k token hashes into one k-gram hash.
_COMBINE = np.uint64(0x9E3779B97F4A7C15)


def to_text(doc: str | bytes, errors: Literal["replace", "strict"] = "replace") -> str:
    """Turn a document into ``str`` with an explicit policy for invalid UTF-8.

    Bytes are decoded as UTF-8. With ``errors="replace"`` (the default) each invalid byte
    sequence becomes U+FFFD, so a corrupt document is still processed and its valid parts still
    match their duplicates; with ``"strict"`` a ``ValueError`` names the offset of the bad byte.

    Args:
        doc: the document, ``str`` or UTF-8 ``bytes``.
        errors: ``"replace"`` or ``"strict"``.

    Returns:
        The text.

    Raises:
        TypeError: ``doc`` is neither ``str`` nor ``bytes``.
        ValueError: invalid UTF-8 under ``errors="strict"``.
    """
    if isinstance(doc, str):
        return doc
    if isinstance(doc, (bytes, bytearray, memoryview)):
        try:
            return bytes(doc).decode("utf-8", errors=errors)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"document is not valid UTF-8 (byte {exc.start}: {exc.reason}); "
                "decode it first or use errors='replace'"
            ) from exc
    raise TypeError(f"a document must be str or bytes, got {type(doc).__name__}")


@dataclass
class MinHashConfig:
    """How documents become MinHash signatures.

    Attributes:
        num_perm: permutations P, i.e. signature length. Standard error of a Jaccard estimate is
            sqrt(J (1 - J) / P).
        seed: seeds ``numpy.random.RandomState`` for the permutation parameters, exactly as
            datasketch's ``MinHash(seed=...)`` does.
        shingle: ``"word"`` (k consecutive ``\\w+`` tokens) or ``"char"`` (k consecutive
            characters after collapsing whitespace runs to one space).
        k: shingle size. Word 5-grams are the usual near-duplicate setting; character shingles
            want k ~ 5-9 for English.
        lowercase: fold case before shingling.
        scheme: ``"mersenne61"`` (datasketch ``"legacy"``) or ``"affine32"`` (datasketch's
            default since 2.0); see the module docstring.
        hash_fn: ``"sha1"`` (datasketch-compatible) or ``"fast"`` (vectorised, cached per word).
        max_doc_chars: only the first this-many characters of a document are shingled
            (``None``: all). Bounds the time a pathological 50 MB document takes.
        piece_chars: documents longer than this are shingled piece by piece, which bounds memory.
        chunk_rows: rows R of shingle hashes permuted at once; R * P * 8 bytes should fit in
            cache (the default is 1 MiB at P = 128).
        decode_errors: policy for invalid UTF-8 in ``bytes`` documents (see :func:`to_text`).
    """

    num_perm: int = 128
    seed: int = 1
    shingle: Literal["word", "char"] = "word"
    k: int = 5
    lowercase: bool = True
    scheme: Literal["mersenne61", "affine32"] = "mersenne61"
    hash_fn: Literal["sha1", "fast"] = "sha1"
    max_doc_chars: int | None = 1_000_000
    piece_chars: int = 1_000_000
    chunk_rows: int = 1024
    decode_errors: Literal["replace", "strict"] = "replace"

    def __post_init__(self) -> None:
        if self.num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {self.num_perm}")
        if self.shingle not in ("word", "char"):
            raise ValueError(f"shingle must be 'word' or 'char', got {self.shingle!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.scheme not in ("mersenne61", "affine32"):
            raise ValueError(f"scheme must be 'mersenne61' or 'affine32', got {self.scheme!r}")
        if self.hash_fn not in ("sha1", "fast"):
            raise ValueError(f"hash_fn must be 'sha1' or 'fast', got {self.hash_fn!r}")
        if self.max_doc_chars is not None and self.max_doc_chars < 1:
            raise ValueError(f"max_doc_chars must be >= 1 or None, got {self.max_doc_chars}")
        if self.piece_chars < 64:
            raise ValueError(f"piece_chars must be >= 64, got {self.piece_chars}")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        if self.decode_errors not in ("replace", "strict"):
            raise ValueError(
                f"decode_errors must be 'replace' or 'strict', got {self.decode_errors!r}"
            )


# ---------------------------------------------------------------------------------------------
# Shingling
# ---------------------------------------------------------------------------------------------


def _pieces(text: str, piece_chars: int) -> Iterator[str]:
    """Cut ``text`` into pieces of about ``piece_chars`` that end in whitespace.

    Cutting just after a whitespace run and before the next non-space character means no word is
    split and whitespace normalisation of the pieces joins up to that of the whole text. A text
    with no whitespace in the last 10k characters of a window is cut hard (a split word).
    """
    start, n = 0, len(text)
    while n - start > piece_chars:
        end = start + piece_chars
        cut = end
        for c in range(end, max(start + 1, end - 10_000), -1):
            if text[c - 1].isspace() and not text[c].isspace():
                cut = c
                break
        yield text[start:cut]
        start = cut
    yield text[start:]


def iter_shingle_pieces(text: str, cfg: MinHashConfig) -> Iterator[list[str]]:
    """Yield the shingles of ``text`` (after the ``max_doc_chars`` cap) piece by piece.

    Shingles may repeat within and across pieces; callers that need a set deduplicate. A text
    with fewer than k tokens but at least one yields the whole text as its single shingle, so
    short documents still compare; an empty (or all-punctuation, for word shingles) text yields
    nothing.
    """
    if cfg.max_doc_chars is not None:
        text = text[: cfg.max_doc_chars]
    k = cfg.k
    carry: list[str] = []  # the last k-1 tokens (or chars) of the previous piece
    produced = False
    pieces = list(_pieces(text, cfg.piece_chars)) if len(text) > cfg.piece_chars else [text]
    for i, piece in enumerate(pieces):
        if cfg.lowercase:
            piece = piece.lower()
        if cfg.shingle == "word":
            units: list[str] = carry + _WORD_RE.findall(piece)
            # zip of k shifted views yields each k-gram as a tuple without per-shingle slicing.
            out = list(map(" ".join, zip(*[units[j:] for j in range(k)])))
            carry = units[-(k - 1) :] if k > 1 else []
        else:
            piece = _SPACE_RE.sub(" ", piece)
            if i == 0:
                piece = piece.lstrip(" ")
            if i == len(pieces) - 1:
                piece = piece.rstrip(" ")
            s = "".join(carry) + piece
            out = [s[j : j + k] for j in range(len(s) - k + 1)]
            carry = list(s[-(k - 1) :]) if k > 1 else []
        if out:
            produced = True
            yield out
    if not produced and carry:
        # Fewer than k units in the whole text: the text itself is the one shingle.
        yield [" ".join(carry) if cfg.shingle == "word" else "".join(carry)]


def shingles(doc: str | bytes, cfg: MinHashConfig | None = None) -> set[str]:
    """The shingle set of one document (for teaching, tests and exact Jaccard).

    Example (word 2-shingles): ``"The cat sat. The cat"`` -> tokens the, cat, sat, the, cat ->
    {"the cat", "cat sat", "sat the"} (the repeated "the cat" counts once).
    """
    cfg = cfg or MinHashConfig()
    out: set[str] = set()
    for piece in iter_shingle_pieces(to_text(doc, cfg.decode_errors), cfg):
        out.update(piece)
    return out


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity |a & b| / |a | b|; two empty sets have similarity 1.0."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# ---------------------------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------------------------


def sha1_hash32(strings: Iterable[str]) -> np.ndarray:
    """datasketch's ``sha1_hash32`` on many strings: first 4 bytes of SHA-1(UTF-8), little-endian.

    Returns:
        (n,) uint32.
    """
    sha1 = hashlib.sha1
    # One join + frombuffer instead of n struct.unpack calls.
    digests = b"".join([sha1(s.encode("utf-8", "surrogatepass")).digest()[:4] for s in strings])
    return np.frombuffer(digests, dtype="<u4").astype(np.uint32)


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (a bijection that spreads every input bit)."""
    s1, m1, s2, m2 = _FMIX32
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s1)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser."""
    s, m1, m2 = _FMIX64
    h = h ^ (h >> s)
    h = h * m1
    h = h ^ (h >> s)
    h = h * m2
    return h ^ (h >> s)


def combine_kgrams(unit_hashes: np.ndarray, k: int) -> np.ndarray:
    """Hash every k-gram of a sequence of unit hashes, vectorised.

    h = fmix64(((u_0 * C + u_1) * C + u_2) ... ), top 32 bits: order-sensitive, and the final
    avalanche makes the 32 bits we keep depend on every input bit.

    Args:
        unit_hashes: (n,) uint64 hashes of words or code points, n >= k.
        k: k-gram size.

    Returns:
        (n - k + 1,) uint32.
    """
    n = unit_hashes.shape[0] - k + 1
    h = unit_hashes[:n].copy()
    for j in range(1, k):
        h *= _COMBINE
        h += unit_hashes[j : j + n]
    return (fmix64(h) >> np.uint64(32)).astype(np.uint32)


class _FastHasher:
    """``hash_fn="fast"``: hash each distinct word once (SHA-1, cached), combine in numpy."""

    def __init__(self, cfg: MinHashConfig, cache_size: int = 1 << 20) -> None:
        self.cfg = cfg
        self.cache: dict[str, int] = {}
        self.cache_size = cache_size

    def _word_hashes(self, words: list[str]) -> np.ndarray:
        cache = self.cache
        try:  # the common case once the vocabulary is warm: every word is cached
            return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))
        except KeyError:
            pass
        missing = list(set(words).difference(cache))
        if len(cache) + len(missing) > self.cache_size:
            cache.clear()  # a bounded cache; rebuilding it is cheap
            missing = list(set(words))
        cache.update(zip(missing, sha1_hash32(missing).tolist()))
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))

    def piece_hashes(self, text: str) -> Iterator[np.ndarray]:
        cfg, k = self.cfg, self.cfg.k
        if cfg.max_doc_chars is not None:
            text = text[: cfg.max_doc_chars]
        pieces = list(_pieces(text, cfg.piece_chars)) if len(text) > cfg.piece_chars else [text]
        carry = np.zeros(0, dtype=np.uint64)
        produced = False
        for i, piece in enumerate(pieces):
            if cfg.lowercase:
                piece = piece.lower()
            if cfg.shingle == "word":
                units = np.concatenate([carry, self._word_hashes(_WORD_RE.findall(piece))])
            else:
                piece = _SPACE_RE.sub(" ", piece)
                if i == 0:
                    piece = piece.lstrip(" ")
                if i == len(pieces) - 1:
                    piece = piece.rstrip(" ")
                # Code points as numbers: (n,) uint32 -> uint64, mixed so small ints spread.
                cps = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype="<u4")
                units = np.concatenate([carry, fmix64(cps.astype(np.uint64) + _COMBINE)])
            if units.shape[0] >= k:
                produced = True
                yield combine_kgrams(units, k)
            carry = units[-(k - 1) :] if k > 1 else units[:0]
        if not produced and carry.shape[0]:
            yield combine_kgrams(carry, carry.shape[0])


# ---------------------------------------------------------------------------------------------
# Permutations and signatures
# ---------------------------------------------------------------------------------------------


def make_permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """The permutation parameters (a, b), drawn exactly as datasketch draws them.

    Returns:
        a, b: (P,) uint64 for ``"mersenne61"`` (a in [1, p), b in [0, p)), (P,) uint32 for
        ``"affine32"`` (a odd).
    """
    gen = np.random.RandomState(seed)
    if scheme == "mersenne61":
        # datasketch draws (a_i, b_i) pair by pair; the call order fixes the values.
        pairs = []
        for _ in range(num_perm):
            a = gen.randint(1, MERSENNE_PRIME, dtype=np.uint64)
            b = gen.randint(0, MERSENNE_PRIME, dtype=np.uint64)
            pairs.append((a, b))
        ab = np.array(pairs, dtype=np.uint64)  # (P, 2)
        return ab[:, 0].copy(), ab[:, 1].copy()
    if scheme == "affine32":
        a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        return a, b
    raise ValueError(f"unknown scheme {scheme!r}")


class MinHasher:
    """Computes MinHash signatures for documents under one configuration.

    Example:
        >>> h = MinHasher(MinHashConfig(num_perm=64))
        >>> sig = h.signatures(["the quick brown fox jumps", "the quick brown fox leaps"])
        >>> sig.shape
        (2, 64)
    """

    def __init__(self, cfg: MinHashConfig | None = None) -> None:
        self.cfg = cfg or MinHashConfig()
        self.a, self.b = make_permutations(self.cfg.num_perm, self.cfg.seed, self.cfg.scheme)
        self._fast = _FastHasher(self.cfg) if self.cfg.hash_fn == "fast" else None
        self._buffers: dict[str, np.ndarray] = {}

    # -- shingle hashes ------------------------------------------------------------------------
    def shingle_hash_pieces(self, doc: str | bytes) -> Iterator[np.ndarray]:
        """Yield the 32-bit shingle hashes of ``doc`` piece by piece (each (n_i,) uint32)."""
        text = to_text(doc, self.cfg.decode_errors)
        if self._fast is not None:
            yield from self._fast.piece_hashes(text)
        else:
            for piece in iter_shingle_pieces(text, self.cfg):
                yield sha1_hash32(set(piece))  # repeated shingles cannot lower a minimum

    def shingle_hashes(self, doc: str | bytes) -> np.ndarray:
        """All distinct 32-bit shingle hashes of ``doc``, sorted: (n,) uint32."""
        parts = list(self.shingle_hash_pieces(doc))
        if not parts:
            return np.zeros(0, dtype=np.uint32)
        return np.unique(np.concatenate(parts))

    # -- permutations --------------------------------------------------------------------------
    def _permute_min(self, hv: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Apply all P permutations to a chunk of hashes and take the min per segment.

        Args:
            hv: (R,) uint32 shingle hashes of one chunk (already fmix32-ed for affine32).
            starts: (S,) int row offsets where each document's segment begins.

        Returns:
            (S, P) uint32 segment minima.
        """
        r = hv.shape[0]
        if self.cfg.scheme == "affine32":
            y32 = self._buffer("y32", np.uint32)[:r]  # (R, P)
            np.multiply(hv[:, None], self.a, out=y32)  # wraps mod 2^32: the modulo is free
            y32 += self.b
            return np.minimum.reduceat(y32, starts, axis=0)  # (S, P)
        # Preallocated (R, P) buffers written in place: one pass per operation, no temporaries,
        # and a block of R * P * 8 bytes that stays in cache between passes.
        y = self._buffer("y", np.uint64)[:r]
        z = self._buffer("z", np.uint64)[:r]
        np.multiply(hv.astype(np.uint64)[:, None], self.a, out=y)  # wraps mod 2^64, as datasketch
        y += self.b
        np.bitwise_and(y, MERSENNE_PRIME, out=z)
        y >>= np.uint64(61)
        z += y  # = y mod p, or y mod p + p in the (2^-58-rare) case z >= p
        if z.max() >= MERSENNE_PRIME:
            np.subtract(z, MERSENNE_PRIME, out=z, where=z >= MERSENNE_PRIME)
        # `& (2^32 - 1)` is the low 32-bit word of each uint64; on a little-endian machine that is
        # every other uint32 of the same memory, so viewing it saves a full masking pass.
        low = z.view(np.uint32)[:, 0::2] if _LITTLE_ENDIAN else (z & MAX_HASH32).astype(np.uint32)
        return np.minimum.reduceat(low, starts, axis=0)  # (S, P)

    def _buffer(self, name: str, dtype: type) -> np.ndarray:
        """A reusable (chunk_rows, P) work array (MinHasher is therefore not thread-safe)."""
        buf = self._buffers.get(name)
        if buf is None:
            shape = (self.cfg.chunk_rows, self.cfg.num_perm)
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    def signatures_from_hashes(
        self,
        hash_arrays: Iterable[np.ndarray],
        doc_ids: Iterable[int] | None = None,
        n_docs: int | None = None,
    ) -> np.ndarray:
        """Signatures from precomputed shingle hashes.

        Args:
            hash_arrays: one (n_i,) uint32 array per document (or per piece of a document).
            doc_ids: document index of each array (default 0, 1, 2, ...); arrays of the same
                document must be consecutive.
            n_docs: number of documents N (default: 1 + the largest id).

        Returns:
            (N, P) uint32; a document with no hashes keeps :data:`EMPTY_VALUE` everywhere.
        """
        arrays = [np.asarray(h, dtype=np.uint32) for h in hash_arrays]
        if doc_ids is None:
            ids = np.arange(len(arrays))
        else:
            ids = np.fromiter(doc_ids, dtype=np.int64, count=len(arrays))
        if ids.size and np.any(np.diff(ids) < 0):
            raise ValueError("doc_ids must be non-decreasing (pieces of one document consecutive)")
        n = int(n_docs if n_docs is not None else (ids.max() + 1 if ids.size else 0))
        sig = np.full((n, self.cfg.num_perm), EMPTY_VALUE, dtype=np.uint32)  # (N, P)
        if not arrays:
            return sig
        lengths = np.array([h.shape[0] for h in arrays], dtype=np.int64)
        hv = np.concatenate(arrays)  # (M,)
        row_doc = np.repeat(ids, lengths)  # (M,) document of each row
        if self.cfg.scheme == "affine32":
            hv = fmix32(hv)
        R = self.cfg.chunk_rows
        for s in range(0, hv.shape[0], R):
            docs = row_doc[s : s + R]
            starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])  # (S,)
            seg = self._permute_min(hv[s : s + R], starts)  # (S, P)
            d = docs[starts]  # distinct within the chunk, so fancy assignment is safe
            sig[d] = np.minimum(sig[d], seg)
        return sig

    def signatures(self, docs: Sequence[str | bytes], batch_rows: int = 1 << 18) -> np.ndarray:
        """MinHash signatures of many documents.

        Shingle hashes are gathered for a batch of documents (about ``batch_rows`` rows, which
        bounds memory) and permuted chunk by chunk.

        Returns:
            (N, P) uint32.
        """
        n = len(docs)
        sig = np.full((n, self.cfg.num_perm), EMPTY_VALUE, dtype=np.uint32)  # (N, P)
        arrays: list[np.ndarray] = []
        ids: list[int] = []
        rows = 0

        def flush() -> None:
            nonlocal arrays, ids, rows
            if arrays:
                first, last = ids[0], ids[-1]
                local_ids = [i - first for i in ids]
                part = self.signatures_from_hashes(arrays, local_ids, last - first + 1)
                sl = slice(ids[0], ids[-1] + 1)
                sig[sl] = np.minimum(sig[sl], part)
            arrays, ids, rows = [], [], 0

        for i, doc in enumerate(docs):
            for h in self.shingle_hash_pieces(doc):
                arrays.append(h)
                ids.append(i)
                rows += h.shape[0]
                if rows >= batch_rows:
                    flush()
        flush()
        return sig

    def signature(self, doc: str | bytes) -> np.ndarray:
        """Signature of one document: (P,) uint32."""
        return self.signatures([doc])[0]


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray | float:
    """Fraction of agreeing positions: the MinHash estimate of Jaccard similarity.

    Args:
        sig_a, sig_b: (..., P) signatures (broadcastable).

    Returns:
        (...) estimates; a float for two single signatures.
    """
    est = np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=-1)
    return float(est) if np.ndim(est) == 0 else est
