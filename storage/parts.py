"""Fan-out writes: several tasks write parts of one snapshot, one commit.

Each fan-out unit (e.g. one input file of ingest, one output of dedup) writes its own shards
and a marker (:class:`PartWriter`); :func:`commit_parts` lists every unit's files in plan order
and writes the snapshot's ``_manifest.json`` last, as :class:`~tokenfoundry.storage.workspace.
SnapshotWriter` does for a single writer. Re-exported by ``storage.workspace``.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from typing import Any

import pyarrow as pa

from tokenfoundry.schemas.errors import BadInputError, DiskFull
from tokenfoundry.schemas.manifest import DataFile, SnapshotManifest
from tokenfoundry.storage.provenance import code_version, library_versions, utc_now
from tokenfoundry.storage.workspace import (
    MANIFEST,
    Workspace,
    _ShardSet,
    atomic_write_bytes,
    check_name,
)

PARTS_DIR = "_parts"


def _extra_prefix(name: str) -> str:
    """Extra tables of part-written snapshots live in ``_<name>/`` so that reading the snapshot
    directory as a Parquet dataset (pyarrow, polars, DuckDB globs) sees only the documents."""
    return f"_{check_name(name, 'extra table')}"


class PartWriter:
    """The shards of one fan-out unit of a snapshot (e.g. one input file of ingest).

    Units are named by the caller (``"00003-0000"``); shard names derive from the unit name, so
    the snapshot's layout does not depend on which task finished first. ``close()`` writes the
    unit's marker (``_parts/<unit>.json``) last; a unit with a marker is done and a re-run (after
    a crash) may skip it. Nothing is visible to readers until :func:`commit_parts`.
    """

    def __init__(self, workspace: Workspace, corpus: str, snapshot_id: str, unit: str, *,
                 schema: pa.Schema, extras: dict[str, pa.Schema] | None = None):
        check_name(unit, "unit")
        self.ws, self.fs, self.unit = workspace, workspace.fs, unit
        self.dir = workspace.snapshot_dir(corpus, snapshot_id)
        if self.fs.exists(posixpath.join(self.dir, MANIFEST)):
            raise FileExistsError(f"snapshot {snapshot_id} of {corpus!r} is already committed")
        self.fs.makedirs(self.dir, exist_ok=True)
        self._clear_unit()
        self._docs = _ShardSet(self.fs, self.dir, "", schema, stem=f"part-{unit}",
                               root=workspace.uri)
        self._extras = {name: _ShardSet(self.fs, self.dir, _extra_prefix(name), sch,
                                        stem=f"part-{unit}", root=workspace.uri)
                        for name, sch in (extras or {}).items()}
        self.closed = False

    def _clear_unit(self) -> None:
        """Remove what a crashed attempt at this unit left (its marker first, then its shards)."""
        marker = posixpath.join(self.dir, PARTS_DIR, f"{self.unit}.json")
        if self.fs.exists(marker):
            self.fs.rm(marker)
        for pattern in (f"part-{self.unit}-*.parquet", f"_*/part-{self.unit}-*.parquet"):
            for p in self.fs.glob(posixpath.join(self.dir, pattern)):
                self.fs.rm(p)

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        self._guarded(self._docs.write, table)

    def write_extra(self, name: str, table: pa.Table | pa.RecordBatch) -> None:
        self._guarded(self._extras[name].write, table)

    def _guarded(self, write: Any, table: pa.Table | pa.RecordBatch) -> None:
        """On a full disk, remove every shard of this unit (not just the partial one)."""
        try:
            write(table)
        except DiskFull:
            self.abort()
            with contextlib.suppress(Exception):
                self._clear_unit()
            raise

    def close(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close the shards and write the unit's marker (with ``info``, e.g. counts); return it."""
        record = {
            "unit": self.unit,
            "files": [f.model_dump() for f in self._docs.close(ensure_one=False)],
            "extra_files": {n: [f.model_dump() for f in s.close(ensure_one=False)]
                            for n, s in self._extras.items()},
            "info": info or {},
        }
        blob = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
        atomic_write_bytes(self.fs, posixpath.join(self.dir, PARTS_DIR, f"{self.unit}.json"), blob,
                           root=self.ws.uri)
        self.closed = True
        return record

    def abort(self) -> None:
        for s in [self._docs, *self._extras.values()]:
            try:
                if s._writer is not None:
                    s._writer.close()
                    s._fh.close()
            except Exception:  # noqa: BLE001 - best effort; nothing is visible anyway
                pass


def read_part(workspace: Workspace, corpus: str, snapshot_id: str, unit: str
              ) -> dict[str, Any] | None:
    """The marker of a finished unit (whose shards all exist), or None."""
    base = workspace.snapshot_dir(corpus, snapshot_id)
    marker = posixpath.join(base, PARTS_DIR, f"{unit}.json")
    if not workspace.fs.exists(marker):
        return None
    record = json.loads(workspace.fs.cat_file(marker))
    paths = [f["path"] for f in record["files"]]
    paths += [f["path"] for fs_ in record["extra_files"].values() for f in fs_]
    if not all(workspace.fs.exists(posixpath.join(base, p)) for p in paths):
        return None
    return record


def commit_parts(workspace: Workspace, corpus: str, snapshot_id: str, units: list[str], *,
                 schema: pa.Schema, extras: dict[str, pa.Schema] | None = None, stage: str,
                 parent: str | None = None, spec: dict[str, Any] | None = None,
                 spec_hash: str = "", inputs: list[Any] | None = None,
                 counts: dict[str, int] | None = None, stats: dict[str, Any] | None = None
                 ) -> SnapshotManifest:
    """Commit a snapshot whose units were written by :class:`PartWriter` (manifest last).

    Files are listed in the order of ``units`` (not completion order), so the manifest is the
    same whichever task runner ran the units. Every unit must be finished. A table that got no
    rows at all still gets one empty shard, so its schema stays readable.
    """
    fs = workspace.fs
    base = workspace.snapshot_dir(corpus, snapshot_id)
    mpath = posixpath.join(base, MANIFEST)
    if fs.exists(mpath):
        return SnapshotManifest.model_validate_json(fs.cat_file(mpath))
    files: list[DataFile] = []
    extra_files: dict[str, list[DataFile]] = {name: [] for name in (extras or {})}
    for unit in units:
        record = read_part(workspace, corpus, snapshot_id, unit)
        if record is None:
            raise BadInputError(f"snapshot {snapshot_id}: unit {unit!r} has not finished; "
                                "run its task before committing")
        files += [DataFile(**f) for f in record["files"]]
        for name, fl in record["extra_files"].items():
            extra_files.setdefault(name, []).extend(DataFile(**f) for f in fl)
    fs.makedirs(base, exist_ok=True)
    if not files:
        files = _ShardSet(fs, base, "", schema, stem="part-empty").close()
    for name, sch in (extras or {}).items():
        if not extra_files[name]:
            extra_files[name] = _ShardSet(fs, base, _extra_prefix(name), sch,
                                          stem="part-empty").close()
    manifest = SnapshotManifest(
        snapshot_id=snapshot_id, corpus=corpus, stage=stage, parent=parent, spec=spec or {},
        spec_hash=spec_hash, inputs=inputs or [], files=files, extra_files=extra_files,
        counts=counts or {}, stats=stats or {}, created_at=utc_now(),
        code_version=code_version(), library_versions=library_versions(),
    )
    blob = json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False).encode()
    atomic_write_bytes(fs, mpath, blob, root=workspace.uri)
    return manifest
