"""Exact duplicates by content hash, computed by DuckDB over the snapshot's Parquet in place.

Every document gets ``idx``, its rank in the order (source, location, doc_id): the smallest idx
of a group of duplicates is the one kept, so the choice never depends on file layout or on which
task finished first. In incremental mode a content hash already present in earlier dedup
snapshots makes every document carrying it a duplicate of that earlier document
(``prior_rep`` = the smallest earlier doc_id with the hash).

Rows with a null content_hash are compared by doc_id (never exact duplicates of each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tokenfoundry.storage.catalog import connect, sql_list
from tokenfoundry.storage.workspace import Snapshot, Workspace


@dataclass
class ExactTable:
    """Per input document, in snapshot order (file by file, row by row)."""

    doc_id: pa.Array  # string
    idx: np.ndarray  # int64 rank by (source, location, doc_id)
    exact_rep: np.ndarray  # int64 idx of the group's kept document (== idx when kept)
    prior_rep: pa.Array  # string or null: the earlier snapshot's doc_id with the same hash

    def to_table(self) -> pa.Table:
        return pa.table({"doc_id": self.doc_id, "idx": self.idx, "exact_rep": self.exact_rep,
                         "prior_rep": self.prior_rep})

    @classmethod
    def from_table(cls, t: pa.Table) -> ExactTable:
        return cls(t.column("doc_id").combine_chunks(),
                   t.column("idx").to_numpy().astype(np.int64),
                   t.column("exact_rep").to_numpy().astype(np.int64),
                   t.column("prior_rep").combine_chunks())


def exact_groups(ws: Workspace, snap: Snapshot, *, exact: bool = True,
                 prior: list[Snapshot] | None = None, temp_dir: str | None = None) -> ExactTable:
    """Rank every document and find its exact-duplicate group and any earlier copy."""
    con = connect(ws, temp_dir=temp_dir, memory_limit="2GB")
    paths = snap.paths
    con.execute("CREATE TEMP TABLE files(path VARCHAR, file_no INTEGER)")
    con.executemany("INSERT INTO files VALUES (?, ?)", [[p, i] for i, p in enumerate(paths)])
    key = "coalesce(ranked.content_hash, 'doc:' || ranked.doc_id)"
    rep = (f"min(ranked.idx) OVER (PARTITION BY {key})" if exact else "ranked.idx")
    prior_cte = "SELECT NULL::VARCHAR AS content_hash, NULL::VARCHAR AS prior_rep WHERE false"
    prior_paths = [p for s in (prior or []) for p in s.paths]
    if prior_paths:
        prior_cte = (f"SELECT content_hash, min(doc_id) AS prior_rep FROM read_parquet("
                     f"{sql_list(prior_paths)}) WHERE content_hash IS NOT NULL GROUP BY content_hash")
    sql = f"""
        WITH raw AS (
            SELECT f.file_no, r.file_row_number AS row_no, r.doc_id, r.content_hash,
                   r.source, r.location
            FROM read_parquet({sql_list(paths)}, filename = true, file_row_number = true) r
            JOIN files f ON f.path = r.filename
        ),
        ranked AS (
            SELECT *, row_number() OVER (ORDER BY source, location, doc_id) - 1 AS idx FROM raw
        ),
        prior AS ({prior_cte})
        SELECT ranked.doc_id, ranked.idx, {rep} AS exact_rep, prior.prior_rep
        FROM ranked LEFT JOIN prior ON prior.content_hash = ranked.content_hash
        ORDER BY file_no, row_no
    """
    t = con.sql(sql).to_arrow_table()
    con.close()
    return ExactTable.from_table(t)
