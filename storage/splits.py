"""The held-out split: a stable, documented rule shared by training and evaluation.

A document is held out when ``int(md5(doc_id)[:8], 16) % 10000 < fraction * 10000``. md5 is
specified and stable across library versions (unlike engine-internal hashes), so the trainer and
the evaluator, in any process, on any day, agree on which documents the trainer never saw.
"""

from __future__ import annotations

import hashlib

_BUCKETS = 10_000


def bucket(doc_id: str) -> int:
    return int(hashlib.md5(doc_id.encode("utf-8")).hexdigest()[:8], 16) % _BUCKETS


def is_heldout(doc_id: str, fraction: float) -> bool:
    return bucket(doc_id) < round(fraction * _BUCKETS)


def heldout_sql(fraction: float, column: str = "doc_id") -> str:
    """A DuckDB boolean expression equal to :func:`is_heldout` for each row."""
    return (f"(('0x' || substr(md5({column}), 1, 8))::UBIGINT % {_BUCKETS}) "
            f"< {round(fraction * _BUCKETS)}")
