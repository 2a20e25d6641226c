"""MinHash signatures over word n-gram shingles, vectorised over a whole batch of documents.

A document's shingles are its word n-grams (default n = 5). Words are the whitespace-separated
tokens of the lower-cased text with punctuation stripped from both ends (Arrow kernels, in C++),
so "Licence," and "licence" are one word and "don't" stays one word. Each word gets a 64-bit
polynomial hash of its UTF-8 bytes computed for the whole batch at once (``word_hashes``: one
prefix sum over the bytes, no Python loop), and the hash of the shingle starting at word j is

    s_j = fmix64( sum_k  h(w_{j+k}) * M_k  mod 2^64 )                k = 0 .. n-1

with fixed odd multipliers M_k and MurmurHash3's 64-bit finaliser, so shingle hashes are stable
across machines, processes and library versions (no Python ``hash()``). Permutation i is the
multiply-add-shift hash of Dietzfelbinger (strongly universal for 32-bit keys)

    pi_i(x) = ((a_i * x + b_i) mod 2^64) >> 32,      x = s_j mod 2^32,

with a_i, b_i derived from xxh3-64 of ``"{seed}:a:{i}"`` / ``"{seed}:b:{i}"``. The signature is
sig_i(D) = min_j pi_i(s_j) (uint32), computed for all permutations at once as one
(shingles x permutations) numpy matrix per chunk, reduced per document with ``minimum.reduceat``.
Pr[sig_i(A) == sig_i(B)] estimates the Jaccard similarity |A n B| / |A u B| of the shingle sets.

Rules for unusual documents (documented in the README):
- fewer than n words but at least one: the whole word sequence is one shingle;
- no word at all (empty, whitespace/punctuation only, null): no shingles; the document never
  takes part in near-duplicate detection (``has_shingles`` is False, signature all 0xFFFFFFFF).

LSH parameters: ``optimal_param`` is the search of datasketch / text-dedup that picks bands b and
rows r (b * r <= num_perm) minimising the weighted integrals of the false-positive probability
1 - (1 - s^r)^b over s in [0, t] and the false-negative probability over s in [t, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

#: Characters stripped from both ends of every whitespace-separated token (ASCII punctuation,
#: typographic quotes and dashes, CJK and Spanish punctuation).
PUNCTUATION = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2014\u2013\u2026\u00b7\u2022\u00a1\u00bf"
    "\u3001\u3002\uff0c\uff1a\uff1b\uff01\uff1f\uff08\uff09\u300c\u300d\u300e\u300f\u3010\u3011"
)
#: Arrow's whitespace set: RE2's \s is ASCII (\t \n \f \r space); \x0b, \x1c-\x1f, \x85 and \p{Z} (no-break,
#: en/em/ideographic spaces, line/paragraph separators) complete the set.
_WHITESPACE = r"[\s\x0b\x1c-\x1f\x85\p{Z}]+"
MAX_HASH = np.uint32(0xFFFFFFFF)
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_CHUNK = 4096  # shingles per (num_perm x chunk) matrix: 128 x 4k x 8 B = 4 MB (cache-sized)


def _multipliers(n: int, tag: str) -> np.ndarray:
    """n fixed odd 64-bit constants (stable: xxh3-64 of a tag)."""
    return np.array([xxhash.xxh3_64_intdigest(f"tokenfoundry:{tag}:{k}".encode()) | 1 for k in range(n)],
                    dtype=np.uint64)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (avalanche), vectorised, on a uint64 array (in place)."""
    x ^= x >> np.uint64(33)
    x *= _C1
    x ^= x >> np.uint64(33)
    x *= _C2
    x ^= x >> np.uint64(33)
    return x


@dataclass(frozen=True)
class Permutations:
    """The num_perm hash functions pi_i(x) = ((a_i x + b_i) mod 2^64) >> 32 of a seed."""

    num_perm: int
    seed: int
    a: np.ndarray
    b: np.ndarray

    @classmethod
    def make(cls, num_perm: int, seed: int = 42) -> Permutations:
        a = np.array([xxhash.xxh3_64_intdigest(f"{seed}:a:{i}".encode()) | 1 for i in range(num_perm)],
                     dtype=np.uint64)
        b = np.array([xxhash.xxh3_64_intdigest(f"{seed}:b:{i}".encode()) for i in range(num_perm)],
                     dtype=np.uint64)
        return cls(num_perm, seed, a, b)


def words_of(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of a batch: (uint64 hash per word in document order, word count per document).

    Null texts count as empty.
    """
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array(texts, pa.large_string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n_docs = len(texts)
    texts = pc.fill_null(texts, "")
    # Not pc.utf8_split_whitespace: in pyarrow 26 it sometimes misses whitespace at the very end
    # of an array's data (the last document's trailing "\n" stays on its last word), which made
    # signatures depend on batch layout. A RE2 split on the same Unicode White_Space set is exact.
    parts = pc.split_pattern_regex(pc.utf8_lower(texts), _WHITESPACE)
    flat = pc.utf8_trim(pc.list_flatten(parts), characters=PUNCTUATION)
    parent = pc.list_parent_indices(parts)
    keep = pc.greater(pc.utf8_length(flat), 0)
    flat = pc.filter(flat, keep)
    parent = pc.filter(parent, keep).to_numpy(zero_copy_only=False)
    counts = np.bincount(parent, minlength=n_docs).astype(np.int64) if n_docs else np.zeros(0, np.int64)
    if len(flat) == 0:
        return np.zeros(0, np.uint64), counts
    return word_hashes(flat), counts


_K = np.uint64(0x9E3779B97F4A7C15 | 1)  # odd: invertible mod 2^64
_K_INV = np.uint64(pow(int(_K), -1, 1 << 64))


_POWERS: dict[int, np.ndarray] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) mod 2^64 (cached per base, grown by doubling)."""
    have = _POWERS.get(int(base))
    if have is None or len(have) < n:
        size = max(n, 2 * (0 if have is None else len(have)), 1 << 16)
        p = np.full(size, base, dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):
            have = np.multiply.accumulate(p)
        _POWERS[int(base)] = have
    return have[:n]


def word_hashes(words: pa.Array) -> np.ndarray:
    """A stable 64-bit hash of every string, vectorised over the UTF-8 buffer (no Python loop).

    h(w) = fmix64( sum_i (byte_i + 1) * K^i  +  len(w) * C   mod 2^64 ): one prefix sum over all
    bytes of the batch gives every word's polynomial, shifted to start at K^0 by K^-start (K odd).
    """
    words = words.cast(pa.large_string()) if words.type != pa.large_string() else words
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    n = len(words)
    offs = np.frombuffer(words.buffers()[1], dtype=np.int64, count=n + 1, offset=words.offset * 8)
    data = np.frombuffer(words.buffers()[2], dtype=np.uint8)[offs[0]:offs[-1]]
    offs = offs - offs[0]
    starts, ends = offs[:-1], offs[1:]
    nb = len(data)
    with np.errstate(over="ignore"):
        terms = (data.astype(np.uint64) + np.uint64(1)) * _powers(_K, nb + 1)[:nb]
        prefix = np.zeros(nb + 1, dtype=np.uint64)
        np.add.accumulate(terms, out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * _powers(_K_INV, nb + 1)[starts]
        h += (ends - starts).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    return fmix64(h)


def shingle_hashes(word_hash: np.ndarray, counts: np.ndarray, ngram: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes (uint64) of every document, concatenated, and the shingle count per doc.

    A document with w >= ngram words has w - ngram + 1 shingles; with 1 <= w < ngram, one shingle
    (all its words); with no word, none.
    """
    n_docs = len(counts)
    starts = np.zeros(n_docs, dtype=np.int64)
    if n_docs:
        starts[1:] = np.cumsum(counts)[:-1]
    n_sh = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    total = int(n_sh.sum())
    if total == 0:
        return np.zeros(0, np.uint64), n_sh
    # position (in the flat word array) of every shingle's first word
    doc_of = np.repeat(np.arange(n_docs), n_sh)
    sh_start = np.zeros(n_docs, dtype=np.int64)
    sh_start[1:] = np.cumsum(n_sh)[:-1]
    rel = np.arange(total, dtype=np.int64) - sh_start[doc_of]
    pos = starts[doc_of] + rel
    avail = np.minimum(counts[doc_of] - rel, ngram)  # words of this shingle (< ngram: short doc)
    mult = _multipliers(ngram, "shingle")
    padded = np.concatenate([word_hash, np.zeros(ngram, np.uint64)])
    acc = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(ngram):
            term = padded[pos + k] * mult[k]
            if k:
                term[avail <= k] = 0
            acc += term
        acc += avail.astype(np.uint64)  # the length distinguishes short-doc shingles
        fmix64(acc)
    return acc, n_sh


def signatures_from_shingles(sh: np.ndarray, n_sh: np.ndarray, perms: Permutations) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash signatures; rows of docs without shingles are all max.

    Works on a (num_perm x chunk) matrix so that the per-document minimum is a contiguous
    ``minimum.reduceat`` along rows; the ``>> 32`` is applied to the minima (a monotone map).
    """
    n_docs = len(n_sh)
    sig = np.full((perms.num_perm, n_docs), np.uint64(0xFFFFFFFF) << np.uint64(32), dtype=np.uint64)
    if len(sh) == 0:
        return np.full((n_docs, perms.num_perm), MAX_HASH, dtype=np.uint32)
    x = (sh & np.uint64(0xFFFFFFFF))[None, :]
    bounds = np.zeros(n_docs + 1, dtype=np.int64)
    bounds[1:] = np.cumsum(n_sh)
    docs_with = np.flatnonzero(n_sh > 0)
    doc_starts = bounds[docs_with]
    total = len(sh)
    a, b = perms.a[:, None], perms.b[:, None]
    buf = np.empty((perms.num_perm, min(_CHUNK, total)), dtype=np.uint64)
    for c0 in range(0, total, _CHUNK):
        c1 = min(c0 + _CHUNK, total)
        m = buf[:, : c1 - c0]
        with np.errstate(over="ignore"):
            np.multiply(a, x[:, c0:c1], out=m)
            m += b
        # segments: the document boundaries inside the chunk, plus the chunk start
        lo = int(np.searchsorted(doc_starts, c0, side="right")) - 1
        hi = int(np.searchsorted(doc_starts, c1, side="left"))
        seg_docs = docs_with[lo:hi]
        seg_starts = np.maximum(doc_starts[lo:hi], c0) - c0
        mins = np.minimum.reduceat(m, seg_starts, axis=1)
        sig[:, seg_docs] = np.minimum(sig[:, seg_docs], mins)
    return np.ascontiguousarray((sig >> np.uint64(32)).astype(np.uint32).T)


def signatures(texts: pa.Array | list[str | None], perms: Permutations, ngram: int = 5
               ) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures of a batch of texts: (uint32 [n, num_perm], has_shingles bool [n])."""
    wh, counts = words_of(texts if isinstance(texts, (pa.Array, pa.ChunkedArray))
                          else pa.array(texts, pa.large_string()))
    sh, n_sh = shingle_hashes(wh, counts, ngram)
    return signatures_from_shingles(sh, n_sh, perms), n_sh > 0


def shingle_set(text: str | None, ngram: int = 5) -> set[int]:
    """The exact shingle-hash set of one text (same rules as the signatures); for verification
    and for reports that show a pair's true Jaccard next to its estimate."""
    wh, counts = words_of(pa.array([text], pa.large_string()))
    sh, _ = shingle_hashes(wh, counts, ngram)
    return set(sh.tolist())


def jaccard(a: set[int], b: set[int]) -> float:
    """|a n b| / |a u b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal signature positions, row-wise for 2-D inputs."""
    return (sig_a == sig_b).mean(axis=-1)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64 bucket keys: a stable 64-bit hash of each band's ``rows`` values."""
    n = sig.shape[0]
    used = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    mult = _multipliers(rows, "band")
    with np.errstate(over="ignore"):
        acc = (used * mult[None, None, :]).sum(axis=2, dtype=np.uint64)
        acc += np.arange(bands, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)
        return fmix64(acc)


# ---- LSH parameters -------------------------------------------------------------------------------


def _integrate(f, a: float, b: float, n: int = 200) -> float:
    xs = np.linspace(a, b, n + 1)
    return float(np.trapezoid(f(xs), xs))


def false_positive_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: 1.0 - (1.0 - s ** float(r)) ** float(b), 0.0, threshold)


def false_negative_area(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: (1.0 - s ** float(r)) ** float(b), threshold, 1.0)


def optimal_param(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted FP + FN areas."""
    best, best_err = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = (fp_weight * false_positive_area(threshold, b, r)
                   + fn_weight * false_negative_area(threshold, b, r))
            if err < best_err:
                best, best_err = (b, r), err
    return best


def collision_probability(s: float | np.ndarray, bands: int, rows: int):
    """Probability that two docs with Jaccard s share at least one bucket: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands
