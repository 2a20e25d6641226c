"""A version's manifest and the sha256 of its files: the one place that hashes and checks.

The content identity ``content_sha256`` is recomputed from the file entries wherever a manifest
is trusted (import, verify, pull, the content record that makes publishing idempotent); a
manifest whose declared identity, total size or paths do not match is refused naming the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar

from tokenfoundry.schemas.errors import CheckFailed
from tokenfoundry.schemas.registry import MANIFEST_FORMAT, FileEntry, VersionManifest
from tokenfoundry.storage.provenance import code_version, library_versions, utc_now
from tokenfoundry.storage.registry.refs import MANIFEST, path_problem

#: Files hashed or copied at once (hashlib and file copies release the GIL).
WORKERS = 4
_CHUNK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """``[fn(x) for x in items]`` on a few threads, in order (one file per thread)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(WORKERS, len(items))) as ex:
        return list(ex.map(fn, items))


def content_sha256(files: Iterable[FileEntry]) -> str:
    """Identity of a version's files: sha256 of canonical JSON of [path, size, sha256] by path."""
    rows = sorted([f.path, f.size, f.sha256] for f in files)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256 hex, size) of a local file (``hashlib.file_digest``)."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        return digest, fh.tell()


def sha256_stream(fh: IO[bytes], limit: int | None = None) -> tuple[str, int]:
    """(sha256 hex, bytes read) of a stream; stops after ``limit + 1`` bytes (a size check then
    fails without reading a bomb to its end)."""
    h, n = hashlib.sha256(), 0
    while limit is None or n <= limit:
        b = fh.read(_CHUNK if limit is None else min(_CHUNK, limit + 1 - n))
        if not b:
            break
        h.update(b)
        n += len(b)
    return h.hexdigest(), n


def parse_manifest(raw: bytes, where: str) -> VersionManifest:
    """A checked manifest: schema (name grammar, version bound, hex digests, sizes), safe
    unique paths, total size and the content identity recomputed from the entries."""
    try:
        m = VersionManifest.model_validate_json(raw)
    except ValueError as err:
        first = str(err).splitlines()
        field = first[1] if len(first) > 1 else ""
        raise CheckFailed(f"{where}: manifest.json is not a valid registry manifest: "
                          f"field {field!r}: {first[2].strip() if len(first) > 2 else first[0]}"
                          ) from None
    if m.format != MANIFEST_FORMAT:
        raise CheckFailed(f"{where}: manifest.json field 'format' is {m.format!r}, expected "
                          f"{MANIFEST_FORMAT!r}")
    check_paths(m, where)
    total = sum(e.size for e in m.files)
    if m.total_bytes != total:
        raise CheckFailed(f"{where}: manifest.json field 'total_bytes' is {m.total_bytes}, the "
                          f"files add up to {total}; refused")
    if m.content_sha256 != content_sha256(m.files):
        raise CheckFailed(f"{where}: manifest.json field 'content_sha256' does not match its "
                          "files (recomputed from path, size and sha256); refused")
    return m


def check_paths(m: VersionManifest, where: str) -> None:
    seen: set[str] = set()
    for e in m.files:
        why = path_problem(e.path)
        if why is None and e.path == MANIFEST:
            why = "reserved name"
        if why is None and e.path in seen:
            why = "listed twice"
        if why:
            raise CheckFailed(f"{where}: manifest entry {e.path!r} refused: {why}")
        seen.add(e.path)
    for e in m.files:
        if any(p in seen for p in _parents(e.path)):
            raise CheckFailed(f"{where}: manifest entry {e.path!r} refused: a listed file is "
                              "also its parent directory")


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def build_manifest(name: str, version: int, entries: list[FileEntry], lineage: dict | None,
                   metrics: dict | None, gates: list | None, publisher: dict[str, Any]) -> bytes:
    """The manifest JSON of a new version (lineage gains the code and library versions)."""
    lin = {"code_version": code_version(), "library_versions": library_versions(),
           **(lineage or {})}
    m = VersionManifest(
        name=name, version=version, created_at=utc_now(),
        content_sha256=content_sha256(entries), total_bytes=sum(e.size for e in entries),
        files=sorted(entries, key=lambda e: e.path), lineage=_jsonable(lin),
        metrics=_jsonable(metrics or {}), gates=_jsonable(list(gates or [])),
        publisher={"host": socket.gethostname(), **publisher},
    )
    return dump(m.model_dump(mode="json"))


def renumbered(raw: bytes, version: int) -> bytes:
    """An imported manifest under another version number, recording where it came from."""
    d = json.loads(raw)
    d["imported_from"] = {"version": d["version"],
                          "manifest_sha256": hashlib.sha256(raw).hexdigest()}
    d["version"] = version
    return dump(d)


def dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
