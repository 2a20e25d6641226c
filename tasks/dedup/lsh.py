"""LSH banding: bucket tables on disk (Parquet), grouped by DuckDB into candidate pairs.

Each signature is cut into ``bands`` bands of ``rows`` values; a band's bucket key is a stable
64-bit hash of its values (``minhash.band_keys``). Every shard writes one Parquet table
(band, key, idx). DuckDB groups all of them by (band, key) - spilling to disk when needed, so
memory stays bounded at millions of documents - and emits, for every bucket with more than one
document, an edge from the bucket's smallest idx to each other member (a star: the components
are the same as with all pairs, with O(members) edges). Candidate pairs can then be verified by
their estimated Jaccard (fraction of equal signature values) and by their exact Jaccard
(``pair_jaccard``) to cut false positives.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tokenfoundry.storage.catalog import connect, sql_list
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.dedup.minhash import band_keys

BUCKET_SCHEMA = pa.schema([("band", pa.uint16()), ("key", pa.uint64()), ("idx", pa.int64())])


def bucket_table(sig: np.ndarray, idx: np.ndarray, bands: int, rows: int) -> pa.Table:
    """The (band, key, idx) rows of a block of signatures."""
    n = len(idx)
    keys = band_keys(sig, bands, rows)  # (n, bands)
    return pa.table({
        "band": np.tile(np.arange(bands, dtype=np.uint16), n),
        "key": keys.reshape(-1),
        "idx": np.repeat(np.asarray(idx, dtype=np.int64), bands),
    }, schema=BUCKET_SCHEMA)


def candidate_pairs(ws: Workspace, bucket_paths: list[str], temp_dir: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) with a < b: a is the smallest idx of a bucket that b shares, sorted."""
    if not bucket_paths:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    con = connect(ws, temp_dir=temp_dir, memory_limit="2GB")
    sql = f"""
        WITH b AS (SELECT band, key, idx FROM read_parquet({sql_list(bucket_paths)})),
        g AS (SELECT band, key, min(idx) AS root FROM b GROUP BY band, key HAVING count(*) > 1)
        SELECT DISTINCT g.root AS a, b.idx AS b
        FROM b JOIN g ON b.band = g.band AND b.key = g.key
        WHERE b.idx <> g.root
        ORDER BY a, b
    """
    t = con.sql(sql).to_arrow_table()
    con.close()
    return (t.column("a").to_numpy().astype(np.int64), t.column("b").to_numpy().astype(np.int64))


def verify_pairs(a: np.ndarray, b: np.ndarray, sig_of: dict[int, int] | np.ndarray,
                 sigs: np.ndarray, min_jaccard: float | None, block: int = 65_536
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimated Jaccard of every pair; keep those >= ``min_jaccard`` (all when None).

    ``sig_of`` maps a document idx to its row in ``sigs`` (an int64 array indexed by idx).
    Returns the kept (a, b, estimated_jaccard).
    """
    est = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), block):
        ra = sigs[sig_of[a[s:s + block]]]
        rb = sigs[sig_of[b[s:s + block]]]
        est[s:s + block] = (ra == rb).mean(axis=1)
    if min_jaccard is None:
        return a, b, est
    keep = est >= np.float32(min_jaccard) - np.float32(1e-6)
    return a[keep], b[keep], est[keep]


def pair_jaccard(a: np.ndarray, b: np.ndarray, sets: dict[int, np.ndarray]) -> np.ndarray:
    """Exact Jaccard of every pair from sorted unique shingle-hash arrays (``sets[idx]``)."""
    out = np.empty(len(a), dtype=np.float64)
    for k, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        sx, sy = sets[x], sets[y]
        inter = len(np.intersect1d(sx, sy, assume_unique=True))
        union = len(sx) + len(sy) - inter
        out[k] = inter / union if union else 1.0
    return out
