"""Workspace garbage collection: what killed or crashed runs left behind.

A run killed mid-write leaves data that nothing will ever read (readers only see committed
snapshots, see :mod:`tokenfoundry.storage.workspace`), yet it holds disk space:

- ``datasets/<corpus>/<snapshot_id>/`` without ``_manifest.json`` (an uncommitted snapshot);
- ``_work/dedup/<corpus>/<snapshot>.rows<N>/`` (dedup's intermediate files, removed by dedup
  itself when its snapshot commits);
- ``*.tmp-*`` files of interrupted atomic writes (under ``datasets/`` and ``pipelines/``).

Each is removed only when nothing in it changed for ``grace_seconds`` (a run that is still
writing keeps touching its files), unless ``force``. The registry has its own ``registry gc``.
"""

from __future__ import annotations

import fnmatch
import posixpath
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenfoundry.storage.workspace import MANIFEST, Workspace

#: Patterns of temporary files written by interrupted atomic writes.
TEMP_PATTERNS = ("*.tmp-*", "*.tmp")


@dataclass
class GcEntry:
    kind: str  # "uncommitted snapshot" | "dedup work" | "temporary file"
    path: str
    bytes: int
    age_hours: float


@dataclass
class GcResult:
    workspace: str
    dry_run: bool
    removed: list[GcEntry] = field(default_factory=list)
    kept: list[GcEntry] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(e.bytes for e in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "dry_run": self.dry_run,
                "removed": [asdict(e) for e in self.removed],
                "kept": [asdict(e) for e in self.kept], "bytes_freed": self.bytes_freed}


def _mtime(info: dict[str, Any]) -> float:
    """Modification time of an fsspec info dict (local ``mtime``, S3 ``LastModified``)."""
    t = info.get("mtime") or info.get("LastModified") or info.get("last_modified") \
        or info.get("created") or 0
    return t.timestamp() if hasattr(t, "timestamp") else float(t)


def _tree(ws: Workspace, path: str) -> tuple[int, float]:
    """(total bytes, newest modification time) of everything under ``path``."""
    found = ws.fs.find(path, detail=True, withdirs=True)
    infos = list(found.values()) or [ws.fs.info(path)]
    size = sum(int(i.get("size") or 0) for i in infos if i.get("type") != "directory")
    return size, max(_mtime(i) for i in infos)


def candidates(ws: Workspace) -> list[tuple[str, str]]:
    """(kind, path) of everything gc would look at, in a stable order."""
    fs, out = ws.fs, []
    base = ws.path("datasets")
    if fs.exists(base):
        for corpus_dir in sorted(fs.ls(base, detail=False)):
            if not fs.isdir(corpus_dir):
                continue
            for d in sorted(fs.ls(corpus_dir, detail=False)):
                name = posixpath.basename(d.rstrip("/"))
                if name.startswith("_") or not fs.isdir(d):
                    continue
                if not fs.exists(posixpath.join(d, MANIFEST)):
                    out.append(("uncommitted snapshot", d.rstrip("/")))
    work = ws.path("_work", "dedup")
    if fs.exists(work):
        for corpus_dir in sorted(fs.ls(work, detail=False)):
            if fs.isdir(corpus_dir):
                out += [("dedup work", d.rstrip("/"))
                        for d in sorted(fs.ls(corpus_dir, detail=False))]
    skip = {p for _k, p in out}
    for top in ("datasets", "pipelines"):
        root = ws.path(top)
        if not fs.exists(root):
            continue
        for p in sorted(fs.find(root)):
            name = posixpath.basename(p)
            if any(fnmatch.fnmatch(name, pat) for pat in TEMP_PATTERNS) \
                    and not any(p.startswith(s + "/") for s in skip):
                out.append(("temporary file", p))
    return out


def collect_garbage(ws: Workspace, grace_seconds: float = 3600.0, force: bool = False,
                    dry_run: bool = False) -> GcResult:
    """Remove (or with ``dry_run`` only list) what killed runs left; see the module docstring."""
    res = GcResult(workspace=ws.full_uri(ws.root), dry_run=dry_run)
    now = time.time()
    for kind, path in candidates(ws):
        size, newest = _tree(ws, path)
        entry = GcEntry(kind, ws.full_uri(path), size, round(max(0.0, now - newest) / 3600, 3))
        if not force and now - newest < grace_seconds:
            res.kept.append(entry)
            continue
        if not dry_run:
            ws.fs.rm(path, recursive=True)
        res.removed.append(entry)
    return res
