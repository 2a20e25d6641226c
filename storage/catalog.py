"""The catalog: an embedded DuckDB that reads snapshot Parquet files in place.

No server: every query opens (or reuses) an in-process connection. Remote workspaces are
reached through the workspace's own fsspec filesystem, registered with DuckDB, so the same SQL
runs on local paths and on ``s3://`` URIs without DuckDB extensions (which would need the network).
"""

from __future__ import annotations

import os

import duckdb

from tokenfoundry.storage.workspace import Snapshot, Workspace


def connect(workspace: Workspace | None = None, *, threads: int | None = None,
            memory_limit: str | None = None, temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that can read the workspace's files."""
    con = duckdb.connect(database=":memory:")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute("SET preserve_insertion_order = false")
    # DuckDB draws a progress bar on stdout for long queries; stdout belongs to --json
    con.execute("SET enable_progress_bar = false")
    if workspace is not None and not workspace.is_local:
        con.register_filesystem(workspace.fs)
    return con


def sql_list(paths: list[str]) -> str:
    """A DuckDB list literal of paths, quoted."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def scan(snapshot: Snapshot, extra: str | None = None) -> str:
    """``read_parquet([...])`` over a snapshot's documents (or one of its extra tables)."""
    paths = snapshot.paths if extra is None else snapshot.extra_paths(extra)
    return f"read_parquet({sql_list(paths)})"
