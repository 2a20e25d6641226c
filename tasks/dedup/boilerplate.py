"""Line-level boilerplate: lines that occur in more than N distinct documents of the corpus.

As dolma's paragraph dedup does for repeated headers and footers, such lines are removed from
every document before near-duplicate detection and in the output. Counting is done by DuckDB over
the snapshot's Parquet (distinct content hashes, so exact copies of one document count once);
lines are compared after stripping surrounding whitespace, and blank lines are never boilerplate.
"""

from __future__ import annotations

from tokenfoundry.storage.catalog import connect, scan
from tokenfoundry.storage.workspace import Snapshot, Workspace


def boilerplate_lines(ws: Workspace, snap: Snapshot, min_docs: int,
                      temp_dir: str | None = None) -> list[str]:
    """Stripped lines that occur in more than ``min_docs`` distinct documents, sorted."""
    con = connect(ws, temp_dir=temp_dir, memory_limit="2GB")
    sql = f"""
        WITH docs AS (
            SELECT coalesce(content_hash, 'doc:' || doc_id) AS h, any_value(text) AS text
            FROM {scan(snap)} WHERE text IS NOT NULL GROUP BY 1
        ),
        lines AS (
            SELECT DISTINCT h, trim(unnest(string_split(text, chr(10)))) AS line FROM docs
        )
        SELECT line FROM lines WHERE line <> ''
        GROUP BY line HAVING count(*) > {int(min_docs)} ORDER BY line
    """
    rows = con.execute(sql).fetchall()
    con.close()
    return [r[0] for r in rows]


def strip_boilerplate(text: str | None, lines: set[str] | frozenset[str]) -> str:
    """``text`` without its boilerplate lines (other lines, including blank ones, unchanged)."""
    if not text or not lines:
        return text or ""
    parts = text.split("\n")
    kept = [p for p in parts if p.strip() not in lines]
    if len(kept) == len(parts):
        return text
    return "\n".join(kept).strip("\n")
