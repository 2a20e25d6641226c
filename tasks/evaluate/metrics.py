"""Intrinsic tokenizer metrics: the text side (words, bytes, characters) and the formulas.

Text side (computed once per evaluation text, shared by every tokenizer): UTF-8 bytes,
characters and *words* per document. A word is a maximal run of word characters (Unicode
categories L*, M*, N* and the connector punctuation ``_``, i.e. regex ``\\w`` plus combining
marks), except that in scripts written without spaces - Han, Hiragana, Katakana, Bopomofo,
Thai, Lao, Khmer, Myanmar - every character is its own word (its combining marks stay with it).
Whitespace and punctuation are not words.

Tokenizer side (``core.measure``), for the ids of one encode pass:

- bytes/token, chars/token = Σ bytes / Σ tokens;  fertility = Σ tokens / Σ words;
- continued-word rate = share of words with a token starting strictly inside them;
- vocabulary utilisation = distinct regular ids produced / regular vocabulary size;
- Rényi efficiency (Zouhar et al. 2023, tokenization-scorer): H_α(p) / log|V| with
  H_α = log Σ p_i^α / (1 - α); |V| = the number of token types observed (tokenization-scorer's
  default) and, as ``renyi_efficiency_full_vocab``, the whole regular vocabulary;
- UNK rate and byte-fallback rate = share of tokens that are UNK / byte-fallback ``<0xNN>``;
- round-trip errors = documents where decode(encode(x)) != the tokenizer's lossless form of x;
- token premium (Petrov et al. 2023) = Σ|T(s_lang)| / Σ|T(s_pivot)| over aligned pairs.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

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
    """Documents to evaluate on, with everything about the text that every tokenizer shares.
    Positions are in the concatenation ``"\\n".join(docs)`` (bytes and characters)."""

    docs: list[str]
    langs: np.ndarray  # str per doc ("und" if unknown)
    dataset: np.ndarray  # int per doc: index into dataset_names
    dataset_names: list[str]
    doc_byte_start: np.ndarray  # int64 per doc
    doc_bytes: np.ndarray
    doc_char_start: np.ndarray
    doc_chars: np.ndarray
    word_byte_start: np.ndarray  # int64 per word
    word_byte_end: np.ndarray
    word_char_start: np.ndarray
    word_char_end: np.ndarray
    word_doc: np.ndarray
    doc_words: np.ndarray

    @property
    def n_docs(self) -> int:
        return len(self.docs)

    @property
    def total_bytes(self) -> int:
        return int(self.doc_bytes.sum())

    @cached_property
    def lang_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct languages, code per doc)."""
        return np.unique(self.langs.astype(str), return_inverse=True)


def build_pool(docs: list[str], langs: list[str] | None = None,
               dataset: list[int] | None = None, dataset_names: list[str] | None = None) -> TextPool:
    """Byte/char/word statistics of ``docs`` (vectorised over the concatenated text)."""
    n = len(docs)
    joined = "\n".join(docs)
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
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
        dataset_names=names, doc_byte_start=doc_byte_start,
        doc_bytes=doc_bytes, doc_char_start=doc_char_start, doc_chars=doc_chars,
        word_byte_start=char_byte[ws], word_byte_end=char_byte[we], word_char_start=ws,
        word_char_end=we, word_doc=word_doc, doc_words=doc_words)


# ---------------------------------------------------------------------------------------------
# Distribution metrics


def renyi_entropy(counts: np.ndarray, alpha: float) -> float:
    """H_α in bits of the distribution given by ``counts`` (zeros ignored)."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    n = c.sum()
    if abs(alpha - 1.0) < 1e-12:
        p = c / n
        return float(-(p * np.log2(p)).sum())
    return float((np.log2(np.power(c, alpha).sum()) - alpha * np.log2(n)) / (1.0 - alpha))


def renyi_efficiency(counts: np.ndarray, alpha: float, vocab_size: int | None = None
                     ) -> float | None:
    """H_α / log2 |V|; |V| defaults to the number of observed types (tokenization-scorer)."""
    v = int(np.count_nonzero(counts)) if vocab_size is None else int(vocab_size)
    return renyi_entropy(counts, alpha) / float(np.log2(v)) if v > 1 else None


def token_length_histogram(lengths: np.ndarray, freq: np.ndarray, cap: int = 16
                           ) -> tuple[float, dict[str, float]]:
    """Mean token length in bytes and the share of produced tokens per length (cap = cap+)."""
    total = int(freq.sum())
    if total == 0:
        return 0.0, {}
    h = np.bincount(np.minimum(lengths, cap), weights=freq, minlength=cap + 1)
    return int((lengths * freq).sum()) / total, {
        (f"{i}+" if i == cap else str(i)): float(h[i] / total) for i in range(cap + 1) if h[i] > 0}


def continued_words(word_start: np.ndarray, word_end: np.ndarray,
                    token_starts: np.ndarray) -> np.ndarray:
    """Per word [start, end): does a token start strictly inside it? ``token_starts``: sorted
    token start positions in the same unit (bytes or characters)."""
    i = np.searchsorted(token_starts, word_start, side="right")
    if not len(token_starts):
        return np.zeros(len(word_start), dtype=bool)
    return (i < len(token_starts)) & (token_starts[np.minimum(i, len(token_starts) - 1)]
                                      < word_end)
