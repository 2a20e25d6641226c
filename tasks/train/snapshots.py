"""Write a corpus snapshot (CORPUS_SCHEMA) straight from records, without the ingest stage.

For benchmarks, tests and users who already hold clean text: ``write_snapshot`` streams
records (dicts with at least ``text``; optional ``lang``, ``source``, ``location``,
``align_key``) into ``datasets/<corpus>/<id>/`` and points the ``latest`` ref at it. The id is
content-addressed (xxh3 of every record), so writing the same records twice reuses the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import xxhash

from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace, check_name


def _row(corpus: str, i: int, rec: dict[str, Any]) -> dict[str, Any]:
    text = rec["text"]
    source = rec.get("source", "records")
    location = rec.get("location", f"row:{i}")
    return {
        "doc_id": xxhash.xxh3_128_hexdigest(f"{corpus}\x00{source}\x00{location}".encode()),
        "corpus": corpus, "source": source, "source_id": rec.get("source_id"),
        "location": location, "lang": rec.get("lang"), "lang_score": None,
        "align_key": rec.get("align_key"), "text": text,
        "n_bytes": len(text.encode("utf-8")), "n_chars": len(text),
        "content_hash": xxhash.xxh3_128_hexdigest(text.encode()), "flags": [],
    }


def write_snapshot(ws: Workspace, corpus: str, records: Iterable[dict[str, Any]],
                   batch_rows: int = 10_000, ref: str = "latest") -> str:
    """Write ``records`` as a committed snapshot of ``corpus``; return its snapshot id."""
    check_name(corpus, "corpus")
    h = xxhash.xxh3_128()
    rows: list[dict[str, Any]] = []
    tables: list[pa.Table] = []
    # hash first (the id must be known before writing): keep batches as Arrow tables
    for i, rec in enumerate(records):
        row = _row(corpus, i, rec)
        h.update(row["doc_id"].encode())
        h.update((row["lang"] or "").encode() + b"\x00" + (row["align_key"] or "").encode())
        h.update(row["content_hash"].encode())
        rows.append(row)
        if len(rows) >= batch_rows:
            tables.append(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
            rows = []
    if rows:
        tables.append(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
    sid = "rec-" + h.hexdigest()[:16]
    if not ws.has_snapshot(corpus, sid):
        with ws.writer(corpus, sid, schema=CORPUS_SCHEMA, stage="ingest") as w:
            for t in tables:
                w.write(t)
            w.commit(counts={"kept": sum(t.num_rows for t in tables)})
    ws.set_ref(corpus, ref, sid)
    return sid
