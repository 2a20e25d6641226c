"""The held-out split: one stated rule shared by training and evaluation.

The split of a document depends on its *content*, never on where its file sits: its key is the
first 60 bits of its content hash (``content_hash``, xxh3-128 of the normalised text, see
``schemas.tables.CORPUS_SCHEMA``; inputs without that column use ``md5(text)``)::

    key(d) = int(content_hash(d)[:15], 16)                      # 0 <= key < 2**60

A corpus (one snapshot, or one input of ``train``) holds out every document with

    key(d) < max(fraction * 2**60,  k-th smallest key of the corpus + 1),
    k = min(MIN_HELDOUT_DOCS, n // MIN_HELDOUT_SHARE)           # n = documents of the corpus

i.e. the fraction decides, except that a small corpus whose fraction would hold out fewer than
``MIN_HELDOUT_DOCS`` documents holds out its ``k`` lowest-key documents instead (never more than
a fifth of it); ``fraction == 0`` holds out nothing. The same text lands in the same split on
every machine, in any process, on any day: the trainer and the evaluator agree on which documents
the trainer never saw, and two copies of the same sources at different paths give the same
tokenizer byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

#: Bits of the content hash that form the split key (15 hex digits fit a signed 64-bit int).
KEY_HEX = 15
KEY_SPACE = 1 << (4 * KEY_HEX)
#: A corpus holds out at least this many documents (when it has ``MIN_HELDOUT_SHARE`` times as
#: many): an evaluation set of 0-3 documents means nothing.
MIN_HELDOUT_DOCS = 100
#: ... but never more than 1/MIN_HELDOUT_SHARE of the corpus (a fifth).
MIN_HELDOUT_SHARE = 5


def text_hash(text: str) -> str:
    """The content column of an input without ``content_hash``: md5 hex of the UTF-8 text
    (DuckDB's ``md5(text)`` gives the same string)."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def split_key(content_hash: str) -> int:
    """The split key of a document: the first 60 bits of its content hash (a hex string)."""
    return int(content_hash[:KEY_HEX], 16)


def fraction_threshold(fraction: float) -> int:
    """Keys below this are held out by the fraction alone."""
    return int(round(fraction * KEY_SPACE))


def min_heldout(n_docs: int) -> int:
    """How many documents a corpus of ``n_docs`` holds out at least (the small-corpus rule)."""
    return min(MIN_HELDOUT_DOCS, n_docs // MIN_HELDOUT_SHARE)


def heldout_threshold(keys: Sequence[int], fraction: float) -> int:
    """The corpus' threshold: documents with ``key < threshold`` are held out (see the module
    docstring). ``keys``: the split keys of every document of the corpus."""
    arr = np.asarray(keys, dtype=np.uint64)
    if fraction <= 0 or arr.size == 0:
        return 0
    t = fraction_threshold(fraction)
    k = min_heldout(int(arr.size))
    if k and int((arr < np.uint64(t)).sum()) < k:
        t = max(t, int(np.partition(arr, k - 1)[k - 1]) + 1)
    return t


def is_heldout(content_hash: str, fraction: float, threshold: int | None = None) -> bool:
    """Held out by the fraction (or by the corpus' ``threshold`` from :func:`heldout_threshold`
    / :func:`threshold_sql`, which also applies the small-corpus minimum)."""
    if fraction <= 0:
        return False
    t = fraction_threshold(fraction) if threshold is None else threshold
    return split_key(content_hash) < t


def key_sql(column: str = "content_hash") -> str:
    """The DuckDB expression of :func:`split_key` for a hex column (or expression)."""
    return f"('0x' || substr({column}, 1, {KEY_HEX}))::UBIGINT"


def threshold_sql(source: str, fraction: float, column: str = "content_hash") -> str:
    """A DuckDB scalar expression equal to :func:`heldout_threshold` over the rows of ``source``
    (a table expression such as ``read_parquet([...])``)."""
    if fraction <= 0:
        return "0::UBIGINT"
    t = fraction_threshold(fraction)
    return (f"(SELECT greatest({t}::UBIGINT, coalesce(max(k) FILTER (WHERE r <= least("
            f"{MIN_HELDOUT_DOCS}, n // {MIN_HELDOUT_SHARE})) + 1, 0)::UBIGINT) FROM ("
            f"SELECT {key_sql(column)} AS k, row_number() OVER (ORDER BY {key_sql(column)}) AS r,"
            f" count(*) OVER () AS n FROM {source}))")


def heldout_sql(fraction: float, column: str = "content_hash", source: str | None = None) -> str:
    """A DuckDB boolean expression equal to :func:`is_heldout` for each row of ``source``.

    With ``source`` (the same table expression the query reads) the small-corpus minimum
    applies, exactly as in training; without it, the fraction alone decides.
    """
    if fraction <= 0:
        return "false"
    t = threshold_sql(source, fraction, column) if source else f"{fraction_threshold(fraction)}"
    return f"({key_sql(column)} < {t})"
