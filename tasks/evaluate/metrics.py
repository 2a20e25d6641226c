"""Intrinsic tokenizer metrics, derived from one encode pass: per-token work in two compiled
passes over the ids, side by side (numba; ``_align_chunk_numpy`` is the same in numpy), the
rest with numpy.

Text side (computed once per evaluation text, shared by every tokenizer): UTF-8 bytes,
characters and *words* per document. A word is a maximal run of word characters (Unicode
categories L*, M*, N* and the connector punctuation ``_``, i.e. regex ``\\w`` plus combining
marks), except that in scripts written without spaces - Han, Hiragana, Katakana, Bopomofo,
Thai, Lao, Khmer, Myanmar - every character is its own word (its combining marks stay with it).
Whitespace and punctuation are not words.

Tokenizer side, for a flat id array ``ids`` with document ``offsets``:

- bytes/token, chars/token = Σ bytes / Σ tokens;  fertility = Σ tokens / Σ words;
- continued-word rate = share of words with a token boundary strictly inside them;
- vocabulary utilisation = distinct regular ids produced / regular vocabulary size;
- Rényi efficiency (Zouhar et al. 2023, tokenization-scorer): H_α(p) / log|V| with
  H_α = log Σ p_i^α / (1 - α); |V| = the number of token types observed (tokenization-scorer's
  default) and, as ``renyi_efficiency_full_vocab``, the whole regular vocabulary;
- UNK rate and byte-fallback rate = share of tokens that are UNK / byte-fallback ``<0xNN>``;
- round-trip errors = documents where decode(encode(x)) != normalise(x);
- token premium (Petrov et al. 2023) = Σ|T(s_lang)| / Σ|T(s_pivot)| over aligned pairs.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from tokenfoundry.tasks.evaluate.adapters import Encoded, TokenizerAdapter, normalized_docs

#: Code point ranges of scripts written without spaces between words.
SCRIPTIO_CONTINUA = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31FF),  # Bopomofo ext, Katakana phonetic ext
    (0x3400, 0x4DBF),  # CJK ext A
    (0x4E00, 0x9FFF),  # CJK unified
    (0xF900, 0xFAFF),  # CJK compatibility
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x323AF),  # CJK ext B-H
)

WORD, CONTINUA, CONTINUA_MARK = 1, 2, 3


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """uint8 per code point: 0 not a word char, 1 word char, 2 per-character-word script,
    3 a combining mark of such a script (stays with its base character)."""
    n = 0x110000
    cls = np.zeros(n, dtype=np.uint8)
    cats = np.frombuffer("".join(unicodedata.category(chr(c))[0] for c in range(n)).encode("ascii"),
                         dtype=np.uint8)
    cls[(cats == ord("L")) | (cats == ord("M")) | (cats == ord("N"))] = WORD
    cls[ord("_")] = WORD
    is_mark = cats == ord("M")
    for lo, hi in SCRIPTIO_CONTINUA:
        seg = slice(lo, hi + 1)
        word = cls[seg] > 0
        cls[seg] = np.where(word, np.where(is_mark[seg], CONTINUA_MARK, CONTINUA), 0)
    return cls


@dataclass
class TextPool:
    """Documents to evaluate on, with everything about the text that every tokenizer shares."""

    docs: list[str]
    langs: np.ndarray  # str per doc ("und" if unknown)
    dataset: np.ndarray  # int per doc: index into dataset_names
    dataset_names: list[str]
    text_bytes: np.ndarray  # uint8: UTF-8 of "\n".join(docs)
    doc_byte_start: np.ndarray  # int64 per doc, into text_bytes
    doc_bytes: np.ndarray
    doc_char_start: np.ndarray
    doc_chars: np.ndarray
    word_byte_start: np.ndarray
    word_byte_end: np.ndarray
    word_char_start: np.ndarray
    word_char_end: np.ndarray
    word_doc: np.ndarray
    doc_words: np.ndarray
    seconds: float = 0.0

    @property
    def n_docs(self) -> int:
        return len(self.docs)

    @property
    def total_bytes(self) -> int:
        return int(self.doc_bytes.sum())

    def is_normalized(self, form: str) -> np.ndarray:
        """Per doc: already in Unicode normal form ``form``? Computed once per pool and form."""
        key = f"_normalized_{form}"
        cached = self.__dict__.get(key)
        if cached is None:
            cached = self.__dict__[key] = normalized_docs(self.docs, form)
        return cached

    @property
    def doc_word_start(self) -> np.ndarray:
        """int64 per doc + 1: the first word of each document (words are in document order)."""
        cached = self.__dict__.get("_doc_word_start")
        if cached is None:
            cached = np.zeros(self.n_docs + 1, dtype=np.int64)
            np.cumsum(self.doc_words, out=cached[1:])
            self.__dict__["_doc_word_start"] = cached
        return cached

    def group_sums(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        """(documents, bytes, characters, words) per group ``codes`` (float64 sums, as
        ``np.bincount`` with weights); text-side, computed once per pool and grouping."""
        key = ("_group_sums", k, codes.ctypes.data, len(codes))
        cache = self.__dict__.setdefault("_group_sums", {})
        hit = cache.get(key)
        if hit is None or hit[0] is not codes:
            sums = (np.bincount(codes, minlength=k),
                    np.bincount(codes, weights=self.doc_bytes, minlength=k),
                    np.bincount(codes, weights=self.doc_chars, minlength=k),
                    np.bincount(codes, weights=self.doc_words, minlength=k))
            hit = cache[key] = (codes, sums)
        return hit[1]

    def lang_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct languages, code per doc); computed once per pool."""
        cached = self.__dict__.get("_lang_codes")
        if cached is None:
            cached = np.unique(self.langs.astype(str), return_inverse=True)
            self.__dict__["_lang_codes"] = cached
        return cached


def build_pool(docs: list[str], langs: list[str] | None = None,
               dataset: list[int] | None = None, dataset_names: list[str] | None = None) -> TextPool:
    """Byte/char/word statistics of ``docs`` (vectorised over the concatenated text)."""
    import time

    t0 = time.perf_counter()
    n = len(docs)
    joined = "\n".join(docs)
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    text_bytes = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    doc_chars = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n)
    doc_char_start = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(doc_chars[:-1] + 1, out=doc_char_start[1:])
    u8 = (1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000))
    char_byte = np.zeros(len(cp) + 1, dtype=np.int64)
    np.cumsum(u8, out=char_byte[1:])
    doc_byte_start = char_byte[doc_char_start]
    doc_bytes = char_byte[doc_char_start + doc_chars] - doc_byte_start

    cls = char_classes()[cp] if len(cp) else np.zeros(0, dtype=np.uint8)
    w = cls > 0
    prev_w = np.concatenate([[False], w[:-1]])
    prev_cls = np.concatenate([[0], cls[:-1]]).astype(np.uint8)
    start = w & (~prev_w | (cls == CONTINUA) | ((cls == WORD) & (prev_cls >= CONTINUA)))
    next_start = np.concatenate([start[1:], [True]])
    next_w = np.concatenate([w[1:], [False]])
    end = w & (~next_w | next_start)
    ws = np.flatnonzero(start)
    we = np.flatnonzero(end) + 1
    word_doc = np.searchsorted(doc_char_start, ws, side="right") - 1
    doc_words = np.bincount(word_doc, minlength=n).astype(np.int64)
    names = dataset_names or ["text"]
    return TextPool(
        docs=docs,
        langs=np.array(langs if langs is not None else ["und"] * n, dtype=object),
        dataset=np.array(dataset if dataset is not None else [0] * n, dtype=np.int64),
        dataset_names=names, text_bytes=text_bytes, doc_byte_start=doc_byte_start,
        doc_bytes=doc_bytes, doc_char_start=doc_char_start, doc_chars=doc_chars,
        word_byte_start=char_byte[ws], word_byte_end=char_byte[we], word_char_start=ws,
        word_char_end=we, word_doc=word_doc, doc_words=doc_words,
        seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# Distribution metrics


def renyi_entropy(counts: np.ndarray, alpha: float) -> float:
    """H_α in bits of the distribution given by ``counts`` (zeros ignored)."""
    c = np.asarray(counts)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    if abs(alpha - 1.0) < 1e-12:
        p = c / c.sum(dtype=np.float64)
        return float(-(p * np.log2(p)).sum())
    # Σ p^α = Σ c^α / N^α, c^α from a table made once per α (counts are mostly small; the
    # few beyond the table are computed)
    n = float(c.sum(dtype=np.float64))
    table = _count_powers(float(alpha)) if c.dtype.kind in "iu" else None
    if table is None:
        s = float(np.power(c.astype(np.float64), alpha).sum())
    elif c.max() < len(table):
        s = float(np.take(table, c, mode="clip").sum())
    else:
        big = c[c >= len(table)]
        s = float(np.take(table, c, mode="clip").sum() - len(big) * table[-1]
                  + np.power(big.astype(np.float64), alpha).sum())
    return float((np.log2(s) - alpha * np.log2(n)) / (1.0 - alpha))


@lru_cache(maxsize=4)
def _count_powers(alpha: float, n: int = 1 << 14) -> np.ndarray:
    """``k ** alpha`` for k = 0 .. n - 1 (float64)."""
    return np.power(np.arange(n, dtype=np.float64), alpha)


def renyi_efficiency(counts: np.ndarray, alpha: float, vocab_size: int | None = None) -> float | None:
    """H_α / log2 |V|; |V| defaults to the number of observed types (tokenization-scorer)."""
    c = np.asarray(counts)
    v = int((c > 0).sum()) if vocab_size is None else int(vocab_size)
    if v <= 1:
        return None
    return renyi_entropy(c, alpha) / float(np.log2(v))


def renyi_efficiencies(counts: np.ndarray, alpha: float, vocab_size: int
                       ) -> tuple[float | None, float | None]:
    """``(renyi_efficiency(counts, alpha), renyi_efficiency(counts, alpha, vocab_size))`` with
    the entropy computed once."""
    c = np.asarray(counts)
    observed = int(np.count_nonzero(c))
    if observed <= 1 and vocab_size <= 1:
        return None, None
    h = renyi_entropy(c, alpha)
    return (h / float(np.log2(observed)) if observed > 1 else None,
            h / float(np.log2(int(vocab_size))) if vocab_size > 1 else None)


def token_length_histogram(lengths: np.ndarray, freq: np.ndarray, cap: int = 16
                           ) -> tuple[float, dict[str, float]]:
    """Mean token length in bytes and the share of produced tokens per length (cap = cap+)."""
    total = float(freq.sum())
    if total == 0:
        return 0.0, {}
    mean = float((lengths.astype(np.float64) * freq).sum() / total)
    h = np.bincount(np.minimum(lengths, cap), weights=freq, minlength=cap + 1)
    return mean, {(f"{i}+" if i == cap else str(i)): float(h[i] / total)
                  for i in range(cap + 1) if h[i] > 0}


@dataclass
class VocabSummary:
    """Everything the metrics need from the frequency array, in one pass over the vocabulary.

    ``observed``: the non-zero counts of regular tokens, in id order (what the Rényi entropy
    sums over); ``length_counts``: float64 per token length 0 .. cap (cap = ``cap``+), Σ freq
    (= ``np.bincount(np.minimum(lengths, cap), weights=freq)``); ``length_sum``: Σ length *
    freq; ``never``: how many regular tokens were never produced, ``never_first``: the first
    ``n_listed`` of them (ids, ascending)."""

    total: int
    observed: np.ndarray
    length_counts: np.ndarray
    length_sum: int
    never: int
    never_first: np.ndarray
    byte_fallback: int

    def token_length(self) -> tuple[float, dict[str, float]]:
        """``token_length_histogram(lengths, freq, cap)``, from the sums (exact integers)."""
        total = float(self.total)
        if total == 0:
            return 0.0, {}
        cap = len(self.length_counts) - 1
        h = self.length_counts
        return float(self.length_sum) / total, {
            (f"{i}+" if i == cap else str(i)): float(h[i] / total)
            for i in range(cap + 1) if h[i] > 0}


def vocab_summary(freq: np.ndarray, regular: np.ndarray, lengths: np.ndarray,
                  byte_fallback: np.ndarray, n_listed: int, cap: int = 16) -> VocabSummary:
    """:class:`VocabSummary` of ``freq`` (one compiled pass; numpy without numba)."""
    kernel = _compiled(_vocab_kernel)
    if kernel is None or len(lengths) != len(freq):
        return _vocab_summary_numpy(freq, regular, lengths, byte_fallback, n_listed, cap)
    observed = np.empty(len(freq), dtype=np.int64)
    hist = np.zeros(cap + 1, dtype=np.int64)
    first = np.empty(max(n_listed, 0), dtype=np.int64)
    n_obs, n_never, len_sum, total, bf = kernel(freq, regular, lengths, byte_fallback, cap,
                                                observed, hist, first)
    return VocabSummary(total=int(total), observed=observed[:n_obs],
                        length_counts=hist.astype(np.float64), length_sum=int(len_sum),
                        never=int(n_never), never_first=first[:min(n_never, len(first))],
                        byte_fallback=int(bf))


def _vocab_summary_numpy(freq, regular, lengths, byte_fallback, n_listed, cap=16):
    reg = freq[regular]
    never = np.flatnonzero(regular & (freq == 0))
    return VocabSummary(
        total=int(freq.sum()), observed=reg[reg > 0].astype(np.int64),
        length_counts=np.bincount(np.minimum(lengths, cap), weights=freq, minlength=cap + 1),
        length_sum=int((lengths.astype(np.int64) * freq).sum()), never=len(never),
        never_first=never[:max(n_listed, 0)], byte_fallback=int(freq[byte_fallback].sum()))


def _vocab_kernel(freq, regular, lengths, byte_fallback, cap, observed, hist,
                  never_first):  # pragma: no cover - compiled; checked against the numpy path
    n_obs = 0
    n_never = 0
    len_sum = 0
    total = 0
    bf = 0
    n_first = never_first.shape[0]
    # four interleaved histograms: neighbouring tokens of one length do not wait on each
    # other's read-modify-write of the same bin
    h4 = np.zeros((4, cap + 1), dtype=np.int64)
    for i in range(freq.shape[0]):
        c = np.int64(freq[i])
        if c == 0:  # (about half the vocabulary on a few MB of text)
            if regular[i]:
                if n_never < n_first:
                    never_first[n_never] = i
                n_never += 1
            continue
        length = np.int64(lengths[i])
        total += c
        len_sum += length * c
        h4[i & 3, min(length, cap)] += c
        if byte_fallback[i]:
            bf += c
        if regular[i]:
            observed[n_obs] = c
            n_obs += 1
    for j in range(cap + 1):
        hist[j] = h4[0, j] + h4[1, j] + h4[2, j] + h4[3, j]
    return n_obs, n_never, len_sum, total, bf


_COMPILED: dict = {}


def _compiled(fn):
    """``fn`` compiled with numba (GIL released, cached on disk) on first use, or None without
    numba (every caller keeps a numpy path)."""
    if fn not in _COMPILED:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency; numpy still works
            _COMPILED[fn] = None
        else:
            _COMPILED[fn] = numba.njit(cache=True, nogil=True)(fn)
    return _COMPILED[fn]


def count_per_doc(flags: np.ndarray, doc_start: np.ndarray) -> np.ndarray:
    """int64 per document: the True ``flags`` in ``flags[doc_start[d]:doc_start[d+1]]``."""
    kernel = _compiled(_count_kernel)
    if kernel is None:
        cs = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, out=cs[1:])
        return cs[doc_start[1:]] - cs[doc_start[:-1]]
    out = np.zeros(len(doc_start) - 1, dtype=np.int64)
    kernel(flags.view(np.uint8) if flags.dtype == np.bool_ else flags, doc_start, out)
    return out


def _count_kernel(flags, doc_start, out):  # pragma: no cover - compiled
    # a running count, then differences per document (a loop per document costs more than
    # its words when documents are short)
    cs = np.empty(flags.shape[0] + 1, dtype=np.int64)
    cs[0] = 0
    s = 0
    for i in range(flags.shape[0]):
        s += flags[i]
        cs[i + 1] = s
    for d in range(out.shape[0]):
        out[d] = cs[doc_start[d + 1]] - cs[doc_start[d]]


# ---------------------------------------------------------------------------------------------
# Alignment of tokens with the text (for continued words and the round trip)


@dataclass
class Alignment:
    """Per-document alignment results for one tokenizer."""

    aligned: np.ndarray  # bool per doc: token bytes concatenate to the doc's bytes
    mismatched_docs: np.ndarray  # int doc indices whose decoded bytes differ (aligned docs only)
    doc_continued: np.ndarray  # int64 per doc: its continued words (0 where not aligned)


def per_doc_sum(values: np.ndarray, offsets: np.ndarray, dtype=np.int64) -> np.ndarray:
    """Sum of ``values[offsets[i]:offsets[i+1]]`` per document (empty documents give 0).
    With ``dtype=np.uint64`` the sums wrap modulo 2**64 (used for hashes)."""
    cs = np.empty(len(values) + 1, dtype=dtype)
    cs[0] = 0
    np.cumsum(values, out=cs[1:], dtype=dtype)
    return cs[offsets[1:]] - cs[offsets[:-1]]


def _sum_per_doc(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``per_doc_sum`` by ``np.add.reduceat`` (no prefix-sum array; wraps like the values)."""
    n_docs = len(offsets) - 1
    out = np.zeros(n_docs, dtype=values.dtype)
    empty = offsets[1:] == offsets[:-1]
    if len(values) == 0 or empty.all():
        return out
    k = int(np.flatnonzero(~empty)[-1]) + 1  # documents after the last non-empty one are empty
    out[:k] = np.add.reduceat(values, offsets[:k])  # (their start would be out of range)
    out[empty] = 0  # reduceat gives values[start] for an empty range
    return out


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """concat(arange(l) for l in lengths) without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


# Round trip by hashing: every byte b at position j contributes R[b] * Binv**j (mod 2**64), so a
# document hashes to the sum over its bytes, and a token's bytes placed at s hash to
# Binv**s * h(token). A document round-trips when its tokens' hashes sum to its own hash: equal
# bytes give equal sums; different bytes give equal sums only by a collision of the random
# 64-bit values R (negligible; the compiled pass compares the low 56 bits - 48 when a token is
# 256 bytes or longer - see ``token_pass_tables``).
_HASH_B_INV = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2**64
_HASH_R = np.random.default_rng(20231).integers(1, 2**63, size=256, dtype=np.uint64) * 2 + 1


def _powers(n: int) -> np.ndarray:
    w = np.full(n, _HASH_B_INV, dtype=np.uint64)
    if n:
        w[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(w, dtype=np.uint64)


class PoolIndex:
    """Text-side arrays of a pool that every byte-exact tokenizer's alignment reuses (built once
    per pool, on first use). Byte positions here skip the ``"\\n"`` joining the documents, so
    when every document is aligned a token's start is just the running sum of token lengths.

    - ``doc_start``: int64 per doc + 1, start of each document (no separators);
    - ``doc_hash``: uint64 per doc, ``Σ_j R[text[j]] * Binv**j`` over the document's bytes;
    - ``doc_weight``: uint64 per doc, ``Binv**doc_start`` (the weight of its first byte);
    - ``word_start``, ``word_end``: int64 per word, its byte range (no separators);
    - for the numpy path, on first use: ``weights`` (uint64 per position, ``Binv**j``) and
      ``word_inside`` (int32 per position + 1: the word that position lies strictly inside,
      ``word start < j < word end``, else -1);
    - for the compiled passes, on first use: ``word_block``, ``word_inside`` in one byte per
      position (kept; the int32 arrays above are dropped once the compiled pass ran).
    """

    def __init__(self, pool: TextPool):
        n_docs = pool.n_docs
        self.doc_start = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(pool.doc_bytes, out=self.doc_start[1:])
        n = self.n_bytes = int(self.doc_start[-1])
        if n_docs > 1:  # drop the separators: they sit right before documents 1..n-1
            sep = np.ones(len(pool.text_bytes), dtype=bool)
            sep[pool.doc_byte_start[1:] - 1] = False
            text = pool.text_bytes[sep]
        else:
            text = pool.text_bytes
        weights = _powers(n + 1)
        with np.errstate(over="ignore"):
            self.doc_hash = _sum_per_doc(_HASH_R[text] * weights[:n], self.doc_start)
        self.doc_weight = weights[self.doc_start]
        self.__dict__["weights"] = weights  # kept only until the compiled pass is known to run
        self.word_start = pool.word_byte_start - pool.word_doc  # separators before the word's doc
        self.word_end = pool.word_byte_end - pool.word_doc
        self.n_words = len(self.word_start)

    @cached_property
    def weights(self) -> np.ndarray:
        return _powers(self.n_bytes + 1)

    @cached_property
    def word_inside(self) -> np.ndarray:
        n, ws, we = self.n_bytes, self.word_start, self.word_end
        mark = np.zeros(n + 2, dtype=np.int32)
        mark[ws + 1] += 1  # inside-ness: +1 after a word's first byte, -1 at its end (words
        mark[we] -= 1  # do not overlap, so neither index array repeats a position)
        inside = np.cumsum(mark[:n + 1], dtype=np.int32) > 0
        wid = np.zeros(n + 1, dtype=np.int32)
        wid[ws] = 1
        np.cumsum(wid, out=wid)
        return np.where(inside, wid - 1, -1).astype(np.int32)

    @cached_property
    def word_block(self) -> tuple[np.ndarray, np.ndarray]:
        """``word_inside`` in one byte per position, for the compiled pass: ``(base, rel)`` with
        the word index ``base[j >> 8] + rel[j]`` of position j, or ``rel[j] == 255`` when j is
        not strictly inside a word (a word with an interior has >= 2 bytes, so at most 128 of
        them meet a 256-byte block: ``rel`` <= 127). The pass reads one byte per token start
        from an array as long as the text instead of chasing the next word's end (a load that
        depends on the previous token's: ~5 ns per token)."""
        inside = self.word_inside
        n = len(inside)
        nb = (n + 255) >> 8
        pad = np.full(nb << 8, -1, dtype=np.int32)
        pad[:n] = inside
        blocks = pad.reshape(nb, 256)
        big = np.iinfo(np.int32).max
        base = np.where(blocks >= 0, blocks, big).min(axis=1)
        base[base == big] = 0
        rel = blocks - base[:, None]
        rel[blocks < 0] = 255
        return base.astype(np.int64), rel.astype(np.uint8).ravel()[:n]

    def drop_position_arrays(self) -> None:
        """Free the per-position arrays (the compiled pass does not use them)."""
        self.__dict__.pop("weights", None)
        self.__dict__.pop("word_inside", None)


def pool_index(pool: TextPool) -> PoolIndex:
    """The pool's :class:`PoolIndex`, built on first use and cached on the pool."""
    cached = getattr(pool, "_index", None)
    if cached is None:
        cached = PoolIndex(pool)
        pool._index = cached  # noqa: SLF001
    return cached


def token_hashes(adapter: TokenizerAdapter) -> np.ndarray:
    """h[id] = Σ_k R[byte_k] * Binv**k over the token's bytes (mod 2**64); cached per adapter."""
    cached = getattr(adapter, "_token_hashes", None)
    if cached is None and adapter.stored_facts is not None:
        cached = adapter._token_hashes = adapter.stored_facts["token_hash"]  # noqa: SLF001
    if cached is None:
        flat, _ = adapter.byte_table
        lens = adapter.token_bytes_len.astype(np.int64)
        k = _ranges(lens)
        w = _powers(int(lens.max()) + 1 if len(lens) else 1)
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        with np.errstate(over="ignore"):
            cached = per_doc_sum(_HASH_R[flat] * w[k], offsets, dtype=np.uint64)
        adapter._token_hashes = cached  # noqa: SLF001
    return cached


def token_powers(adapter: TokenizerAdapter) -> np.ndarray:
    """``Binv**L`` for every token length L (0 .. longest token); cached per adapter."""
    cached = getattr(adapter, "_token_powers", None)
    if cached is None:
        longest = int(adapter.token_bytes_len.max()) if len(adapter.token_bytes_len) else 0
        cached = adapter._token_powers = _powers(longest + 1)  # noqa: SLF001
    return cached


def token_lengths64(adapter: TokenizerAdapter) -> np.ndarray:
    """``token_bytes_len`` as int64 (gathered per token without a cast); cached per adapter."""
    cached = getattr(adapter, "_token_len64", None)
    if cached is None:
        cached = adapter.token_bytes_len.astype(np.int64)
        adapter._token_len64 = cached  # noqa: SLF001
    return cached


def token_pass_tables(adapter: TokenizerAdapter) -> tuple[np.ndarray, int, np.ndarray]:
    """The compiled passes' per-token tables, cached per adapter: ``(packed, shift, lengths)``.
    ``packed[id]`` holds the token's byte length in its top bits and the low ``shift`` bits of
    its hash below them (one 8-byte load per token: the table is half the size of separate
    hash and length words, and the pass is bound by its cache misses). Products and sums mod
    2**64 reduce to the same values mod 2**shift, so the length bits never reach the hash bits
    a document is compared on. ``lengths``: the byte lengths as the smallest unsigned type."""
    cached = getattr(adapter, "_pass_tables", None)
    if cached is None:
        tl = adapter.token_bytes_len
        longest = int(tl.max()) if len(tl) else 0
        bits = 8 if longest < 1 << 8 else 16 if longest < 1 << 16 else 32
        shift = 64 - bits
        packed = token_hashes(adapter) & np.uint64((1 << shift) - 1)
        packed |= tl.astype(np.uint64) << np.uint64(shift)
        small = tl.astype(np.uint8 if bits == 8 else np.uint16 if bits == 16 else np.uint32)
        cached = adapter._pass_tables = (packed, shift, small)  # noqa: SLF001
    return cached


_POOL: list = []


def _second_thread():
    """One long-lived worker thread for the passes run beside the caller's (starting a thread
    per evaluation cost ~0.7 ms)."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-eval-pass"))
    return _POOL[0]


@dataclass
class ChunkAlignment:
    """Alignment of the documents ``d0 .. d0 + len(aligned) - 1`` (one encoded chunk)."""

    d0: int
    aligned: np.ndarray  # bool per doc of the chunk
    mismatched_docs: np.ndarray  # int, pool doc indices (aligned docs whose bytes differ)
    doc_continued: np.ndarray  # int64 per doc of the chunk: continued words (0: not aligned)


def align_chunk(pool: TextPool, adapter: TokenizerAdapter, enc: Encoded, d0: int,
                docs_mask: np.ndarray, freq: np.ndarray | None = None,
                parallel: bool = False) -> ChunkAlignment:
    """Byte-level alignment of a byte-exact tokenizer's encoding ``enc`` of the pool documents
    ``d0 .. d0 + len(docs_mask) - 1``, for the documents in ``docs_mask``; with ``freq``, also
    adds every token of the chunk to the frequency array ``freq`` (length = vocabulary).

    Two compiled passes over the ids when numba is available (``_hash_kernel``: frequencies,
    alignment and round trip; ``_words_kernel``: continued words), on two threads with
    ``parallel`` (they release the GIL and write disjoint arrays), else numpy
    (``_align_chunk_numpy``); both compute the same definitions (see there).
    """
    kernels = _kernel()
    if kernels is not None and len(enc.ids):
        hash_k, words_k = kernels
        idx = pool_index(pool)
        d1 = d0 + len(docs_mask)
        aligned = np.zeros(len(docs_mask), dtype=bool)
        mism = np.zeros(len(docs_mask), dtype=bool)
        cont = np.zeros(len(docs_mask), dtype=np.int64)
        counts = freq if freq is not None else np.zeros(0, dtype=np.int64)
        wbase, wrel = idx.word_block
        packed, shift, tl = token_pass_tables(adapter)
        doc_start = idx.doc_start[d0:d1 + 1]
        doc_bytes = pool.doc_bytes[d0:d1]

        def words() -> int:
            return words_k(enc.ids, enc.offsets, doc_start, doc_bytes, docs_mask, tl, wbase,
                           wrel, cont)

        def hashes() -> int:
            return hash_k(enc.ids, enc.offsets, doc_bytes, idx.doc_hash[d0:d1],
                          idx.doc_weight[d0:d1], docs_mask, packed, shift,
                          token_powers(adapter), aligned, mism, counts, freq is not None)

        if parallel:
            second = _second_thread().submit(words)
            try:
                bad = hashes()
            finally:
                bad_w = second.result()
        else:
            bad = hashes()
            bad_w = words() if bad < 0 else bad
        if max(bad, bad_w) < 0:
            idx.drop_position_arrays()
            return ChunkAlignment(d0=d0, aligned=aligned,
                                  mismatched_docs=np.flatnonzero(mism) + d0, doc_continued=cont)
        # an id outside the token table: the numpy path raises the IndexError it always did
        # (the hash pass took its counts back out of ``freq``)
    if freq is not None and len(enc.ids):
        freq += np.bincount(enc.ids_intp, minlength=len(freq))[:len(freq)]
    return _align_chunk_numpy(pool, adapter, enc, d0, docs_mask)


def _kernel():
    """The compiled per-token passes ``(_hash_kernel, _words_kernel)``, or None without
    numba."""
    hash_k, words_k = _compiled(_hash_kernel), _compiled(_words_kernel)
    return None if hash_k is None or words_k is None else (hash_k, words_k)


def _hash_kernel(ids, offsets, doc_bytes, doc_hash, doc_weight, docs_mask, packed, shift,
                 powtab, aligned, mism, freq, count):  # pragma: no cover - compiled
    """One pass over a chunk's ids, document by document: count each id into ``freq`` (if
    ``count``); for a document in ``docs_mask``: a token starting at byte s of the text (its
    document's start + the lengths of the tokens before it) adds ``Binv**s * h(token)`` to the
    document's hash (``Binv**s`` kept as a running product of ``powtab[length]``, from the
    document's ``doc_weight``; length and hash from ``packed``, see ``token_pass_tables``). The
    document is aligned when its token lengths sum to its byte length, and round-trips when
    its hash equals ``doc_hash`` in the low ``shift`` bits. Returns -1, or the index of the
    first id outside the table (then the chunk's counts are taken back out of ``freq`` and
    nothing else is meaningful). Same definitions as the numpy path; compiled with numba."""
    n_table = packed.shape[0]
    n_freq = freq.shape[0]
    sh = np.uint64(shift)
    low = (np.uint64(1) << sh) - np.uint64(1)
    bad = -1
    for d in range(docs_mask.shape[0]):
        w = doc_weight[d]
        h = np.uint64(0)
        length_sum = np.int64(0)
        for k in range(offsets[d], offsets[d + 1]):  # (hashed also outside docs_mask: unused)
            t = ids[k]
            if t >= n_table:
                bad = k
                break
            if count and t < n_freq:
                freq[t] += 1
            e = packed[t]
            length = np.int64(e >> sh)
            h += w * e  # (the length bits only reach bits >= shift)
            w *= powtab[length]
            length_sum += length
        if bad >= 0:
            break
        if docs_mask[d] and length_sum == doc_bytes[d]:
            aligned[d] = True
            if (h - doc_hash[d]) & low:
                mism[d] = True
    if bad >= 0 and count:  # take this chunk's counts back out
        for i in range(offsets[0], bad):
            if ids[i] < n_freq:
                freq[ids[i]] -= 1
    return bad


def _words_kernel(ids, offsets, doc_start, doc_bytes, docs_mask, tl, wbase, wrel,
                  doc_continued):  # pragma: no cover - compiled
    """The continued words of a chunk, counted per document in ``docs_mask`` into
    ``doc_continued``: a token starting at byte s lies strictly inside the word
    ``wbase[s >> 8] + wrel[s]`` (``PoolIndex.word_block``; ``wrel[s] == 255``: in no word), and
    starts ascend, so a word is new when it differs from the previous inside-start's word (no
    store per token). A document whose token lengths do not sum to its byte length (not
    aligned) counts 0. Returns -1, or the index of the first id outside the table (then
    nothing is meaningful). Compiled with numba."""
    n_table = tl.shape[0]
    for d in range(docs_mask.shape[0]):
        if not docs_mask[d]:
            continue
        pos = doc_start[d]
        end = doc_start[d + 1]
        last = np.int64(-1)
        c = np.int64(0)
        for k in range(offsets[d], offsets[d + 1]):
            t = ids[k]
            if t >= n_table:
                return k
            if pos < end:  # (selects, not branches: whether a start is inside is unpredictable)
                r = np.int64(wrel[pos])
                word = wbase[pos >> 8] + r
                c += (r != 255) & (word != last)
                last = word if r != 255 else last
            pos += np.int64(tl[t])
        doc_continued[d] = c if pos - doc_start[d] == doc_bytes[d] else 0
    return -1


def _align_chunk_numpy(pool: TextPool, adapter: TokenizerAdapter, enc: Encoded, d0: int,
                       docs_mask: np.ndarray) -> ChunkAlignment:
    """Byte-level alignment of a byte-exact tokenizer's encoding ``enc`` of the pool documents
    ``d0 .. d0 + len(docs_mask) - 1``, for the documents in ``docs_mask``.

    Token byte lengths (a lookup table) give every token's start offset in the text; a document
    is aligned when its token lengths sum to its byte length. Its round trip is exact when the
    bytes its tokens stand for are the document's bytes: compared by position-weighted hashes
    (token t placed at s hashes to ``Binv**s * h(t)``; the document's tokens must sum to the
    document's hash), without decoding. A word is continued when a token starts strictly inside
    it (a lookup of each token start in ``PoolIndex.word_inside``); counted per document.
    """
    idx = pool_index(pool)
    d1 = d0 + len(docs_mask)
    ids = enc.ids_intp
    counts = enc.counts
    n_tok = len(ids)
    # np.take: the same gather as fancy indexing, without its overhead on 1-D tables
    tl = np.take(token_lengths64(adapter), ids)
    cum = np.empty(n_tok + 1, dtype=np.int64)
    cum[0] = idx.doc_start[d0]
    np.cumsum(tl, out=cum[1:])
    if cum[0]:
        cum[1:] += cum[0]
    at_doc = cum[enc.offsets]
    aligned = docs_mask & (np.diff(at_doc) == pool.doc_bytes[d0:d1])
    all_aligned = bool(aligned.all())
    if all_aligned:  # every document's tokens end where it ends: starts are the running sum
        starts = cum[:-1]
    else:  # shift each document's tokens to its start; tokens of other documents are dropped
        keep = np.repeat(aligned, counts)
        starts = cum[:-1] + np.repeat(idx.doc_start[d0:d1] - at_doc[:-1], counts)
        starts[~keep] = 0  # (their hashes are not compared: their documents are not aligned)
    with np.errstate(over="ignore"):
        contrib = np.take(idx.weights, starts)
        contrib *= np.take(token_hashes(adapter), ids)
        doc_sum = _sum_per_doc(contrib, enc.offsets)
    mism = np.flatnonzero(aligned & (doc_sum != idx.doc_hash[d0:d1])) + d0
    inside = np.take(idx.word_inside, starts if all_aligned else starts[keep])
    if len(inside):  # starts ascend, so a word's interior starts are consecutive: keep the first
        first = np.empty(len(inside), dtype=bool)
        first[0] = True
        np.not_equal(inside[1:], inside[:-1], out=first[1:])
        first &= inside >= 0
        inside = inside[first]
    cont = np.bincount(pool.word_doc[inside] - d0, minlength=len(docs_mask)).astype(np.int64)
    return ChunkAlignment(d0=d0, aligned=aligned, mismatched_docs=mism, doc_continued=cont)


def merge_alignments(pool: TextPool, parts: list[ChunkAlignment]) -> Alignment:
    """One :class:`Alignment` for the pool from its chunks (documents not in any chunk are not
    aligned)."""
    aligned = np.zeros(pool.n_docs, dtype=bool)
    cont = np.zeros(pool.n_docs, dtype=np.int64)
    for p in parts:
        aligned[p.d0:p.d0 + len(p.aligned)] = p.aligned
        cont[p.d0:p.d0 + len(p.aligned)] = p.doc_continued
    mism = (np.concatenate([p.mismatched_docs for p in parts]) if parts
            else np.zeros(0, dtype=np.int64))
    return Alignment(aligned=aligned, mismatched_docs=mism, doc_continued=cont)


def align_bytes(pool: TextPool, adapter: TokenizerAdapter, enc: Encoded,
                docs_mask: np.ndarray) -> Alignment:
    """:func:`align_chunk` over the whole pool (``enc`` encodes every document)."""
    return merge_alignments(pool, [align_chunk(pool, adapter, enc, 0, docs_mask)])


def continued_from_offsets(pool: TextPool, enc: Encoded, docs: np.ndarray) -> tuple[np.ndarray,
                                                                                      np.ndarray]:
    """Continued-word flags from HF char offsets for ``docs`` (the slower, general path)."""
    n_chars = int(pool.doc_char_start[-1] + pool.doc_chars[-1]) if pool.n_docs else 0
    is_boundary = np.zeros(n_chars + 1, dtype=bool)
    known_docs = np.zeros(pool.n_docs, dtype=bool)
    if enc.encodings is None:
        return np.zeros(len(pool.word_doc), dtype=bool), known_docs[pool.word_doc]
    for d in docs:
        offs = enc.encodings[int(d)].offsets
        if offs:
            s = np.fromiter((o[0] for o in offs), dtype=np.int64, count=len(offs))
            is_boundary[pool.doc_char_start[d] + s] = True
        known_docs[d] = True
    cb = np.cumsum(is_boundary, dtype=np.int32)
    ws, we = pool.word_char_start, pool.word_char_end
    inside = cb[np.maximum(we - 1, ws)] - cb[ws]
    return inside > 0, known_docs[pool.word_doc]
