"""Arrow schemas of the tables tokenfoundry writes. One concept, one column name, everywhere.

These are fixed: readers (DuckDB, polars, pyarrow, users' own code) may rely on them.
"""

from __future__ import annotations

import pyarrow as pa

#: A corpus snapshot: one row per kept document.
CORPUS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),  # xxh3-128 hex of corpus/source/location
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # the input file's path
        pa.field("source_id", pa.string()),  # the source's own record id, if any
        pa.field("location", pa.string(), nullable=False),  # line:N, row:N, msgid hash, file, ...
        pa.field("lang", pa.string()),  # ISO 639-1 where known ("und" when undetermined)
        pa.field("lang_score", pa.float32()),  # language-id confidence; null when the source said
        pa.field("align_key", pa.string()),  # gettext msgctxt\x04msgid: aligns parallel segments
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("n_bytes", pa.int64(), nullable=False),  # UTF-8 bytes of text
        pa.field("n_chars", pa.int64(), nullable=False),  # code points of text
        pa.field("content_hash", pa.string(), nullable=False),  # xxh3-128 hex of normalised text
        pa.field("flags", pa.list_(pa.string())),  # e.g. ["utf8_repaired"]
    ]
)

#: Records that did not make it into a snapshot, each with a reason.
REJECTS_SCHEMA = pa.schema(
    [
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # short machine-readable code
        pa.field("detail", pa.string()),  # human-readable explanation
        pa.field("excerpt", pa.string()),  # first characters of the offending record, if any
    ]
)

#: Dedup output: every input document, one row each; same cluster_id == duplicates.
CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.string(), nullable=False),
    ]
)
