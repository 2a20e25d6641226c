"""The workspace: one root (a local path or any fsspec URI) holding datasets and the registry.

Layout::

    <root>/datasets/<corpus>/<snapshot_id>/part-00000.parquet ...   documents (CORPUS_SCHEMA)
    <root>/datasets/<corpus>/<snapshot_id>/<extra>/part-00000.parquet  rejects, clusters, ...
    <root>/datasets/<corpus>/<snapshot_id>/_manifest.json             written last: the commit point
    <root>/datasets/<corpus>/_refs/<name>                              "ingest", "dedup", "latest"
    <root>/registry/                                                   default artifact registry

A snapshot directory without ``_manifest.json`` is invisible: a crash mid-write leaves nothing a
reader can see, and the next writer of the same (content-addressed) id clears it and starts over.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from tokenfoundry.schemas.errors import BadInputError, DiskFull
from tokenfoundry.storage.disk import disk_full_guard
from tokenfoundry.schemas.manifest import DataFile, SnapshotManifest
from tokenfoundry.storage.provenance import code_version, library_versions, utc_now

MANIFEST = "_manifest.json"
DEFAULT_WORKSPACE = "./workspace"
_ROWS_PER_SHARD = 1_000_000
_BYTES_PER_SHARD = 256 * 1024 * 1024
_ROW_GROUP_ROWS = 65_536


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def atomic_write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes,
                       root: str | None = None) -> None:
    """Write ``data`` so that readers see either the old object or the whole new one.

    Local: temp file in the same directory + fsync + ``os.replace``; the temp file is removed
    if anything fails. Object stores: a single PUT is already atomic. A full disk raises
    DiskFull naming ``root`` (the workspace), the path and the bytes needed.
    """
    parent = posixpath.dirname(path)
    local = _is_local(fs)
    with disk_full_guard(root, path, len(data), local=local):
        fs.makedirs(parent, exist_ok=True)
        if local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            fs.pipe_file(path, data)


class Workspace:
    """A workspace root on any fsspec filesystem."""

    def __init__(self, uri: str | os.PathLike[str] = DEFAULT_WORKSPACE):
        uri = os.fspath(uri)
        self.uri = uri
        self.fs, root = fsspec.core.url_to_fs(uri)
        if _is_local(self.fs):
            root = os.path.abspath(root)
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"Workspace({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return _is_local(self.fs)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def full_uri(self, path: str) -> str:
        """A URI that other tools (DuckDB, users) can open for a path of this workspace."""
        if self.is_local:
            return path
        proto = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol
        return f"{proto}://{path}"

    @property
    def registry_uri(self) -> str:
        return self.full_uri(self.path("registry"))

    # ---- snapshots -------------------------------------------------------------------------

    def dataset_dir(self, corpus: str) -> str:
        check_name(corpus, "corpus")
        return self.path("datasets", corpus)

    def snapshot_dir(self, corpus: str, snapshot_id: str) -> str:
        return posixpath.join(self.dataset_dir(corpus), snapshot_id)

    def corpora(self) -> list[str]:
        base = self.path("datasets")
        if not self.fs.exists(base):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(base, detail=False))

    def has_snapshot(self, corpus: str, snapshot_id: str) -> bool:
        return self.fs.exists(posixpath.join(self.snapshot_dir(corpus, snapshot_id), MANIFEST))

    def snapshot(self, corpus: str, snapshot_id: str) -> Snapshot:
        """Open a committed snapshot by id, or raise BadInputError."""
        mpath = posixpath.join(self.snapshot_dir(corpus, snapshot_id), MANIFEST)
        if not self.fs.exists(mpath):
            known = [m.snapshot_id for m in self.list_snapshots(corpus)]
            raise BadInputError(
                f"corpus {corpus!r} has no snapshot {snapshot_id!r} in {self.uri} "
                f"(known: {', '.join(known) or 'none'}); run `tokenfoundry ingest` first"
            )
        manifest = SnapshotManifest.model_validate_json(self.fs.cat_file(mpath))
        return Snapshot(self, manifest)

    def list_snapshots(self, corpus: str) -> list[SnapshotManifest]:
        """Committed snapshots of a corpus, oldest first."""
        base = self.dataset_dir(corpus)
        if not self.fs.exists(base):
            return []
        out = []
        for p in self.fs.ls(base, detail=False):
            mpath = posixpath.join(p.rstrip("/"), MANIFEST)
            if self.fs.exists(mpath):
                out.append(SnapshotManifest.model_validate_json(self.fs.cat_file(mpath)))
        return sorted(out, key=lambda m: (m.created_at, m.snapshot_id))

    def set_ref(self, corpus: str, name: str, snapshot_id: str) -> None:
        """Point ``datasets/<corpus>/_refs/<name>`` at a committed snapshot."""
        check_name(name, "ref")
        if not self.has_snapshot(corpus, snapshot_id):
            raise BadInputError(f"cannot point ref {name!r} at uncommitted snapshot {snapshot_id!r}")
        atomic_write_bytes(
            self.fs, posixpath.join(self.dataset_dir(corpus), "_refs", name), snapshot_id.encode()
        )

    def get_ref(self, corpus: str, name: str) -> str | None:
        p = posixpath.join(self.dataset_dir(corpus), "_refs", name)
        return self.fs.cat_file(p).decode().strip() if self.fs.exists(p) else None

    def resolve(self, corpus: str, ref: str = "latest") -> Snapshot:
        """A snapshot by ref name (``latest``, ``ingest``, ``dedup``) or by id."""
        sid = self.get_ref(corpus, ref) or ref
        if not self.has_snapshot(corpus, sid):
            if not self.list_snapshots(corpus):
                raise BadInputError(
                    f"corpus {corpus!r} has no snapshots in workspace {self.uri}; "
                    f"create one with `tokenfoundry ingest --corpus {corpus} --source PATH`"
                )
        return self.snapshot(corpus, sid)

    def writer(self, corpus: str, snapshot_id: str, **kw: Any) -> SnapshotWriter:
        return SnapshotWriter(self, corpus, snapshot_id, **kw)


@dataclass
class Snapshot:
    """A committed, immutable snapshot: its manifest plus ways to read it."""

    workspace: Workspace
    manifest: SnapshotManifest

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id

    @property
    def corpus(self) -> str:
        return self.manifest.corpus

    @property
    def dir(self) -> str:
        return self.workspace.snapshot_dir(self.corpus, self.snapshot_id)

    @property
    def paths(self) -> list[str]:
        """Full paths (URIs for remote workspaces) of the document Parquet files."""
        return [self.workspace.full_uri(posixpath.join(self.dir, f.path)) for f in self.manifest.files]

    def extra_paths(self, name: str) -> list[str]:
        files = self.manifest.extra_files.get(name, [])
        return [self.workspace.full_uri(posixpath.join(self.dir, f.path)) for f in files]

    @property
    def rows(self) -> int:
        return self.manifest.rows

    def lazy(self) -> "pl.LazyFrame":
        """The snapshot's documents as a ``polars.LazyFrame`` (``pl.scan_parquet`` over its
        committed part files only, so a half-written shard is never read)."""
        import polars as pl

        return pl.scan_parquet(self.paths)

    def dataset(self, name: str | None = None):
        """A pyarrow.dataset over the documents (or an extra table such as ``rejects``)."""
        import pyarrow.dataset as ds

        files = self.manifest.files if name is None else self.manifest.extra_files.get(name, [])
        paths = [posixpath.join(self.dir, f.path) for f in files]
        return ds.dataset(paths, format="parquet", filesystem=self.workspace.fs)

    def iter_batches(
        self, columns: list[str] | None = None, batch_size: int = 8192
    ) -> Iterator[pa.RecordBatch]:
        """Stream the documents in file order; memory stays bounded by ``batch_size`` rows."""
        for f in self.manifest.files:
            path = posixpath.join(self.dir, f.path)
            with self.workspace.fs.open(path, "rb") as fh:
                pf = pq.ParquetFile(fh)
                yield from pf.iter_batches(batch_size=batch_size, columns=columns)

    def iter_text(self, batch_size: int = 8192) -> Iterator[list[str]]:
        """Batches of document texts, for trainers' ``train_from_iterator``."""
        for batch in self.iter_batches(["text"], batch_size=batch_size):
            yield batch.column(0).to_pylist()


@dataclass
class _ShardSet:
    """Rolling Parquet shards under one sub-directory of a snapshot."""

    fs: Any
    base: str
    prefix: str
    schema: pa.Schema
    files: list[DataFile] = field(default_factory=list)
    stem: str = "part"  # shard file names: <stem>-00000.parquet, <stem>-00001.parquet, ...
    root: str = ""  # the workspace (for a full-disk error)
    _writer: pq.ParquetWriter | None = None
    _fh: Any = None
    _rows: int = 0
    _bytes: int = 0

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        with disk_full_guard(self.root, posixpath.join(self.base, self.prefix, self.stem + "-*"),
                             table.nbytes, cleanup=self.discard, local=_is_local(self.fs)):
            if self._writer is None:
                self._open()
            self._writer.write_table(table, row_group_size=_ROW_GROUP_ROWS)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        if self._rows >= _ROWS_PER_SHARD or self._bytes >= _BYTES_PER_SHARD:
            self._close()

    def _open(self) -> None:
        name = f"{self.stem}-{len(self.files):05d}.parquet"
        rel = posixpath.join(self.prefix, name) if self.prefix else name
        self._rel = rel
        full = posixpath.join(self.base, rel)
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        self._fh = self.fs.open(full, "wb")
        self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        self._rows = 0
        self._bytes = 0

    def discard(self) -> None:
        """Close and delete the open (partial) shard (best effort, e.g. on a full disk)."""
        if self._writer is None:
            return
        for close in (self._writer.close, self._fh.close):
            with contextlib.suppress(Exception):
                close()
        with contextlib.suppress(Exception):
            self.fs.rm(posixpath.join(self.base, self._rel))
        self._writer = self._fh = None

    def _close(self) -> None:
        if self._writer is None:
            return
        with disk_full_guard(self.root, posixpath.join(self.base, self._rel), None,
                             cleanup=self.discard, local=_is_local(self.fs)):
            self._writer.close()
            self._fh.close()
        size = self.fs.size(posixpath.join(self.base, self._rel))
        self.files.append(DataFile(path=self._rel, rows=self._rows, bytes=size))
        self._writer = None
        self._fh = None

    def close(self, ensure_one: bool = True) -> list[DataFile]:
        """Close the open shard; write an empty one if nothing was written (schema stays known)."""
        if ensure_one and not self.files and self._writer is None:
            self._open()
        self._close()
        return self.files


class SnapshotWriter:
    """Writes a snapshot's shards, then its manifest last (the commit point).

    Use as a context manager; on an exception nothing is committed (the partial directory stays
    invisible and is cleared by the next writer of the same id)::

        with ws.writer("legal", sid, schema=CORPUS_SCHEMA, stage="ingest") as w:
            w.write(batch)
            w.write_extra("rejects", rejects_batch, REJECTS_SCHEMA)
            w.commit(counts={...})
    """

    def __init__(
        self,
        workspace: Workspace,
        corpus: str,
        snapshot_id: str,
        *,
        schema: pa.Schema,
        stage: str,
        parent: str | None = None,
        spec: dict[str, Any] | None = None,
        spec_hash: str = "",
        inputs: list[Any] | None = None,
    ):
        self.ws = workspace
        self.fs = workspace.fs
        self.corpus = corpus
        self.snapshot_id = snapshot_id
        self.dir = workspace.snapshot_dir(corpus, snapshot_id)
        self._meta = dict(stage=stage, parent=parent, spec=spec or {}, spec_hash=spec_hash,
                          inputs=inputs or [])
        if self.fs.exists(posixpath.join(self.dir, MANIFEST)):
            raise FileExistsError(f"snapshot {snapshot_id} of {corpus!r} is already committed")
        if self.fs.exists(self.dir):  # a crashed earlier attempt: invisible, safe to clear
            self.fs.rm(self.dir, recursive=True)
        self.fs.makedirs(self.dir, exist_ok=True)
        self._docs = _ShardSet(self.fs, self.dir, "", schema, root=workspace.uri)
        self._extras: dict[str, _ShardSet] = {}
        self.committed: SnapshotManifest | None = None

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        self._docs.write(table)

    def write_extra(self, name: str, table: pa.Table | pa.RecordBatch, schema: pa.Schema) -> None:
        check_name(name, "extra table")
        if name not in self._extras:
            self._extras[name] = _ShardSet(self.fs, self.dir, name, schema, root=self.ws.uri)
        self._extras[name].write(table)

    def declare_extra(self, name: str, schema: pa.Schema) -> None:
        """Make sure an extra table exists in the manifest even if it stays empty."""
        if name not in self._extras:
            self._extras[name] = _ShardSet(self.fs, self.dir, name, schema, root=self.ws.uri)

    def commit(self, counts: dict[str, int] | None = None, stats: dict[str, Any] | None = None
               ) -> SnapshotManifest:
        files = self._docs.close()
        extra = {name: s.close() for name, s in self._extras.items()}
        manifest = SnapshotManifest(
            snapshot_id=self.snapshot_id,
            corpus=self.corpus,
            files=files,
            extra_files=extra,
            counts=counts or {},
            stats=stats or {},
            created_at=utc_now(),
            code_version=code_version(),
            library_versions=library_versions(),
            **self._meta,
        )
        blob = json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False).encode()
        atomic_write_bytes(self.fs, posixpath.join(self.dir, MANIFEST), blob, root=self.ws.uri)
        self.committed = manifest
        return manifest

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed is None:
            for s in [self._docs, *self._extras.values()]:
                s.discard() if isinstance(exc, DiskFull) else _close_quietly(s)
            if isinstance(exc, DiskFull):  # free what the uncommitted snapshot holds
                with contextlib.suppress(Exception):
                    self.fs.rm(self.dir, recursive=True)


def _close_quietly(s: _ShardSet) -> None:
    try:
        if s._writer is not None:
            s._writer.close()
            s._fh.close()
    except Exception:  # noqa: BLE001 - best effort; the dir stays invisible anyway
        pass


def check_name(name: str, what: str) -> str:
    """Names used as path components: letters, digits, ``-``, ``_``, ``.``; no leading dot."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", name):
        raise BadInputError(
            f"invalid {what} name {name!r}: use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (at most 128 characters)"
        )
    return name


# Fan-out writers (PartWriter, read_part, commit_parts) live in storage/parts.py; importing
# them from here keeps one place to import the workspace API from.
from tokenfoundry.storage.parts import (  # noqa: E402 - needs the names above
    PARTS_DIR,
    PartWriter,
    commit_parts,
    read_part,
)

__all__ = ["MANIFEST", "PARTS_DIR", "PartWriter", "Snapshot", "SnapshotWriter", "Workspace",
           "atomic_write_bytes", "check_name", "commit_parts", "read_part"]
